"""Small faces in HD frames and frames without faces: found rate, false faces and detector cost.

``python -m headpose_ros.tools.small_faces`` builds scenes with :mod:`headpose_ros.tools.scenes` (public
portraits pasted at 40-160 px into 1920x1080 and 1280x720 frames; frames without faces) and runs the plain
``mediapipe`` detector and the ``tiled`` one on the same frames, interleaved frame by frame, so that the
time ratio holds on a loaded machine. A face counts as found when a detected box with a score of at least
``--min-score`` overlaps its true box by IoU > 0.3. With ``--pipeline`` the whole estimator runs (the
face-quality check included) and a face counts as found when the estimator reports it. With ``--video`` both
estimators run in video mode (as the ROS node does) on clips where a face appears after 1-12 frames without
it (:func:`measure_video`): how many frames it takes to find it, whether it stays found, and the time per
frame before and after it appears. ``--sizes 640x480 --min-width 1280`` checks that a frame narrower than the
tiled detector's ``min_width`` costs what the default detector costs.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..estimator.types import FaceBox
from . import scenes

SIZES = ((1920, 1080), (1280, 720))
WIDTHS = (40, 50, 60, 80, 100, 120, 160)
#: Bands of labelled |yaw| (degrees, lower bound inclusive) in which dataset faces' found rates are reported.
YAW_BANDS = ((0.0, 45.0), (45.0, 60.0), (60.0, 75.0), (75.0, 180.0))


def _box(item: Any) -> FaceBox:
    """A detector's box, or the box of one of the estimator's faces."""
    return getattr(item, "box", item)


def _matches(item: Any, truth: FaceBox, min_score: float) -> bool:
    box = _box(item)
    return box.iou(truth) > 0.3 and box.score >= min_score


def _found(items: list, truth: FaceBox, min_score: float) -> bool:
    return any(_matches(i, truth, min_score) for i in items)


def _yaw_band(ypr: Sequence[float]) -> str:
    yaw = abs(float(ypr[0]))
    return next(f"{lo:g}-{hi:g}" for lo, hi in YAW_BANDS if lo <= yaw < hi or hi == YAW_BANDS[-1][1])


def dataset_sources(fmt: str, path: str, every: int, estimator: Any, offset: int = 0
                    ) -> tuple[list[scenes.FaceSource], int]:
    """Face sources from a labelled dataset (e.g. ``aflw2000``, one face per image): every ``every``-th sample
    from the ``offset``-th with its angles within the benchmarks' +-99 deg, its face's box the one ``estimator``
    reports on the whole image nearest the labelled face (the box that the found test of :func:`measure` compares
    with, as the shipped portraits' boxes are BlazeFace's).

    Returns the sources and how many samples were left out because the estimator found no face in them."""
    from .datasets import every_within_range, load_dataset

    sources, missed = [], 0
    for sample in every_within_range(load_dataset(fmt, path), every, offset):
        image = sample.load_image()
        boxes = [f.box for f in estimator.process(image).faces]
        if not boxes:
            missed += 1
            continue
        cx, cy = sample.face_xy or (image.shape[1] / 2.0, image.shape[0] / 2.0)
        box = min(boxes, key=lambda b: (b.center[0] - cx) ** 2 + (b.center[1] - cy) ** 2)
        sources.append(scenes.FaceSource(sample.name, image, box, tuple(float(v) for v in sample.ypr)))
    return sources, missed


def measure(detectors: dict[str, Any], sizes: Sequence[tuple[int, int]] = SIZES, widths: Sequence[int] = WIDTHS,
            seeds: Sequence[int] = (0, 1), min_score: float = 0.5, negatives_seed: Optional[int] = None,
            runner: Optional[Any] = None, sources: Optional[Sequence[scenes.FaceSource]] = None) -> dict[str, Any]:
    """Found rate per frame size and face width, false faces per frame and median detect time per detector.

    ``detectors`` maps a label to an object with ``detect(image_bgr) -> list[FaceBox]``; with ``runner``
    (a callable image -> list of FaceBox, or of the estimator's faces, per label) that is used instead.
    ``sources`` default to the shipped portraits (:func:`scenes.face_sources`); sources with labelled angles
    (:func:`dataset_sources`) add the found rate per band of |yaw| (:data:`YAW_BANDS`) and, where the runner
    gives faces, the mean absolute angle error (degrees, mean of yaw, pitch and roll) of the faces found.
    """
    from ..estimator import geometry

    sources = list(sources) if sources is not None else scenes.face_sources()
    found: dict[str, dict[str, list[int]]] = {k: {} for k in detectors}
    by_yaw: dict[str, dict[str, list[int]]] = {k: {} for k in detectors}
    errors: dict[str, dict[str, list[float]]] = {k: {} for k in detectors}
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
                        items = runner(label, img) if runner else det.detect(img)
                        times[label].append(time.perf_counter() - t0)
                        hit = [i for i in items if _matches(i, truth, min_score)]
                        found[label].setdefault(key, []).append(int(bool(hit)))
                        if source.ypr is not None:
                            band = _yaw_band(source.ypr)
                            by_yaw[label].setdefault(band, []).append(int(bool(hit)))
                            if hit and getattr(hit[0], "pose", None) is not None:
                                err = geometry.angle_abs_error(hit[0].pose.as_array()[None],
                                                               np.asarray(source.ypr, dtype=np.float64)[None])
                                errors[label].setdefault(band, []).append(float(np.mean(err)))
    out: dict[str, Any] = {"faces_per_cell": len(seeds) * len(sources)}
    for label in detectors:
        cells = {k: round(float(np.mean(v)), 3) for k, v in found[label].items()}
        per_size = {f"{w}x{h}": round(float(np.mean(sum((v for k, v in found[label].items()
                                                         if k.startswith(f"{w}x{h}@")), []))), 3)
                    for w, h in sizes}
        out[label] = {"found": per_size, "found_by_width": cells,
                      "detect_ms_median": round(1000 * float(np.median(times[label])), 2)}
        if by_yaw[label]:
            out[label]["found_by_abs_yaw"] = {
                band: {"found": round(float(np.mean(v)), 3), "faces": len(v),
                       **({"mean_error_deg": round(float(np.mean(errors[label][band])), 2)}
                          if errors[label].get(band) else {})}
                for band, v in sorted(by_yaw[label].items(), key=lambda kv: float(kv[0].split("-")[0]))}
    if negatives_seed is not None:
        counts = dict.fromkeys(detectors, 0)
        n = 0
        for size in sizes:
            for _, img in scenes.negative_scenes(negatives_seed, size, per_source=1):
                n += 1
                for label, det in detectors.items():
                    items = runner(label, img) if runner else det.detect(img)
                    counts[label] += sum(_box(i).score >= min_score for i in items)
        for label in detectors:
            out[label]["false_faces_per_frame"] = round(counts[label] / max(n, 1), 4)
        out["negative_frames"] = n
    labels = list(detectors)
    if len(labels) > 1:
        base = out[labels[0]]["detect_ms_median"]
        for label in labels[1:]:
            out[label]["time_ratio_vs_" + labels[0]] = round(out[label]["detect_ms_median"] / max(base, 1e-9), 2)
    return out


def clips(sizes: Sequence[tuple[int, int]], widths: Sequence[int], seeds: Sequence[int], lead_max: int
          ) -> Iterator[tuple[str, np.ndarray, np.ndarray, FaceBox, int]]:
    """Video clips of :func:`measure_video`: (cell key, the frame without the face, the frame with it, its true
    box, how many frames without it come first: 1 to ``lead_max``, varied from clip to clip)."""
    sources = scenes.face_sources()
    n = 0
    for size in sizes:
        for width in widths:
            for seed in seeds:
                for i, source in enumerate(sources):
                    face, truth = scenes.face_scene(source, float(width), size,
                                                    np.random.default_rng([seed, i, width, size[0]]))
                    empty = scenes.background(size, np.random.default_rng([seed, i, width, size[0]]))
                    n += 1
                    yield f"{size[0]}x{size[1]}@{width}", empty, face, truth, 1 + (7 * n) % max(lead_max, 1)


def measure_video(estimators: dict[str, Any], sizes: Sequence[tuple[int, int]] = SIZES,
                  widths: Sequence[int] = WIDTHS, seeds: Sequence[int] = (0, 1), frames: int = 30,
                  lead_max: int = 12, within: Sequence[int] = (1, 5, 10), min_score: float = 0.5) -> dict[str, Any]:
    """Video mode on clips of a static scene where a small face appears: ``lead`` frames without it, then
    ``frames`` frames with it (:func:`clips`); each estimator's video state is reset at a clip's start and the
    estimators run interleaved frame by frame.

    Per estimator and frame size: the share of faces found within each of ``within`` frames of appearing (found:
    a reported box with IoU > 0.3 and a score >= ``min_score``), the share found at all, the share of frames
    after the first find that still report the face (``kept``), and the mean time per frame (ms) of a clip's
    first frame (``first_ms``: a full search), of the other frames without the face (``idle_ms``), of the frames
    with it (``face_ms``) and of all frames (``frame_ms``)."""
    kinds = ("first", "idle", "face")
    firsts: dict[str, dict[str, list]] = {k: {} for k in estimators}
    kept: dict[str, dict[str, list]] = {k: {} for k in estimators}
    secs = {k: {} for k in estimators}  # label -> size -> kind -> [seconds, frames]
    for key, empty, face, truth, lead in clips(sizes, widths, seeds, lead_max):
        size = key.split("@")[0]
        for est in estimators.values():
            est.video.reset()
        first: dict[str, Optional[int]] = dict.fromkeys(estimators)
        again = dict.fromkeys(estimators, 0)
        for t in range(lead + frames):
            img = empty if t < lead else face
            kind = "face" if t >= lead else ("first" if t == 0 else "idle")
            for label, est in estimators.items():
                t0 = time.perf_counter()
                boxes = [f.box for f in est.process(img, video=True).faces]
                cell = secs[label].setdefault(size, {k: [0.0, 0] for k in kinds})[kind]
                cell[0], cell[1] = cell[0] + time.perf_counter() - t0, cell[1] + 1
                if t >= lead and _found(boxes, truth, min_score):
                    if first[label] is None:
                        first[label] = t - lead + 1
                    else:
                        again[label] += 1
        for label, f in first.items():
            firsts[label].setdefault(size, []).append(f)
            if f is not None and f < frames:
                kept[label].setdefault(size, []).append(again[label] / (frames - f))
    out: dict[str, Any] = {"frames_with_face": frames, "lead_frames": [1, lead_max]}
    for label in estimators:
        out[label] = {}
        for size, found in firsts[label].items():
            cells = secs[label][size]
            total = [sum(c[0] for c in cells.values()), sum(c[1] for c in cells.values())]
            out[label][size] = {
                **{f"found_within_{n}": round(float(np.mean([f is not None and f <= n for f in found])), 3)
                   for n in within},
                "found": round(float(np.mean([f is not None for f in found])), 3),
                "frames_to_find_max": max((f for f in found if f is not None), default=None),
                "kept": round(float(np.mean(kept[label].get(size) or [0.0])), 3),
                **{f"{k}_ms": round(1000 * c[0] / max(c[1], 1), 2) for k, c in {**cells, "frame": total}.items()},
                "clips": len(found)}
    labels = list(estimators)
    for label in labels[1:]:
        for size, fig in out[label].items():
            base = out[labels[0]][size]
            fig.update({f"{k}_ms_ratio_vs_{labels[0]}": round(fig[f"{k}_ms"] / max(base[f"{k}_ms"], 1e-9), 2)
                        for k in (*kinds, "frame")})
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headpose_ros.tools.small_faces", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tile-px", type=int, default=256)
    parser.add_argument("--overlap", type=float, default=0.35)
    parser.add_argument("--stream-tiles", type=int, default=None, help="tiles per step of a video-mode search")
    parser.add_argument("--min-width", type=int, default=None, help="frames narrower than this get no tiles")
    parser.add_argument("--sizes", nargs="+", default=[f"{w}x{h}" for w, h in SIZES], help="frame sizes, WxH")
    parser.add_argument("--tile-options", type=json.loads, default=None,
                        help='the tile detector\'s options as JSON, e.g. \'{"models": "full"}\'')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--negatives-seed", type=int, default=None, help="also count false faces on these scenes")
    parser.add_argument("--pipeline", action="store_true", help="run the whole estimator (quality check included)")
    parser.add_argument("--video", action="store_true",
                        help="video mode on clips where a face appears (measure_video; the whole estimator)")
    parser.add_argument("--frames", type=int, default=30, help="--video: frames with the face per clip")
    parser.add_argument("--faces", nargs=2, metavar=("FORMAT", "PATH"), default=None,
                        help="paste the faces of a labelled dataset (e.g. aflw2000 ../shared/data/aflw2000_dev) "
                             "instead of the shipped portraits; found rates are also given per band of |yaw|")
    parser.add_argument("--every", type=int, default=3, help="--faces: take every N-th sample")
    parser.add_argument("--offset", type=int, default=0,
                        help="--faces: from the OFFSET-th sample (0 to EVERY-1: other faces than offset 0's)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    from ..estimator.detectors import DETECTORS

    tiled_options: dict[str, Any] = {"tile_px": args.tile_px, "overlap": args.overlap}
    for name in ("stream_tiles", "min_width"):
        if getattr(args, name) is not None:
            tiled_options[name] = getattr(args, name)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    if args.tile_options is not None:
        tiled_options["tile_options"] = args.tile_options
    runner: Optional[Any] = None
    if args.pipeline or args.video:
        from ..estimator.config import EstimatorConfig
        from ..estimator.pipeline import HeadPoseEstimator

        estimators = {"mediapipe": HeadPoseEstimator(EstimatorConfig(detector="mediapipe",
                                                                     min_face_score=args.min_score)),
                      "tiled": HeadPoseEstimator(EstimatorConfig(detector="tiled", detector_options=tiled_options,
                                                                 min_face_score=args.min_score))}
        detectors: dict[str, Any] = dict(estimators)
        tiled = estimators["tiled"].detector

        def run_estimator(label: str, img: np.ndarray) -> list:
            return estimators[label].process(img).faces

        runner = run_estimator
    else:
        detectors = {"mediapipe": DETECTORS.create("mediapipe"), "tiled": DETECTORS.create("tiled", **tiled_options)}
        tiled = detectors["tiled"]
    sources, extra = None, {}
    if args.faces:
        if args.video:
            parser.error("--faces applies to single frames, not --video")
        from ..estimator.config import EstimatorConfig
        from ..estimator.pipeline import HeadPoseEstimator

        sources, missed = dataset_sources(args.faces[0], args.faces[1], max(1, args.every),
                                          HeadPoseEstimator(EstimatorConfig(detector="mediapipe")), args.offset)
        extra = {"dataset": args.faces, "every": args.every, "offset": args.offset, "sources": len(sources),
                 "left_out_not_found_whole": missed}
    if args.video:
        result = measure_video(estimators, sizes, widths=args.widths, seeds=args.seeds, frames=args.frames,
                               min_score=args.min_score)
    else:
        result = measure(detectors, sizes, widths=args.widths, seeds=args.seeds, min_score=args.min_score,
                         negatives_seed=args.negatives_seed, runner=runner, sources=sources)
    result.update(extra)
    result["tiles"] = {f"{w}x{h}": {"tiles": tiled.tile_count(w, h), "stream_cycle": tiled.stream_cycle(w, h)}
                       for w, h in sizes}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
