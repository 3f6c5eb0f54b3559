"""Debug snapshots: annotated JPEGs of what a camera pipeline sees, with every head blurred.

Privacy rule: no frame is written to disk unless the camera's ``analytics.debug_snapshots`` is on —
:func:`make_snapshot_writer` returns None otherwise, so no writer exists — and then every person's head region
is blurred BEFORE anything is drawn or encoded:

- the top of every person box (:func:`head_regions`: the top 35 % of the box, but at least 0.7 box widths
  tall — a box cut by the image edge or an occlusion shows only the upper body, where the face sits lower —
  widened by 15 % of its width on each side and raised by 5 % of its height, since detector boxes often cut
  the top of the head) — for every raw detection of the frame, inside the ROI or not, and every track box;
- every face YuNet finds (``yunet-n`` from the model registry, when installed; :class:`FaceFinder`), enlarged
  by 30 % — catches faces whose body the person detector missed.

Blurring (:func:`blur_regions`) pixelates each region to cells of ~1/8 of its height (at least 4 px) and then
smooths the cells with a Gaussian of the same size: no facial detail survives, and the region stays a neutral
smear rather than a mosaic. The original frame is never modified.

At most one JPEG per ``every_s`` seconds of frame time is written (atomically, mode 0600, in a 0700 directory),
and only the ``max_files`` newest are kept.

Example:
    >>> head_regions(np.array([[100, 50, 140, 250]]), (480, 270)).tolist()
    [[94, 40, 146, 120]]
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from agent.config import CameraConfig
from agent.config.vision_models import LineConfig, ZoneConfig

log = logging.getLogger(__name__)

#: Share of a person box's height, from its top, blurred as the head region...
HEAD_FRACTION = 0.35
#: ...but at least this many box widths tall (upper-body boxes), never more than the box.
HEAD_MIN_WIDTHS = 0.7
#: Head region widening on each side, as a share of the box width.
HEAD_WIDEN = 0.15
#: Head region raised above the box top, as a share of the box height.
HEAD_RAISE = 0.05
#: Face boxes from YuNet are enlarged by this factor (about their centre) before blurring.
FACE_GROW = 1.3

_TRACK_COLOUR = (0, 200, 255)
_LINE_COLOUR = (255, 80, 0)
_ZONE_COLOUR = (0, 220, 0)


def head_regions(person_boxes: np.ndarray, image_wh: tuple[int, int], fraction: float = HEAD_FRACTION,
                 min_widths: float = HEAD_MIN_WIDTHS, widen: float = HEAD_WIDEN,
                 raise_: float = HEAD_RAISE) -> np.ndarray:
    """Conservative head regions of person boxes.

    Measured on the shared clips with YOLOX-Nano boxes and YuNet faces: a face's bottom edge lies at most 31 %
    of the box height below the box top for people walking (full body), and at most 0.55 box widths (46 % of
    the height) for people seen from the waist up.

    Args:
        person_boxes: (N, 4) xyxy pixels.
        image_wh: (width, height) of the image, to clip to.
        fraction, min_widths, widen, raise_: see ``HEAD_FRACTION``, ``HEAD_MIN_WIDTHS``, ``HEAD_WIDEN``,
            ``HEAD_RAISE``.

    Returns:
        (N, 4) int xyxy pixels, clipped to the image (possibly empty where a box lies outside it).
    """
    b = np.asarray(person_boxes, np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    head = np.minimum(np.maximum(fraction * h, min_widths * w), h)
    regions = np.stack([b[:, 0] - widen * w, b[:, 1] - raise_ * h, b[:, 2] + widen * w, b[:, 1] + head], axis=1)
    return _clip_boxes(regions, image_wh)


def grow_boxes(boxes: np.ndarray, factor: float, image_wh: tuple[int, int]) -> np.ndarray:
    """(N, 4) xyxy boxes scaled by ``factor`` about their centres → (N, 4) int, clipped to the image."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (b[:, :2] + b[:, 2:]) / 2
    half = (b[:, 2:] - b[:, :2]) * factor / 2
    return _clip_boxes(np.concatenate([centre - half, centre + half], axis=1), image_wh)


def _clip_boxes(boxes: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
    """(N, 4) float xyxy → int, rounded outwards (a region never shrinks) and clipped to the image."""
    width, height = image_wh
    limit = np.array([width, height, width, height])
    out = np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1).astype(np.int64)
    out = np.clip(out, 0, limit)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
    return out


def blur_regions(image: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """A copy of ``image`` ((H, W, 3) uint8) with every (N, 4) int xyxy region pixelated and smoothed.

    Example:
        >>> img = np.zeros((40, 40, 3), np.uint8); img[::2, ::2] = 255   # fine texture
        >>> out = blur_regions(img, np.array([[0, 0, 40, 20]]))
        >>> int(out[:20].std()) < 10 < int(out[20:].std()), bool((out[20:] == img[20:]).all())
        (True, True)
    """
    out = image.copy()
    for x1, y1, x2, y2 in np.asarray(regions, np.int64).reshape(-1, 4):
        w, h = int(x2 - x1), int(y2 - y1)
        if w <= 0 or h <= 0:
            continue
        cell = max(4, round(h / 8))
        roi = out[y1:y2, x1:x2]
        small = cv2.resize(roi, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
        smooth = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        k = 2 * cell + 1
        out[y1:y2, x1:x2] = cv2.GaussianBlur(smooth, (k, k), cell, borderType=cv2.BORDER_REPLICATE)
    return out


class FaceFinder:
    """YuNet face detection through ``cv2.FaceDetectorYN`` (which decodes the model itself).

    Args:
        model: path of ``yunet_n_dynamic.onnx``.
        score_threshold: minimum face score; low on purpose (a missed face is worse than a blurred wall).
    """

    def __init__(self, model: Path | str, score_threshold: float = 0.5, nms_iou: float = 0.3) -> None:
        self.model = Path(model)
        self._size = (320, 320)
        self._detector = cv2.FaceDetectorYN.create(str(self.model), "", self._size, score_threshold, nms_iou, 500)

    @classmethod
    def from_model_dir(cls, model_dir: Path | None, name: str = "yunet-n") -> FaceFinder | None:
        """The registry's ``yunet-n`` from ``model_dir`` when it is installed, else None."""
        from models.registry import install_state, model_path

        if model_dir is None or install_state(name, Path(model_dir)) != "installed":
            return None
        return cls(model_path(name, Path(model_dir)))

    def faces(self, image: np.ndarray) -> np.ndarray:
        """(N, 4) float xyxy pixel boxes of the faces in ``image`` ((H, W, 3) uint8 BGR)."""
        size = (image.shape[1], image.shape[0])
        if size != self._size:
            self._detector.setInputSize(size)
            self._size = size
        _, found = self._detector.detect(image)
        if found is None or len(found) == 0:
            return np.zeros((0, 4), np.float64)
        xywh = np.asarray(found[:, :4], np.float64)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def redact(image: np.ndarray, person_boxes: np.ndarray, faces: FaceFinder | None = None) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """Blur every head region of (N, 4) xyxy pixel ``person_boxes`` and every face ``faces`` finds.

    Returns:
        ``(blurred copy, (M, 4) int regions that were blurred)``.
    """
    wh = (image.shape[1], image.shape[0])
    regions = [head_regions(person_boxes, wh)]
    if faces is not None:
        regions.append(grow_boxes(faces.faces(image), FACE_GROW, wh))
    all_regions = np.concatenate(regions, axis=0)
    return blur_regions(image, all_regions), all_regions


def annotate(image: np.ndarray, track_ids: np.ndarray, track_boxes: np.ndarray, lines: Sequence[LineConfig] = (),
             zones: Sequence[ZoneConfig] = (), caption: str = "") -> np.ndarray:
    """Draw zones (outlines), lines (with an arrow towards IN), track boxes and ids on ``image`` in place.

    Args:
        image: (H, W, 3) uint8, already redacted.
        track_ids: (M,) int.
        track_boxes: (M, 4) xyxy pixels.
        lines, zones: the camera's, in normalised coordinates.
        caption: text for the top-left corner.
    """
    height, width = image.shape[:2]
    scale = np.array([width, height], np.float64)
    for zone in zones:
        pts = np.round(np.asarray(zone.polygon, np.float64) * scale).astype(np.int32)
        cv2.polylines(image, [pts], True, _ZONE_COLOUR, 1, cv2.LINE_AA)
        cv2.putText(image, zone.name, tuple(int(v) for v in pts.min(axis=0) + [3, 12]), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, _ZONE_COLOUR, 1, cv2.LINE_AA)
    for line in lines:
        a, b = np.asarray(line.start) * scale, np.asarray(line.end) * scale
        cv2.line(image, tuple(int(v) for v in a), tuple(int(v) for v in b), _LINE_COLOUR, 2, cv2.LINE_AA)
        direction = b - a
        normal = np.array([-direction[1], direction[0]]) / max(1e-9, float(np.hypot(*direction)))  # IN side
        mid = (a + b) / 2
        tip = mid + normal * 0.06 * min(width, height)
        cv2.arrowedLine(image, tuple(int(v) for v in mid), tuple(int(v) for v in tip), _LINE_COLOUR, 2,
                        cv2.LINE_AA, tipLength=0.3)
        cv2.putText(image, f"{line.name} IN", tuple(int(v) for v in tip + [4, 4]), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    _LINE_COLOUR, 1, cv2.LINE_AA)
    boxes = np.round(np.asarray(track_boxes, np.float64).reshape(-1, 4)).astype(np.int64)
    for track_id, (x1, y1, x2, y2) in zip(np.asarray(track_ids).reshape(-1).tolist(), boxes.tolist()):
        cv2.rectangle(image, (x1, y1), (x2, y2), _TRACK_COLOUR, 1)
        cv2.putText(image, f"#{track_id}", (x1 + 2, max(10, y2 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _TRACK_COLOUR,
                    1, cv2.LINE_AA)
    if caption:
        cv2.putText(image, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return image


class SnapshotWriter:
    """Writes at most one redacted, annotated JPEG per ``every_s`` seconds into ``directory``.

    Args:
        directory: created (mode 0700) on the first write.
        every_s: minimum frame-time between two snapshots (a frame time going backwards, e.g. a new file,
            allows the next one).
        max_files: only this many newest snapshots are kept (older ones are deleted after each write).
        faces: optional YuNet face finder (see :meth:`FaceFinder.from_model_dir`).
        lines, zones: drawn on the snapshot.
        prefix: file name prefix (the camera name); files are ``{prefix}-{time_ns}.jpg``.
        quality: JPEG quality.
    """

    def __init__(self, directory: Path | str, every_s: float = 10.0, *, max_files: int = 100,
                 faces: FaceFinder | None = None, lines: Sequence[LineConfig] = (), zones: Sequence[ZoneConfig] = (),
                 prefix: str = "snapshot", quality: int = 85) -> None:
        if every_s <= 0 or max_files < 1:
            raise ValueError("every_s must be > 0 and max_files ≥ 1")
        self.directory = Path(directory)
        self.every_s = float(every_s)
        self.max_files = int(max_files)
        self.faces = faces
        self.lines = list(lines)
        self.zones = list(zones)
        self.prefix = prefix
        self.quality = int(quality)
        self.written = 0
        self._last_ts: float | None = None

    def due(self, ts: float) -> bool:
        """True when a snapshot of the frame at ``ts`` may be written now."""
        return self._last_ts is None or ts - self._last_ts >= self.every_s or ts < self._last_ts

    def maybe_write(self, image: np.ndarray, ts: float, *, person_boxes: np.ndarray, track_ids: np.ndarray,
                    track_boxes: np.ndarray) -> Path | None:
        """:meth:`write` if :meth:`due`, else None."""
        if not self.due(ts):
            return None
        return self.write(image, ts, person_boxes=person_boxes, track_ids=track_ids, track_boxes=track_boxes)

    def write(self, image: np.ndarray, ts: float, *, person_boxes: np.ndarray, track_ids: np.ndarray,
              track_boxes: np.ndarray) -> Path:
        """Redact, annotate, encode and write one snapshot; rotate old files; return the new file's path.

        Args:
            image: (H, W, 3) uint8 BGR frame (not modified).
            ts: frame time (seconds).
            person_boxes: (N, 4) xyxy pixels of EVERY person detection of the frame (before ROI filtering).
            track_ids: (M,) int ids of the tracks.
            track_boxes: (M, 4) xyxy pixels of the tracks (also blurred).
        """
        persons = np.concatenate([np.asarray(person_boxes, np.float64).reshape(-1, 4),
                                  np.asarray(track_boxes, np.float64).reshape(-1, 4)], axis=0)
        redacted, _ = redact(image, persons, self.faces)
        annotate(redacted, track_ids, track_boxes, self.lines, self.zones,
                 caption=f"{self.prefix} t={ts:.2f}s tracks={len(np.asarray(track_ids).reshape(-1))}")
        ok, jpeg = cv2.imencode(".jpg", redacted, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / f"{self.prefix}-{time.time_ns()}.jpg"
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(jpeg.tobytes())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._last_ts = ts
        self.written += 1
        self._rotate()
        return path

    def files(self) -> list[Path]:
        """This writer's snapshot files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{self.prefix}-*.jpg"))

    def _rotate(self) -> None:
        files = self.files()
        for old in files[:max(0, len(files) - self.max_files)]:
            try:
                old.unlink()
            except OSError as exc:  # pragma: no cover - a file removed by hand meanwhile
                log.warning("cannot remove old snapshot", extra={"path": str(old), "error": str(exc)})


def make_snapshot_writer(camera: CameraConfig, directory: Path | str, *, model_dir: Path | None = None,
                         every_s: float = 10.0, max_files: int = 100) -> SnapshotWriter | None:
    """The snapshot writer of ``camera``, or None when its ``analytics.debug_snapshots`` is off (the privacy
    default: then nothing that could write a frame exists).

    Args:
        camera: the camera (its lines and zones are drawn).
        directory: where the JPEGs go (e.g. ``data_dir / "snapshots" / camera.name``).
        model_dir: the model directory; YuNet (``yunet-n``) from it also blurs faces when installed.
        every_s, max_files: see :class:`SnapshotWriter`.
    """
    if not camera.analytics.debug_snapshots:
        return None
    faces = FaceFinder.from_model_dir(model_dir)
    if faces is None:
        log.warning("debug snapshots without the yunet-n face model: only head regions of detected people are "
                    "blurred (run `store-agent models pull yunet-n`)", extra={"camera": camera.name})
    return SnapshotWriter(directory, every_s, max_files=max_files, faces=faces, lines=camera.analytics.lines,
                          zones=camera.analytics.zones, prefix=camera.name)
