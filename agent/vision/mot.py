"""MOTChallenge files: ``seqinfo.ini``, ``gt/gt.txt``, ``det/det.txt`` and result files.

Layout of a sequence folder::

    SEQ/seqinfo.ini   [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    SEQ/img1/000001.jpg …
    SEQ/gt/gt.txt     frame,id,x,y,w,h,flag,class,visibility     (flag 1 = evaluated; class 1 = pedestrian)
    SEQ/det/det.txt   frame,-1,x,y,w,h,score[,…]

Boxes in the files are ``x, y, w, h`` pixels with a top-left origin; frames are 1-based.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PEDESTRIAN = 1


@dataclass(frozen=True, slots=True)
class MotSequence:
    """One MOTChallenge sequence folder."""

    name: str
    path: Path
    frame_rate: float
    length: int
    width: int
    height: int
    im_dir: str = "img1"
    im_ext: str = ".jpg"

    @classmethod
    def load(cls, path: str | Path) -> MotSequence:
        """Read ``seqinfo.ini`` (falls back to the folder name and the images found when it is missing)."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"not a sequence folder: {path}")
        ini = configparser.ConfigParser()
        ini.read(path / "seqinfo.ini", encoding="utf-8")
        sec = ini["Sequence"] if ini.has_section("Sequence") else {}
        im_dir = sec.get("imDir", "img1")
        im_ext = sec.get("imExt", ".jpg")
        length = int(sec.get("seqLength", 0)) or len(list((path / im_dir).glob(f"*{im_ext}")))
        return cls(name=sec.get("name", path.name), path=path, frame_rate=float(sec.get("frameRate", 30)),
                   length=length, width=int(sec.get("imWidth", 0)), height=int(sec.get("imHeight", 0)),
                   im_dir=im_dir, im_ext=im_ext)

    def image_path(self, frame: int) -> Path:
        """Path of 1-based ``frame``."""
        return self.path / self.im_dir / f"{frame:06d}{self.im_ext}"

    @property
    def gt_path(self) -> Path:
        return self.path / "gt" / "gt.txt"

    @property
    def det_path(self) -> Path:
        return self.path / "det" / "det.txt"


def load_rows(path: str | Path, min_columns: int) -> np.ndarray:
    """A MOT text file as a float64 (K, C) array (C ≥ ``min_columns``); empty files give (0, min_columns)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    if not text:
        return np.zeros((0, min_columns))
    rows = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2)
    if rows.shape[1] < min_columns:
        raise ValueError(f"{path}: expected at least {min_columns} columns, found {rows.shape[1]}")
    return rows


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(N, 4) ``x, y, w, h`` → (N, 4) ``x1, y1, x2, y2``."""
    b = np.asarray(xywh, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def gt_detections(gt_rows: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Evaluated pedestrians (flag 1, class 1) of a ``gt.txt`` per frame: ``{frame: (boxes xyxy (N, 4),
    scores (N,) all 1.0)}`` — feeds the tracker perfect detections to measure association alone."""
    keep = (gt_rows[:, 6] == 1) & (gt_rows[:, 7] == PEDESTRIAN) if len(gt_rows) else np.zeros(0, bool)
    rows = gt_rows[keep]
    return {int(f): (xywh_to_xyxy(rows[rows[:, 0] == f, 2:6]), np.ones(int((rows[:, 0] == f).sum())))
            for f in np.unique(rows[:, 0])}


def public_detections(det_rows: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``det.txt`` per frame: ``{frame: (boxes xyxy (N, 4), scores (N,))}``."""
    return {int(f): (xywh_to_xyxy(det_rows[det_rows[:, 0] == f, 2:6]), det_rows[det_rows[:, 0] == f, 6])
            for f in np.unique(det_rows[:, 0])} if len(det_rows) else {}


def result_rows(frame: int, ids: np.ndarray, boxes_xyxy: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Rows ``frame, id, x, y, w, h, conf, -1, -1, -1`` of one frame's tracks → (M, 10)."""
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    n = len(b)
    out = np.full((n, 10), -1.0)
    out[:, 0] = frame
    out[:, 1] = np.asarray(ids).reshape(-1)
    out[:, 2:4] = b[:, :2]
    out[:, 4:6] = b[:, 2:] - b[:, :2]
    out[:, 6] = np.asarray(scores, np.float64).reshape(-1)
    return out


def write_results(path: str | Path, rows: np.ndarray) -> None:
    """Write (K, 10) result rows in MOTChallenge format, sorted by frame then id."""
    rows = np.asarray(rows, np.float64).reshape(-1, 10)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4f},-1,-1,-1"
             for r in rows]
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
