"""Small faces in HD frames and frames without faces: found rate, false faces and detector cost.

``python -m headpose_ros.tools.small_faces`` builds scenes with :mod:`headpose_ros.tools.scenes` (public
portraits pasted at 40-160 px into 1920x1080 and 1280x720 frames; frames without faces) and runs the plain
``mediapipe`` detector and the ``tiled`` one on the same frames, interleaved frame by frame, so that the
time ratio holds on a loaded machine. A face counts as found when a detected box with a score of at least
``--min-score`` overlaps its true box by IoU > 0.3. With ``--pipeline`` the whole estimator runs (the
face-quality check included) and a face counts as found when the estimator reports it.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Optional, Sequence

import numpy as np

from . import scenes

SIZES = ((1920, 1080), (1280, 720))
WIDTHS = (40, 50, 60, 80, 100, 120, 160)


def _found(boxes: list, truth: Any, min_score: float) -> bool:
    return any(b.iou(truth) > 0.3 and b.score >= min_score for b in boxes)


def measure(detectors: dict[str, Any], sizes: Sequence[tuple[int, int]] = SIZES, widths: Sequence[int] = WIDTHS,
            seeds: Sequence[int] = (0, 1), min_score: float = 0.5, negatives_seed: Optional[int] = None,
            runner: Optional[Any] = None) -> dict[str, Any]:
    """Found rate per frame size and face width, false faces per frame and median detect time per detector.

    ``detectors`` maps a label to an object with ``detect(image_bgr) -> list[FaceBox]``; with ``runner``
    (a callable image -> list[FaceBox] per label, e.g. an estimator's reported boxes) that is used instead.
    """
    sources = scenes.face_sources()
    found: dict[str, dict[str, list[int]]] = {k: {} for k in detectors}
    times: dict[str, list[float]] = {k: [] for k in detectors}
    for size in sizes:
        for width in widths:
            key = f"{size[0]}x{size[1]}@{width}"
            for seed in seeds:
                for i, source in enumerate(sources):
                    rng = np.random.default_rng([seed, i, width, size[0]])
                    img, truth = scenes.face_scene(source, float(width), size, rng)
                    for label, det in detectors.items():
                        t0 = time.perf_counter()
                        boxes = runner(label, img) if runner else det.detect(img)
                        times[label].append(time.perf_counter() - t0)
                        found[label].setdefault(key, []).append(int(_found(boxes, truth, min_score)))
    out: dict[str, Any] = {"faces_per_cell": len(seeds) * len(sources)}
    for label in detectors:
        cells = {k: round(float(np.mean(v)), 3) for k, v in found[label].items()}
        per_size = {f"{w}x{h}": round(float(np.mean(sum((v for k, v in found[label].items()
                                                         if k.startswith(f"{w}x{h}@")), []))), 3)
                    for w, h in sizes}
        out[label] = {"found": per_size, "found_by_width": cells,
                      "detect_ms_median": round(1000 * float(np.median(times[label])), 2)}
    if negatives_seed is not None:
        counts = dict.fromkeys(detectors, 0)
        n = 0
        for size in sizes:
            for _, img in scenes.negative_scenes(negatives_seed, size, per_source=1):
                n += 1
                for label, det in detectors.items():
                    boxes = runner(label, img) if runner else det.detect(img)
                    counts[label] += sum(b.score >= min_score for b in boxes)
        for label in detectors:
            out[label]["false_faces_per_frame"] = round(counts[label] / max(n, 1), 4)
        out["negative_frames"] = n
    labels = list(detectors)
    if len(labels) > 1:
        base = out[labels[0]]["detect_ms_median"]
        for label in labels[1:]:
            out[label]["time_ratio_vs_" + labels[0]] = round(out[label]["detect_ms_median"] / max(base, 1e-9), 2)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headpose_ros.tools.small_faces", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile-px", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.35)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--negatives-seed", type=int, default=None, help="also count false faces on these scenes")
    parser.add_argument("--pipeline", action="store_true", help="run the whole estimator (quality check included)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    from ..estimator.detectors import DETECTORS

    tiled_options = {"tile_px": args.tile_px, "overlap": args.overlap}
    runner: Optional[Any] = None
    if args.pipeline:
        from ..estimator.config import EstimatorConfig
        from ..estimator.pipeline import HeadPoseEstimator

        estimators = {"mediapipe": HeadPoseEstimator(EstimatorConfig(min_face_score=args.min_score)),
                      "tiled": HeadPoseEstimator(EstimatorConfig(detector="tiled", detector_options=tiled_options,
                                                                 min_face_score=args.min_score))}
        detectors: dict[str, Any] = dict(estimators)

        def run_estimator(label: str, img: np.ndarray) -> list:
            return [f.box for f in estimators[label].process(img).faces]

        runner = run_estimator
    else:
        detectors = {"mediapipe": DETECTORS.create("mediapipe"), "tiled": DETECTORS.create("tiled", **tiled_options)}
    result = measure(detectors, widths=args.widths, seeds=args.seeds, min_score=args.min_score,
                     negatives_seed=args.negatives_seed, runner=runner)
    result["tiles"] = {f"{w}x{h}": DETECTORS.create("tiled", **tiled_options).tile_count(w, h) for w, h in SIZES} \
        if not args.pipeline else None
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
