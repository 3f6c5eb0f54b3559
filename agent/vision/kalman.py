"""Constant-velocity Kalman filter over boxes, batched over tracks (the SORT/DeepSORT/ByteTrack filter).

State (8,): ``cx, cy, a, h, vcx, vcy, va, vh`` — box centre, aspect ratio ``w / h``, height and their velocities
per step. Noise scales with the box height, so near and far people are treated alike. ``steps`` lets one
prediction span a variable time (detections at an irregular rate after motion gating): it is the elapsed time
in units of the reference frame period.
"""

from __future__ import annotations

import numpy as np

_W_POS = 1.0 / 20
_W_VEL = 1.0 / 160


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy → (N, 4) ``cx, cy, w/h, h``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = np.maximum(b[:, 3] - b[:, 1], 1e-6)
    return np.stack([b[:, 0] + w / 2, b[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """(N, ≥4) ``cx, cy, a, h, …`` → (N, 4) xyxy."""
    s = np.asarray(xyah, np.float64)
    if len(s) == 0:
        return np.zeros((0, 4))
    h = s[:, 3]
    w = s[:, 2] * h
    return np.stack([s[:, 0] - w / 2, s[:, 1] - h / 2, s[:, 0] + w / 2, s[:, 1] + h / 2], axis=1)


def initiate(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) xyxy boxes → means (N, 8) and covariances (N, 8, 8)."""
    z = xyxy_to_xyah(boxes)
    n = len(z)
    mean = np.concatenate([z, np.zeros((n, 4))], axis=1)
    h = z[:, 3]
    std = np.stack([2 * _W_POS * h, 2 * _W_POS * h, np.full(n, 1e-2), 2 * _W_POS * h,
                    10 * _W_VEL * h, 10 * _W_VEL * h, np.full(n, 1e-5), 10 * _W_VEL * h], axis=1)
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, steps: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Advance (N, 8) means and (N, 8, 8) covariances by ``steps`` (scalar or (N,)) frame periods."""
    n = len(mean)
    if n == 0:
        return mean, cov
    steps = np.broadcast_to(np.asarray(steps, np.float64), (n,))
    F = np.tile(np.eye(8), (n, 1, 1))
    F[:, np.arange(4), np.arange(4) + 4] = steps[:, None]
    h = mean[:, 3]
    std = np.stack([_W_POS * h, _W_POS * h, np.full(n, 1e-2), _W_POS * h,
                    _W_VEL * h, _W_VEL * h, np.full(n, 1e-5), _W_VEL * h], axis=1)
    Q = np.zeros((n, 8, 8))
    idx = np.arange(8)
    Q[:, idx, idx] = std**2 * np.maximum(steps, 1e-3)[:, None]
    mean = np.einsum("nij,nj->ni", F, mean)
    cov = F @ cov @ F.transpose(0, 2, 1) + Q
    return mean, cov


def update(mean: np.ndarray, cov: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct (N, 8) means / (N, 8, 8) covariances with (N, 4) xyxy measurements."""
    n = len(mean)
    if n == 0:
        return mean, cov
    z = xyxy_to_xyah(boxes)
    h = mean[:, 3]
    r_std = np.stack([_W_POS * h, _W_POS * h, np.full(n, 1e-1), _W_POS * h], axis=1)
    R = np.zeros((n, 4, 4))
    R[:, np.arange(4), np.arange(4)] = r_std**2
    PHt = cov[:, :, :4]                                  # P Hᵀ, (N, 8, 4)
    S = cov[:, :4, :4] + R                               # H P Hᵀ + R, (N, 4, 4)
    K = np.linalg.solve(S, PHt.transpose(0, 2, 1)).transpose(0, 2, 1)  # (N, 8, 4)
    innovation = z - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", K, innovation)
    cov = cov - K @ S @ K.transpose(0, 2, 1)
    return mean, cov
