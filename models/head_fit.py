"""Fitting product projection heads (:class:`models.embedders.HeadBlock`) with numpy/scipy.

Inputs are unit backbone vectors ``x`` (N, D) and integer class labels (N,). Within-class scatter is shrunk
towards the identity by ``reg`` (a fraction of its mean eigenvalue), which keeps the inverse stable when
D (1024) exceeds the number of images per class.

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 8)); y = np.repeat(np.arange(3), 20); x[:, 0] += 3 * y
    >>> block = fit_lda(x, y, dim=2, reg=0.1)
    >>> block.matrix.shape, fit_wccn(x, y, reg=0.1).matrix.shape
    ((8, 2), (8, 8))
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from models.embedders import HeadBlock


def _scatter(x: np.ndarray, labels: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, regularised within-class scatter and between-class scatter of (N, D) ``x``."""
    mean = x.mean(0)
    xc = x - mean
    d = x.shape[1]
    sw = np.zeros((d, d))
    sb = np.zeros((d, d))
    for c in np.unique(labels):
        xi = xc[labels == c]
        m = xi.mean(0)
        sw += (xi - m).T @ (xi - m)
        sb += len(xi) * np.outer(m, m)
    sw /= len(x)
    sb /= len(x)
    sw += reg * np.trace(sw) / d * np.eye(d)
    return mean, sw, sb


def fit_lda(x: np.ndarray, labels: np.ndarray, dim: int, reg: float, weight: float = 1.0) -> HeadBlock:
    """Regularised LDA on unit vectors ``x`` (N, D) with integer ``labels`` (N,) → a (D, dim) block."""
    mean, sw, sb = _scatter(x, labels, reg)
    _, vecs = scipy.linalg.eigh(sb, sw)
    matrix = vecs[:, ::-1][:, :dim]
    matrix = matrix * np.sign(matrix[np.abs(matrix).argmax(0), np.arange(dim)])  # deterministic signs
    return HeadBlock(mean.astype(np.float32), matrix.astype(np.float32), weight)


def fit_wccn(x: np.ndarray, labels: np.ndarray, reg: float, weight: float = 1.0) -> HeadBlock:
    """Within-class covariance normalisation: the symmetric inverse square root of the within-class scatter."""
    mean, sw, _ = _scatter(x, labels, reg)
    vals, vecs = np.linalg.eigh(sw)
    matrix = (vecs / np.sqrt(vals)) @ vecs.T
    return HeadBlock(mean.astype(np.float32), matrix.astype(np.float32), weight)
