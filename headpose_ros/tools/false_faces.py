"""False faces on frames without faces, and the face-quality check's evidence behind them.

``python -m headpose_ros.tools.false_faces --seeds 1 3 6`` runs the estimator's own detector, face selection
and keypoint source on generated scenes without faces (:func:`headpose_ros.tools.scenes.negative_scenes`), with
the detector's wider search that the pipeline adds on a frame where no face passes (``detect_more``: with
``turns: on_doubt``, the quarter turns; so every turn, as ``turns: 4``), and records, for every candidate face
that reaches the face-quality check, where it came from and what the check measured:

- ``origin``: ``upright`` when the upright detector pass alone finds the same box, ``turned`` when the box
  comes from one of the roll search's turned passes and no upright detection overlaps it, ``replaced`` when a
  turned detection replaced an overlapping upright one (found by running the detector once more with
  ``turns=1``: the analysis does not rely on the detector's internals); ``tile`` when only the tiled detector's
  tiles found it (an ``unsure`` box, which the check holds to a presence of ``UNSURE_PRESENCE``);
- the check's evidence (:class:`headpose_ros.estimator.quality.FaceEvidence`) and the face's width;
- ``second: true`` on the record of the keypoint source's second reading of a box (``relocate``: the face mesh's
  ``retry_crops`` for a box without detector keypoints), which the pipeline makes where the check rejects the
  first one and which must reach ``SECOND_READING_QUALITY`` (or the threshold where higher) and a presence of
  ``SECOND_READING_PRESENCE`` (the check's presence, which from 0.5 is the reading's own): at any threshold a box
  is a false face when either of its readings passes, and counts once.

It prints false faces per frame with the check off and at each ``--thresholds`` value, per seed, with the
breakdown by origin and by source image. ``--positives FORMAT PATH`` records the same evidence for the faces
of a labelled data set (e.g. ``aflw2000 /work/shared/data/aflw2000_dev``); with ``--fit`` it fits the check's
weights (:func:`fit`) on those faces against the candidates of ``--seeds`` (``--json`` writes every record).
``--detector`` picks the detector (default: the estimator's, ``tiled``, which tiles frames from 1280 px wide;
``mediapipe``: the whole-frame search alone).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from . import scenes

#: Scenes per seed unless ``--size``/``--per-source`` say otherwise: (width, height), per_source.
SEED_SCENES = {0: ((640, 480), 3), 1: ((640, 480), 3), 2: ((1280, 720), 1), 3: ((640, 480), 3),
               4: ((1920, 1080), 1), 5: ((640, 480), 2), 6: ((1280, 720), 1)}


def _origin(box: Any, upright: Sequence[Any]) -> str:
    best = max((box.iou(u) for u in upright), default=0.0)
    if best > 0.98:
        return "upright"
    return "replaced" if best > 0.3 else "turned"


class Recorder:
    """The estimator's detection, selection and keypoints on one frame, with the quality check's evidence."""

    def __init__(self, estimator: Any):
        from ..estimator.detectors import DETECTORS
        from ..estimator.quality import FaceQuality

        self.estimator = estimator
        cfg = estimator.config
        self.upright = None
        if cfg.detector in ("mediapipe", "tiled"):
            upright = DETECTORS.create(cfg.detector, **dict(cfg.detector_options, turns=1))
            self.upright = getattr(upright, "base", upright)  # tiled: its whole-frame pass (it takes ``turns``)
        self.quality = FaceQuality()

    def candidates(self, img: np.ndarray, search_all: bool = True) -> list[dict[str, Any]]:
        """One record per face that reaches the quality check: origin, box, width and evidence. ``search_all``:
        with the detector's wider search too (``detect_more``: the quarter turns of ``turns: on_doubt``), which the
        pipeline runs on every frame where no face passed, as on frames without faces."""
        est = self.estimator
        height, width = img.shape[:2]
        found = est.detector.detect(img)
        more = getattr(est.detector, "detect_more", None)
        wider = more(img, found) if search_all and callable(more) else None
        found = found if wider is None else wider
        upright = [b.clipped(width, height) for b in self.upright.detect(img)] if self.upright else []
        boxes = est._select(found, width, height)
        located = est.keypoint_source.locate(img, boxes) if boxes else []
        out = self._records(img, list(zip(boxes, located)), upright)
        # the keypoint source's second reading of each box, which the pipeline makes where the check rejects the
        # first one (so at any threshold a box passes when either reading does)
        relocate = getattr(est.keypoint_source, "relocate", None)
        if boxes and callable(relocate):
            out += [dict(r, second=True) for r in self._records(img, list(zip(boxes, relocate(img, boxes))), upright)]
        return out

    def _records(self, img: np.ndarray, pairs: list[tuple[Any, Any]], upright: list[Any]) -> list[dict[str, Any]]:
        """A record per (box, keypoints) pair with keypoints and landmarks."""
        pairs = [(b, k) for b, k in pairs if k is not None and k.landmarks is not None]
        if not pairs:
            return []
        evidence = self.quality.evidence(img, [k for _, k in pairs], [b.score for b, _ in pairs],
                                         [b.unsure for b, _ in pairs])
        out = []
        for (box, kp), ev in zip(pairs, evidence):
            extent = kp.landmarks.max(0) - kp.landmarks.min(0)
            origin = "tile" if box.unsure else _origin(box, upright) if self.upright else "unknown"
            out.append({"origin": origin,
                        "box": [round(float(v), 1) for v in (box.x0, box.y0, box.x1, box.y1)],
                        "width_px": round(float(np.max(extent)), 1), **asdict(ev)})
        return out

    def close(self) -> None:
        self.quality.close()
        if self.upright is not None:
            self.upright.close()


def negatives(recorder: Recorder, frames: Iterable[tuple[str, np.ndarray]]) -> tuple[int, list[dict[str, Any]]]:
    """Number of frames and the records of every candidate face on them (each named after its frame)."""
    n, records = 0, []
    for name, img in frames:
        n += 1
        for rec in recorder.candidates(img):
            records.append({"frame": name, **rec})
    return n, records


def positives(recorder: Recorder, fmt: str, path: str, limit: Optional[int] = None,
              every: int = 1) -> tuple[int, list[dict[str, Any]]]:
    """Records of the labelled face of every ``every``-th sample of a data set (the largest candidate face;
    AFLW2000 and BIWI crops hold one face each)."""
    from .datasets import every_within_range, load_dataset

    n, records = 0, []
    for sample in every_within_range(load_dataset(fmt, path, limit=limit), every):
        n += 1
        try:
            img = sample.load_image()
        except Exception:  # unreadable samples count as not found, as in the evaluation
            continue
        found = recorder.candidates(img, search_all=False)  # a face passes: the pipeline searches no further
        if found:
            best = max(found, key=lambda r: (r["box"][2] - r["box"][0]) * (r["box"][3] - r["box"][1]))
            records.append({"frame": sample.name, **best})
    return n, records


def summarize(n: int, records: Sequence[dict[str, Any]], thresholds: Sequence[float]) -> dict[str, Any]:
    """False faces per frame with the check off and at each threshold, with their origins and frames, and how many
    candidates only the tiles found (origin ``tile``) the check rejected for their presence alone (``UNSURE_PRESENCE``,
    :func:`headpose_ros.estimator.quality.quality_from`: they would pass without it)."""
    from ..estimator.quality import SECOND_READING_PRESENCE, SECOND_READING_QUALITY, quality_from

    first = [r for r in records if not r.get("second")]
    out: dict[str, Any] = {"frames": n, "candidates": len(first), "second_readings": len(records) - len(first),
                           "no_check": round(len(first) / max(n, 1), 4),
                           "by_origin": dict(Counter(r["origin"] for r in first))}
    for t in thresholds:
        passed = list({(r["frame"], tuple(r["box"])): r for r in records if (
            r["quality"] >= max(t, SECOND_READING_QUALITY) and r["presence"] >= SECOND_READING_PRESENCE
            if r.get("second") else r["quality"] >= t)}.values())
        unsure = sum(r["origin"] == "tile" and r["quality"] < t <= quality_from(
            r["mirror"], r["presence"], r["score"], r["width_px"], r["profile"]) for r in records)
        out[f"at_{t:g}"] = {"false_faces": len(passed), "per_frame": round(len(passed) / max(n, 1), 4),
                            "rejected_as_unsure": unsure,
                            "by_origin": dict(Counter(r["origin"] for r in passed)),
                            "passed": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                                        if k != "box"} for r in passed]}
    return out


def features(record: dict[str, Any]) -> list[float]:
    """The quality model's inputs (see :func:`headpose_ros.estimator.quality.quality_from`) of one record."""
    from ..estimator.quality import SCORE_CAP, frontal_doubt

    presence = min(max(record["presence"], 0.0), 1.0)
    return [float(np.log(record["mirror"] + 1e-3)), presence, min(record["score"], SCORE_CAP),
            frontal_doubt(presence, record["profile"])]


def fit(faces: Sequence[dict[str, Any]], non_faces: Sequence[dict[str, Any]], lowest: float = 0.64,
        l2: float = 1e-3) -> dict[str, float]:
    """Logistic regression of face (1) against non-face (0) on :func:`features`, both classes weighted alike,
    then the bias moved so that the least face-like face scores ``lowest``: W_MIRROR, W_PRESENCE, W_SCORE,
    W_FRONTAL and BIAS."""
    from scipy.optimize import minimize

    x = np.array([features(r) for r in list(faces) + list(non_faces)])
    y = np.r_[np.ones(len(faces)), np.zeros(len(non_faces))]
    weight = np.r_[np.full(len(faces), 1.0 / len(faces)), np.full(len(non_faces), 1.0 / len(non_faces))]
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / std

    def loss(w: np.ndarray) -> float:
        logit = z @ w[:-1] + w[-1]
        return float(np.sum(weight * (np.logaddexp(0.0, logit) - y * logit)) + l2 * np.sum(w[:-1] ** 2))

    w = minimize(loss, np.zeros(z.shape[1] + 1), method="BFGS").x
    coef = w[:-1] / std
    bias = w[-1] - float(np.sum(w[:-1] * mean / std))
    least = min(float(np.dot(features(r), coef)) for r in faces) + bias
    bias += float(np.log(lowest / (1.0 - lowest))) - least
    return {"W_MIRROR": round(float(coef[0]), 2), "W_PRESENCE": round(float(coef[1]), 2),
            "W_SCORE": round(float(coef[2]), 2), "W_FRONTAL": round(float(coef[3]), 2), "BIAS": round(bias, 2)}


def _estimator(args: argparse.Namespace) -> Any:
    from ..estimator.config import EstimatorConfig
    from ..estimator.pipeline import HeadPoseEstimator
    from .common import parse_options

    parsed = parse_options(args.detector_option, "--detector-option")
    return HeadPoseEstimator(EstimatorConfig(detector=args.detector, min_face_quality=0.0, detector_options=parsed))


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..estimator.config import EstimatorConfig

    parser = argparse.ArgumentParser(prog="python -m headpose_ros.tools.false_faces", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 3, 6], help="seeds of the negative scenes")
    parser.add_argument("--kinds", nargs="*", default=None,
                        help=f"kinds of negatives, some of {' '.join(scenes.KINDS)} "
                             f"(default: {' '.join(scenes.DEFAULT_KINDS)})")
    parser.add_argument("--size", type=int, nargs=2, default=None, help="frame width height (default per seed)")
    parser.add_argument("--per-source", type=int, default=None)
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.45, 0.5])
    parser.add_argument("--positives", nargs="+", action="append", default=[], metavar="FORMAT PATH [EVERY]",
                        help="a labelled data set's faces (its every EVERY-th sample, default 1); repeatable")
    parser.add_argument("--limit", type=int, default=None, help="positives: at most this many samples")
    parser.add_argument("--detector", default=EstimatorConfig.detector,
                        help=f"face detector (default {EstimatorConfig.detector}: frames from 1280 px wide get tiles)")
    parser.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a detector option, its value YAML (e.g. tile_options='{models: full, turns: 1}')")
    parser.add_argument("--fit", action="store_true",
                        help="fit the quality's weights on the positives against the negatives of --seeds")
    parser.add_argument("--lowest", type=float, default=0.64, help="--fit: quality of the least face-like face")
    parser.add_argument("--json", help="write every record to this file")
    args = parser.parse_args(argv)
    est = _estimator(args)
    recorder = Recorder(est)
    report: dict[str, Any] = {"negatives": {}, "positives": {}}
    records: dict[str, Any] = {"negatives": {}, "positives": {}}
    try:
        for seed in args.seeds:
            size, per_source = SEED_SCENES.get(seed, ((640, 480), 3))
            size = tuple(args.size) if args.size else size
            per_source = args.per_source or per_source
            kinds = tuple(args.kinds) if args.kinds else None
            n, recs = negatives(recorder, scenes.negative_scenes(seed, size, per_source, kinds))
            key = f"seed {seed}, {size[0]}x{size[1]}"
            report["negatives"][key] = summarize(n, recs, args.thresholds)
            records["negatives"][key] = recs
            print(json.dumps({key: report["negatives"][key]}), flush=True)
        for fmt, path, *every in args.positives:
            n, recs = positives(recorder, fmt, path, args.limit, int(every[0]) if every else 1)
            qualities = np.array([r["quality"] for r in recs])
            report["positives"][path] = {"samples": n, "found": len(recs), **{
                f"kept_at_{t:g}": int(np.sum(qualities >= t)) for t in args.thresholds},
                "lowest": sorted(qualities.round(4).tolist())[:5]}
            records["positives"][path] = recs
            print(json.dumps({path: report["positives"][path]}), flush=True)
        if args.fit:
            weights = fit([r for recs in records["positives"].values() for r in recs],
                          [r for recs in records["negatives"].values() for r in recs], args.lowest)
            report["fit"] = weights
            print(json.dumps({"fit": weights}), flush=True)
    finally:
        recorder.close()
        est.close()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"report": report, "records": records}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
