"""``store-agent eval tracking``: run detector + tracker over MOTChallenge sequences, write MOT result files and
score them — MOTA and IDF1 with ``motmetrics``, HOTA with ``trackeval`` — under the standard MOT17 protocol.

Protocol (the same in both libraries, each applying its own reference implementation):
- ground truth: rows with flag 1 and class 1 (pedestrian) are evaluated; everything else is ignored;
- predictions matched (IoU ≥ 0.5, Hungarian) to a ground-truth box of a distractor class — person on vehicle
  (2), static person (7), distractor (8), reflection (12) — are removed before scoring (py-motmetrics
  ``utils.CLEAR_MOT_M`` with ``preprocessResult``; TrackEval ``MotChallenge2DBox`` with ``DO_PREPROC``);
- a prediction matches a ground-truth box at IoU ≥ 0.5.

Detections (``detector``): ``"gt"`` feeds the evaluated ground-truth boxes with score 1 (isolates the
tracker), ``"public"`` the sequence's ``det/det.txt``, any other name a registry detector
(``models.detectors.build_detector``) run on ``img1/``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision.mot import MotSequence, gt_detections, load_rows, public_detections, result_rows, write_results
from agent.vision.tracker import make_tracker

log = logging.getLogger(__name__)

Detections = dict[int, tuple[np.ndarray, np.ndarray]]
DetectFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def sequence_detections(seq: MotSequence, detector: str | DetectFn) -> Detections:
    """``{frame: (boxes xyxy (N, 4), scores (N,))}`` for every frame of ``seq`` (1-based)."""
    if detector == "gt":
        by_frame = gt_detections(load_rows(seq.gt_path, 9))
    elif detector == "public":
        by_frame = public_detections(load_rows(seq.det_path, 7))
    elif callable(detector):
        import cv2

        by_frame = {}
        for frame in range(1, seq.length + 1):
            image = cv2.imread(str(seq.image_path(frame)), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("unreadable frame", extra={"sequence": seq.name, "frame": frame})
                continue
            by_frame[frame] = detector(image)
    else:
        raise ValueError(f"detector must be 'gt', 'public' or a callable, not {detector!r}")
    empty = (np.zeros((0, 4)), np.zeros((0,)))
    return {frame: by_frame.get(frame, empty) for frame in range(1, seq.length + 1)}


def track_sequence(seq: MotSequence, detections: Detections, tracker: str = "ours",
                   tracker_kwargs: dict[str, Any] | None = None, reid: Any = None) -> np.ndarray:
    """Run a fresh tracker over the frames in order (timestamps ``(frame - 1) / frameRate``) → (K, 10) rows.
    ``reid`` (a :class:`agent.vision.reid.PersonReid`, our tracker only) enables the appearance re-link."""
    trk = make_tracker(tracker, frame_rate=seq.frame_rate, **(tracker_kwargs or {}))
    if reid is not None and tracker != "ours":
        raise ValueError("the appearance re-link is a feature of our tracker ('ours')")
    rows = [np.zeros((0, 10))]
    for frame in range(1, seq.length + 1):
        boxes, scores = detections[frame]
        ts = (frame - 1) / seq.frame_rate
        if reid is not None:
            import cv2

            image = cv2.imread(str(seq.image_path(frame)), cv2.IMREAD_COLOR)
            tracks = trk.update(boxes, scores, ts=ts, embed=reid.embedder(image, boxes))  # type: ignore[call-arg]
        else:
            tracks = trk.update(boxes, scores, ts=ts)
        rows.append(result_rows(frame, tracks.ids, tracks.boxes, tracks.scores))
    return np.concatenate(rows)


# ---------------------------------------------------------------------------------------------- metrics


def _motmetrics():  # noqa: ANN202 - module
    """Import py-motmetrics, repairing its one numpy-2 incompatibility: 1.4.0 (the latest release) calls
    ``np.asfarray``, removed in numpy 2.0, in ``distances.iou_matrix``. The replacement is the same function
    with ``np.asarray(…, float)``; nothing else is changed."""
    import motmetrics as mm

    if not hasattr(np, "asfarray") and not getattr(mm.distances.iou_matrix, "_numpy2", False):
        boxiou = mm.distances.boxiou

        def iou_matrix(objs, hyps, max_iou=1.0):  # noqa: ANN001, ANN202 - motmetrics' signature
            if np.size(objs) == 0 or np.size(hyps) == 0:
                return np.empty((0, 0))
            objs = np.asarray(objs, np.float64)
            hyps = np.asarray(hyps, np.float64)
            assert objs.shape[1] == 4 and hyps.shape[1] == 4
            dist = 1 - boxiou(objs[:, None], hyps[None, :])
            return np.where(dist > max_iou, np.nan, dist)

        iou_matrix._numpy2 = True  # type: ignore[attr-defined]
        mm.distances.iou_matrix = iou_matrix
        mm.utils.iou_matrix = iou_matrix
    return mm


def motmetrics_scores(seqs: Sequence[MotSequence], result_dir: Path) -> dict[str, dict[str, float]]:
    """MOTA, IDF1 and counts per sequence and ``"OVERALL"`` with py-motmetrics' MOT16/17 evaluation."""
    mm = _motmetrics()

    accs, names = [], []
    for seq in seqs:
        with warnings.catch_warnings():  # motmetrics 1.4 uses pandas idioms newer pandas deprecates
            warnings.simplefilter("ignore")
            gt = mm.io.loadtxt(str(seq.gt_path), fmt="mot16")
            res = _load_results_df(result_dir / f"{seq.name}.txt")
            with _seqinfo(seq) as ini:
                acc, _ = mm.utils.CLEAR_MOT_M(gt, res, ini, "iou", distth=0.5)
        accs.append(acc)
        names.append(seq.name)
    mh = mm.metrics.create()
    metrics = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects"]
    summary = mh.compute_many(accs, names=names, metrics=metrics, generate_overall=True)
    out = {}
    for name, row in summary.iterrows():
        out["OVERALL" if name == "OVERALL" else str(name)] = {
            "MOTA": _num(row["mota"]), "IDF1": _num(row["idf1"]), "IDSW": int(row["num_switches"]),
            "FP": int(row["num_false_positives"]), "FN": int(row["num_misses"]), "GT": int(row["num_objects"])}
    return out


@contextlib.contextmanager
def _seqinfo(seq: MotSequence):  # noqa: ANN202 - context manager
    """Path of the sequence's ``seqinfo.ini``, or of a temporary one written from ``seq`` when it has none."""
    ini = seq.path / "seqinfo.ini"
    if ini.is_file():
        yield str(ini)
        return
    with tempfile.TemporaryDirectory(prefix="seqinfo-") as tmp:
        path = Path(tmp) / "seqinfo.ini"
        path.write_text(f"[Sequence]\nname={seq.name}\nseqLength={seq.length}\nframeRate={seq.frame_rate}\n",
                        encoding="utf-8")
        yield str(path)


def _load_results_df(path: Path):  # noqa: ANN202 - pandas type
    import pandas as pd

    mm = _motmetrics()

    if path.stat().st_size > 0:
        return mm.io.loadtxt(str(path), fmt="mot16")
    index = pd.MultiIndex.from_arrays([[], []], names=["FrameId", "Id"])
    columns = ["X", "Y", "Width", "Height", "Confidence", "ClassId", "Visibility"]
    return pd.DataFrame(columns=columns, index=index, dtype=float)


def trackeval_hota(seqs: Sequence[MotSequence], result_dir: Path) -> dict[str, float]:
    """HOTA (mean over the 19 localisation thresholds) per sequence and ``"OVERALL"`` with TrackEval's
    ``MotChallenge2DBox`` (MOT17 preprocessing) and ``HOTA`` metric."""
    with contextlib.redirect_stdout(io.StringIO()):  # trackeval prints on import and while loading
        from trackeval.datasets import MotChallenge2DBox
        from trackeval.metrics import HOTA

        with tempfile.TemporaryDirectory(prefix="trackeval-") as tmp:
            gt_root = Path(tmp) / "gt"
            gt_root.mkdir()
            for seq in seqs:
                os.symlink(seq.path.resolve(), gt_root / seq.name)
            dataset = MotChallenge2DBox({
                "GT_FOLDER": str(gt_root), "TRACKERS_FOLDER": str(result_dir.resolve().parent),
                "TRACKERS_TO_EVAL": [result_dir.resolve().name], "TRACKER_SUB_FOLDER": "",
                "OUTPUT_FOLDER": tmp, "CLASSES_TO_EVAL": ["pedestrian"], "BENCHMARK": "MOT17",
                "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False, "DO_PREPROC": True,
                "SEQ_INFO": {seq.name: seq.length for seq in seqs}})
            metric = HOTA()
            per_seq = {}
            for seq in seqs:
                raw = dataset.get_raw_seq_data(result_dir.resolve().name, seq.name)
                data = dataset.get_preprocessed_seq_data(raw, "pedestrian")
                per_seq[seq.name] = metric.eval_sequence(data)
            combined = metric.combine_sequences(per_seq)
    out = {name: _num(np.mean(res["HOTA"])) for name, res in per_seq.items()}
    out["OVERALL"] = _num(np.mean(combined["HOTA"]))
    return out


def _num(value: Any) -> float | None:
    """Rounded float; None (JSON null) when undefined, e.g. MOTA of a sequence without ground truth."""
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


# ---------------------------------------------------------------------------------------------- command


def build_detect_fn(name: str, model_dir: Path | None, threads: int = 2, score_threshold: float = 0.1) -> DetectFn:
    """A registry detector as ``image -> (boxes, scores)`` (persons only)."""
    from models.detectors import build_detector

    detector = build_detector(name, model_dir, threads=threads, score_threshold=score_threshold)

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dets = detector.detect(image)
        return dets.boxes, dets.scores

    return detect


def evaluate_tracking(seq_dirs: Sequence[str | Path], out_dir: str | Path, *, detector: str = "gt",
                      tracker: str = "ours", model_dir: Path | None = None, threads: int = 2,
                      score_threshold: float = 0.1, tracker_kwargs: dict[str, Any] | None = None,
                      detect_fn: DetectFn | None = None, reid: str | None = None) -> dict[str, Any]:
    """Track every sequence, write ``out_dir/<sequence>.txt`` and score them.

    Returns:
        ``{"sequences": {NAME: {"MOTA", "IDF1", "HOTA", "IDSW", "FP", "FN", "GT"}}, "overall": {…same…},
        "detector": …, "tracker": …, "reid": …, "tracking_fps": …}``
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seqs = [MotSequence.load(p) for p in seq_dirs]
    if len({s.name for s in seqs}) != len(seqs):
        raise ValueError("sequence names must be unique")
    source: str | DetectFn = detector
    if detector not in ("gt", "public"):
        source = detect_fn or build_detect_fn(detector, model_dir, threads, score_threshold)
    embedder = None
    if reid:
        from agent.vision.reid import PersonReid

        if model_dir is None:
            raise ValueError("--reid needs a model directory")
        embedder = PersonReid.from_registry(Path(model_dir), reid, threads)
    frames, track_time = 0, 0.0
    for seq in seqs:
        dets = sequence_detections(seq, source)
        started = time.perf_counter()
        rows = track_sequence(seq, dets, tracker, tracker_kwargs, embedder)
        track_time += time.perf_counter() - started
        frames += seq.length
        write_results(out / f"{seq.name}.txt", rows)
    mm_scores = motmetrics_scores(seqs, out)
    hota = trackeval_hota(seqs, out)
    result: dict[str, Any] = {"sequences": {}, "overall": {}}
    for seq in seqs:
        s = mm_scores[seq.name]
        result["sequences"][seq.name] = {"MOTA": s["MOTA"], "IDF1": s["IDF1"], "HOTA": hota[seq.name],
                                         **{k: s[k] for k in ("IDSW", "FP", "FN", "GT")}}
    s = mm_scores["OVERALL"]
    result["overall"] = {"MOTA": s["MOTA"], "IDF1": s["IDF1"], "HOTA": hota["OVERALL"],
                         **{k: s[k] for k in ("IDSW", "FP", "FN", "GT")}}
    result["detector"], result["tracker"], result["reid"] = detector, tracker, reid
    result["tracking_fps"] = round(frames / track_time, 1) if track_time > 0 else None
    return result
