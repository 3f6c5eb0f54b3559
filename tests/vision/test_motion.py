"""MotionGate on real frames: a static scene with sensor noise is gated (≥ 5× fewer inferences), a walking
person is detected on (almost) every frame, and the forced interval bounds the time between detections."""

from __future__ import annotations

import numpy as np
import pytest

from agent.vision.motion import MotionGate


def _static_segment(frame: np.ndarray, n: int, sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = frame.astype(np.float32)
    return [np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_static_scene_needs_at_least_5x_fewer_inferences(gif_frames: list[np.ndarray]) -> None:
    gate = MotionGate(threshold=0.002, forced_every_s=2.0)  # the config defaults
    fps = 15.0
    frames = _static_segment(gif_frames[40], 150, sigma=3.0)  # 10 s of a still camera, noisy sensor
    decisions = [gate.should_detect(img, i / fps) for i, img in enumerate(frames)]
    inferences = sum(decisions)
    assert inferences * 5 <= len(frames), gate.counts
    assert gate.counts.motion == 0 and gate.counts.forced == inferences
    # the forced detections keep a stationary person in view: never more than forced_every_s apart
    times = np.flatnonzero(decisions) / fps
    assert times[0] == 0.0 and np.diff(times).max() <= 2.0 + 1 / fps


def test_walking_person_is_detected_on_most_frames(gif_frames: list[np.ndarray]) -> None:
    gate = MotionGate()
    durations = np.r_[0.0, np.full(70, 0.0667)]
    decisions = [gate.should_detect(img, t) for img, t in zip(gif_frames, np.cumsum(durations))]
    assert sum(decisions) >= 0.9 * len(gif_frames)
    assert gate.counts.motion >= 60


def test_motion_after_a_still_period_triggers_at_once(gif_frames: list[np.ndarray]) -> None:
    gate = MotionGate(forced_every_s=30.0)
    still = _static_segment(gif_frames[0], 30, sigma=2.0)
    assert [gate.should_detect(img, i / 10) for i, img in enumerate(still)].count(True) == 1
    # the worker moves: the frame a second later differs where he walked
    assert gate.should_detect(gif_frames[15], 3.1) is True
    assert gate.last_fraction > gate.threshold


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        MotionGate(threshold=1.5)
    with pytest.raises(ValueError):
        MotionGate(forced_every_s=0)
