"""``headpose-ros bench``: speed and memory of the pipeline on frames it makes itself.

Input: 640x480 frames with 1, 4 or 16 copies of the face of scikit-image's public-domain astronaut portrait
(``skimage.data.astronaut()``), resized to fit a 1x1, 2x2 or 4x4 grid on a smooth noisy background, each
frame jittered slightly in position and size (8 variants per face count, fixed seed). The number of faces
the detector actually found is measured and printed with every figure, so that no figure describes empty
frames.

Figures, per configuration:

- ``stages_ms``: median and 95th percentile of the pipeline's own stage times (detect, keypoints, regress,
  total) per face count; ``heatmaps`` is the time of rendering the found faces' heatmaps
  (:func:`heatmaps.keypoints_to_heatmaps`) measured separately; it is part of ``keypoints``;
- ``fps``: frames processed / wall-clock seconds over the timed frames (after warm-up frames);
- ``first_frame_ms``: building the estimator (model load, backends) plus processing the first frame, in this
  process after the estimator's modules, OpenCV and the TFLite interpreter's package (LiteRT, or TensorFlow
  without it) were imported (their import time is ``import_ms``);
- ``regress_ms_per_face``: the regressor alone on batches of 1, 4 and 16 heatmaps, median ms / batch size;
- ``regress_ms_by_apparent_yaw``: the regressor alone on one face at a time, median ms, by how turned the face's
  heatmaps look (synthetic heads of :mod:`.synth`, drawn as the face_mesh source draws them), in bands below,
  within and beyond the ramp over which the turned-face companion is blended in (within it both models run;
  one band, ``all``, for a model without a companion or one blended by its own reading); rendered-heatmap models
  only (the face's yaw sets the cost: the astronaut is frontal);
- ``baseline``: the method of ROS4HRI's face node (``hri_face_detect``): MediaPipe FaceMesh
  (``mediapipe.solutions.face_mesh`` with ``refine_landmarks=True``, as the node sets it, ``max_num_faces`` = the
  faces placed) and a 6-point EPnP (``cv2.solvePnP``) of the pupils, ear points, nose tip and upper lip, in its
  static-image mode and its video mode (the node's). It runs on the same frames, interleaved frame by frame
  with this project's pipeline in single-image mode and in video mode (``process(..., video=True)``), so that
  load on a shared machine hits both alike; ``ratio_to_baseline`` is this project's time per frame divided by
  the baseline's, static to static and video to video (below 1: faster);
- ``rss_first_frame_mb`` and ``peak_rss_mb``: the process's resident-memory high-water mark
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the first frame (for the first configuration: the
  estimator alone, before the ROS4HRI baseline imports mediapipe) and after the configuration ran. It is
  cumulative over the process: configurations run in the order given, so a later one's figure includes the
  earlier ones' peak; run one configuration per process for isolated figures.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import math
import os
import platform
import resource
import sys
import time
from typing import Any, Optional

import numpy as np

from ..estimator.config import EstimatorConfig
from ..estimator.errors import HeadPoseError
from ..estimator.regressor import gpu_possible
from ..estimator.tflite import interpreter_class
from .common import add_config_arguments, config_from_args, config_from_flag_string, progress, write_json

LOG = logging.getLogger(__name__)
FRAME_SIZE = (640, 480)  # width, height
FACE_COUNTS = (1, 4, 16)
BATCH_SIZES = (1, 4, 16)
#: Rows and columns of the astronaut image (512x512) holding her head, hair and ears (170x160 px, the face
#: about 95 px wide): tight enough that 16 copies on a 640x480 frame are faces of about 60 px.
FACE_CROP = (slice(45, 215), slice(145, 305))
VARIANTS = 8


def astronaut_face() -> np.ndarray:
    """The astronaut's head (170x160) as 8-bit BGR, from scikit-image's bundled data."""
    try:
        from skimage import data
    except ImportError as exc:
        raise HeadPoseError("bench makes its frames from skimage.data.astronaut(): pip install scikit-image") from exc
    return np.ascontiguousarray(data.astronaut()[FACE_CROP][:, :, ::-1])


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth gradient with sensor-like noise, (H, W, 3) uint8 BGR: the benchmarks' backdrop."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 90 + 60 * (xx / width) + 30 * (yy / height)
    return np.clip(np.stack([base, base * 0.95, base * 0.9], axis=2) + rng.normal(0, 4, (height, width, 3)),
                   0, 255).astype(np.uint8)


def make_frame(n_faces: int, rng: np.random.Generator, face: Optional[np.ndarray] = None,
               size: tuple[int, int] = FRAME_SIZE, jitter: bool = True) -> np.ndarray:
    """A (H, W, 3) uint8 BGR frame with ``n_faces`` resized copies of ``face`` on a square-ish grid."""
    import cv2

    face = astronaut_face() if face is None else face
    width, height = size
    frame = background(size, rng)
    cols = math.ceil(math.sqrt(n_faces))
    rows = math.ceil(n_faces / cols)
    cell_w, cell_h = width / cols, height / rows
    fh, fw = face.shape[:2]
    for i in range(n_faces):
        r, c = divmod(i, cols)
        scale = min(0.9 * cell_h / fh, 0.9 * cell_w / fw, 1.3) * (rng.uniform(0.95, 1.05) if jitter else 1.0)
        w, h = max(8, int(fw * scale)), max(8, int(fh * scale))
        patch = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)
        dx, dy = (rng.integers(-4, 5, size=2) if jitter else (0, 0))
        x0 = int(np.clip(c * cell_w + (cell_w - w) / 2 + dx, 0, width - w))
        y0 = int(np.clip(r * cell_h + (cell_h - h) / 2 + dy, 0, height - h))
        frame[y0:y0 + h, x0:x0 + w] = patch
    return frame


def make_frames(n_faces: int, count: int = VARIANTS, seed: int = 0) -> list[np.ndarray]:
    """``count`` jittered frames with ``n_faces`` faces each (deterministic for a seed)."""
    rng = np.random.default_rng(seed + 1000 * n_faces)
    face = astronaut_face()
    return [make_frame(n_faces, rng, face) for _ in range(count)]


class Ros4hriBaseline:
    """ROS4HRI's head-pose method (``hri_face_detect``), re-implemented from its description: MediaPipe FaceMesh
    with iris refinement, then EPnP on six landmarks against a mean 3D face (millimetres, x forward, y to the
    subject's left, z up), with the guessed focal length = image width."""

    #: Mesh landmarks: right pupil, left pupil, right and left ear (face outline), nose tip, inner upper lip.
    LANDMARKS = (468, 473, 34, 264, 1, 12)
    MODEL_MM = np.array([[-20.0, -65.5, -5.0], [-20.0, 65.5, -5.0], [-100.0, -77.5, -6.0], [-100.0, 77.5, -6.0],
                         [21.0, 0.0, -48.0], [10.0, 0.0, -75.0]])

    def __init__(self, static: bool, max_faces: int):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=max_faces,
                                                     refine_landmarks=True)

    def process(self, frame_bgr: np.ndarray) -> list[np.ndarray]:
        """Each found face's rotation (Euler angles in degrees, ``cv2.RQDecomp3x3``), as the node computes it."""
        import cv2

        height, width = frame_bgr.shape[:2]
        k = np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]])
        found = self._mesh.process(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
        poses = []
        for face in found:
            pts = np.array([[face.landmark[i].x * width, face.landmark[i].y * height] for i in self.LANDMARKS])
            ok, rvec, _ = cv2.solvePnP(self.MODEL_MM, pts, k, None, flags=cv2.SOLVEPNP_EPNP)
            if ok:
                poses.append(np.asarray(cv2.RQDecomp3x3(cv2.Rodrigues(rvec)[0])[0]))
        return poses

    def close(self) -> None:
        self._mesh.close()


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"median": float("nan"), "p95": float("nan")}
    return {"median": round(float(np.median(arr)), 3), "p95": round(float(np.percentile(arr, 95)), 3)}


def peak_rss_mb() -> float:
    """The process's resident-memory high-water mark, MiB (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": {p: _version(p) for p in ("numpy", "ai-edge-litert", "tensorflow", "mediapipe", "dlib-bin", "dlib",
                                              "opencv-contrib-python", "scikit-image")},
        "env": {k: os.environ[k] for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                                           "CUDA_VISIBLE_DEVICES") if k in os.environ},
    }
    info["gpus"] = []
    if gpu_possible():  # else TensorFlow sees none: do not import it (the CPU estimator does not)
        try:
            import tensorflow as tf

            info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
        except ImportError:
            info["gpus"] = None
    return info


def import_estimator_runtime() -> tuple[float, str]:
    """Import what the CPU estimator loads (its modules, OpenCV, the TFLite interpreter's package: LiteRT, or
    TensorFlow without it); milliseconds it took and the interpreter's runtime name. The ROS4HRI baseline imports
    mediapipe later, untimed."""
    t0 = time.perf_counter()
    importlib.import_module("headpose_ros.estimator.pipeline")
    importlib.import_module("cv2")
    _, runtime = interpreter_class()
    return round((time.perf_counter() - t0) * 1000.0, 1), runtime


def bench_config(name: str, config: EstimatorConfig, frames: dict[int, list[np.ndarray]], n_frames: int,
                 warmup: int = 3, repeats: int = 30, baseline: bool = False) -> dict[str, Any]:
    """All figures of one configuration (see the module docstring)."""
    from ..estimator import heatmaps as hm
    from ..estimator.pipeline import HeadPoseEstimator

    out: dict[str, Any] = {"config": config.to_dict()}
    t0 = time.perf_counter()
    estimator = HeadPoseEstimator(config)
    t1 = time.perf_counter()
    try:
        estimator.process(frames[1][0])
    except BaseException:
        estimator.close()
        raise
    t2 = time.perf_counter()
    out["rss_first_frame_mb"] = peak_rss_mb()
    out["construct_ms"] = round((t1 - t0) * 1000.0, 1)
    out["first_frame_ms"] = round((t2 - t0) * 1000.0, 1)
    out["pipeline"] = estimator.describe()
    rendered = getattr(estimator.keypoint_source, "heatmap_kind", "rendered") == "rendered"
    out["fps"], out["stages_ms"], out["faces_found"] = {}, {}, {}
    sample_maps: list[np.ndarray] = []
    if baseline and importlib.util.find_spec("mediapipe") is None:
        LOG.warning("the ROS4HRI baseline needs mediapipe, which is not installed: not measured")
        baseline = False
    if baseline:
        out["video_fps"], out["baseline"], out["ratio_to_baseline"] = {}, {}, {}
    try:
        for count, variants in frames.items():
            runners = _interleaved_runners(estimator, count, baseline)
            for i in range(warmup):
                estimator.process(variants[i % len(variants)])
                for run_one in runners.values():
                    run_one(variants[i % len(variants)])
            estimator.video.reset()
            stages: dict[str, list[float]] = {}
            found: list[int] = []
            heat_ms: list[float] = []
            elapsed = 0.0
            other = {key: [0.0, []] for key in runners}  # seconds, faces found per frame
            for i in progress(range(n_frames), desc=f"bench {name} {count} face(s)", unit="frame"):
                frame = variants[i % len(variants)]
                s = time.perf_counter()
                result = estimator.process(frame)
                elapsed += time.perf_counter() - s
                for key, run_one in runners.items():  # the same frame, at once: load hits every method alike
                    s = time.perf_counter()
                    n_found = run_one(frame)
                    other[key][0] += time.perf_counter() - s
                    other[key][1].append(n_found)
                found.append(len(result.faces))
                for stage, ms in result.stages_ms.items():
                    stages.setdefault(stage, []).append(ms)
                if rendered and result.faces:
                    xy = np.stack([f.keypoints.xy for f in result.faces])
                    conf = np.stack([f.keypoints.confidence for f in result.faces])
                    h0 = time.perf_counter()
                    hm.keypoints_to_heatmaps(xy, conf, config.keypoint_threshold)
                    heat_ms.append((time.perf_counter() - h0) * 1000.0)
                if result.faces and len(sample_maps) < 16:
                    sample_maps.extend(f.heatmaps for f in result.faces if f.heatmaps is not None)
            key = str(count)
            out["fps"][key] = round(n_frames / elapsed, 2) if elapsed > 0 else None
            out["stages_ms"][key] = {stage: _stats(v) for stage, v in stages.items()}
            if heat_ms:
                out["stages_ms"][key]["heatmaps"] = _stats(heat_ms)
            out["faces_found"][key] = {"expected": count, "min": int(min(found)), "median": float(np.median(found)),
                                       "max": int(max(found))}
            if baseline:
                _baseline_figures(out, key, elapsed, other, n_frames)
            for run_one in runners.values():
                getattr(run_one, "close", lambda: None)()
        maps = np.stack(sample_maps[:16]).astype(np.float32) if sample_maps else \
            np.zeros((1, 96, 96, 5), np.float32)
        out["regress_input"] = "heatmaps of found faces" if sample_maps else "zeros (no face was found)"
        out["regress_ms_per_face"] = {}
        for batch in BATCH_SIZES:
            x = np.resize(maps, (batch, *maps.shape[1:])).astype(np.float32)
            estimator.regressor.predict(x)  # warm-up for this batch shape
            times = []
            for _ in range(repeats):
                s = time.perf_counter()
                estimator.regressor.predict(x)
                times.append((time.perf_counter() - s) * 1000.0)
            out["regress_ms_per_face"][str(batch)] = round(float(np.median(times)) / batch, 3)
        if estimator.regressor.heatmap_kind == "rendered":
            out["regress_ms_by_apparent_yaw"] = regress_ms_by_apparent_yaw(
                estimator.regressor, config.keypoint_threshold, max(1, repeats // 10))
    finally:
        estimator.close()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def regress_ms_by_apparent_yaw(regressor, threshold: float, repeats: int, per_band: int = 20,
                               seed: int = 0) -> dict[str, float]:
    """Median ms of ``regressor.predict`` on one face's heatmaps by band of the heatmaps' apparent yaw (degrees):
    below, within and beyond the companion's ``blend_apparent_deg`` ramp, else one band ``all``; up to
    ``per_band`` synthetic faces per band (face_mesh profile, levelled as that source levels them by default,
    ``LEVEL_BEYOND_DEG``), each timed ``repeats`` times."""
    from ..estimator.keypoints.face_mesh import LEVEL_BEYOND_DEG, levelled_heatmaps
    from ..estimator.regressor import heatmap_apparent_yaws_deg
    from .synth import PROFILES, generate

    heads = generate(40 * per_band, seed, PROFILES["face_mesh"])
    maps, _ = levelled_heatmaps(heads.xy, heads.confidence, threshold, LEVEL_BEYOND_DEG)
    maps = maps.astype(np.float32)
    apparent = np.abs(heatmap_apparent_yaws_deg(maps))
    ramp = getattr(regressor, "blend_apparent_deg", None)  # None without a companion, or one blended by its reading
    edges = [0.0, *ramp, 180.0] if ramp else [0.0, 180.0]
    out: dict[str, float] = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        picked = np.flatnonzero((apparent >= lo) & (apparent < hi))[:per_band]
        if not picked.size:
            continue
        times = []
        regressor.predict(maps[picked[:1]])  # warm-up at batch 1
        for _ in range(repeats):
            for i in picked:
                s = time.perf_counter()
                regressor.predict(maps[i:i + 1])
                times.append((time.perf_counter() - s) * 1000.0)
        key = "all" if not ramp else f"{lo:g}-{hi:g}" + (" (both models)" if lo == ramp[0] else "")
        out[key] = round(float(np.median(times)), 3)
    return out


def _interleaved_runners(estimator, count: int, baseline: bool) -> dict[str, Any]:
    """Callables (frame -> faces found) run on every timed frame next to ``estimator.process(frame)``: this
    project's video mode and the ROS4HRI baseline in both modes (empty without ``baseline``)."""
    if not baseline:
        return {}

    def video(frame: np.ndarray) -> int:
        return len(estimator.process(frame, video=True).faces)

    runners: dict[str, Any] = {"video": video}
    for mode in ("static", "video"):
        method = Ros4hriBaseline(static=mode == "static", max_faces=count)

        def run_one(frame: np.ndarray, method: Ros4hriBaseline = method) -> int:
            return len(method.process(frame))

        run_one.close = method.close  # type: ignore[attr-defined]
        runners[f"baseline_{mode}"] = run_one
    return runners


def _baseline_figures(out: dict[str, Any], key: str, elapsed: float, other: dict[str, list], n_frames: int) -> None:
    """fps of video mode and of the baseline, and this project's time per frame / the baseline's."""
    seconds = {"static": elapsed, **{k: v[0] for k, v in other.items()}}
    out["video_fps"][key] = round(n_frames / seconds["video"], 2)
    out["baseline"][key] = {mode: {"fps": round(n_frames / seconds[f"baseline_{mode}"], 2),
                                   "faces_found": {"min": int(min(other[f"baseline_{mode}"][1])),
                                                   "max": int(max(other[f"baseline_{mode}"][1]))}}
                            for mode in ("static", "video")}
    out["baseline"][key]["video"]["ours_faces_found"] = {"min": int(min(other["video"][1])),
                                                         "max": int(max(other["video"][1]))}
    out["ratio_to_baseline"][key] = {mode: round(seconds[mode] / seconds[f"baseline_{mode}"], 3)
                                     for mode in ("static", "video")}


def format_report(results: dict[str, dict[str, Any]]) -> str:
    """A plain-text table of every configuration's figures."""
    lines = []
    for name, res in results.items():
        if "error" in res:
            lines.append(f"[{name}] not measured: {res['error']}")
            continue
        p = res.get("pipeline", {})
        lines.append(f"[{name}] detector={p.get('detector')} keypoints={p.get('keypoints')} device={p.get('device')} "
                     f"model={p.get('model')} runtime={p.get('runtime')}")
        lines.append(f"  first frame {res['first_frame_ms']:.0f} ms (construction {res['construct_ms']:.0f} ms), "
                     f"peak RSS {res['rss_first_frame_mb']:.0f} MiB after it, {res['peak_rss_mb']:.0f} MiB at the end")
        lines.append(f"  {'faces':>5s} {'found':>11s} {'fps':>7s}  stage ms median / p95")
        for key, fps in res["fps"].items():
            f = res["faces_found"][key]
            found = f"{f['min']}-{f['max']}" if f["min"] != f["max"] else f"{f['min']}"
            stages = "  ".join(f"{s} {v['median']:.1f}/{v['p95']:.1f}" for s, v in res["stages_ms"][key].items())
            flag = "" if f["min"] >= f["expected"] else "  (!) fewer faces found than placed"
            lines.append(f"  {key:>5s} {found + '/' + key:>11s} {fps if fps is not None else float('nan'):7.1f}  "
                         f"{stages}{flag}")
        for key, ratio in res.get("ratio_to_baseline", {}).items():
            base = res["baseline"][key]
            lines.append(f"  {key:>5s} faces vs ROS4HRI (FaceMesh + EPnP), same frames interleaved: static "
                         f"{res['fps'][key]:.1f} fps vs {base['static']['fps']:.1f} (found "
                         f"{base['static']['faces_found']['min']}-{base['static']['faces_found']['max']}), ratio "
                         f"{ratio['static']:.2f}; video {res['video_fps'][key]:.1f} fps vs {base['video']['fps']:.1f} "
                         f"(found {base['video']['faces_found']['min']}-{base['video']['faces_found']['max']}), "
                         f"ratio {ratio['video']:.2f}")
        per_face = ", ".join(f"batch {b}: {v:.2f}" for b, v in res["regress_ms_per_face"].items())
        lines.append(f"  regression ms per face: {per_face}  ({res['regress_input']})")
        by_yaw = res.get("regress_ms_by_apparent_yaw")
        if by_yaw:
            bands = ", ".join(f"{band}: {ms:.2f}" for band, ms in by_yaw.items())
            lines.append(f"  regression ms of one face by its heatmaps' apparent yaw (deg; synthetic faces): {bands}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The ``bench`` command."""
    if args.frames < 1:
        raise HeadPoseError("--frames must be >= 1")
    base = config_from_args(args)
    configs: dict[str, EstimatorConfig] = {}
    if not args.skip_default:
        default = base.to_dict()
        if args.device is None and not args.config:
            default["device"] = "cpu"  # the default CPU configuration
        configs["default"] = EstimatorConfig.from_dict(default)
    for item in args.configs or []:
        name, sep, spec = item.partition("=")
        if not sep or not name:
            raise HeadPoseError(f"--configs takes NAME=YAML_OR_FLAGS, not {item!r}")
        configs[name] = config_from_flag_string(spec, base.to_dict())
    if not configs:
        raise HeadPoseError("nothing to measure: --skip-default without --configs")
    import_ms, tflite_runtime = import_estimator_runtime()
    machine = machine_info()
    frames = {count: make_frames(count, VARIANTS, args.seed) for count in FACE_COUNTS}
    results: dict[str, dict[str, Any]] = {}
    for name, config in configs.items():
        try:
            results[name] = bench_config(name, config, frames, args.frames, repeats=args.repeats,
                                         baseline=args.baseline == "ros4hri")
        except HeadPoseError as exc:  # e.g. a backend not installed: report it, measure the others
            LOG.error("configuration %s: %s", name, exc)
            results[name] = {"error": str(exc), "config": config.to_dict()}
    print(f"bench: {args.frames} timed frames per face count at {FRAME_SIZE[0]}x{FRAME_SIZE[1]}, "
          f"import of the estimator ({tflite_runtime} TFLite) {import_ms:.0f} ms, {machine['cpus_usable']} usable CPUs "
          f"({machine['cpu']}), "
          f"load average at start {machine['load_average_at_start']}")
    print(format_report(results))
    if args.json:
        ok = {k: v for k, v in results.items() if "error" not in v}
        write_json(args.json, {
            "frames_per_measurement": args.frames,
            "input": f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]} frames, 1/4/16 copies of skimage.data.astronaut()'s face, "
                     f"{VARIANTS} jittered variants each, seed {args.seed}",
            "fps": {k: v["fps"] for k, v in ok.items()},
            "faces_found": {k: v["faces_found"] for k, v in ok.items()},
            "stages_ms": {k: v["stages_ms"] for k, v in ok.items()},
            "regress_ms_per_face": {k: v["regress_ms_per_face"] for k, v in ok.items()},
            "regress_ms_by_apparent_yaw": {k: v["regress_ms_by_apparent_yaw"] for k, v in ok.items()
                                           if "regress_ms_by_apparent_yaw" in v},
            "video_fps": {k: v["video_fps"] for k, v in ok.items() if "video_fps" in v},
            "baseline": {k: v["baseline"] for k, v in ok.items() if "baseline" in v},
            "ratio_to_baseline": {k: v["ratio_to_baseline"] for k, v in ok.items() if "ratio_to_baseline" in v},
            "first_frame_ms": {k: v["first_frame_ms"] for k, v in ok.items()},
            "construct_ms": {k: v["construct_ms"] for k, v in ok.items()},
            "import_ms": import_ms,
            "tflite_runtime": tflite_runtime,
            "rss_first_frame_mb": {k: v["rss_first_frame_mb"] for k, v in ok.items()},
            "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in ok.items()},
            "peak_rss_note": "resource.getrusage(RUSAGE_SELF).ru_maxrss, cumulative over configurations in run order",
            "pipeline": {k: v["pipeline"] for k, v in ok.items()},
            "errors": {k: v["error"] for k, v in results.items() if "error" in v},
            "machine": machine,
            "config": {k: v["config"] for k, v in results.items()},
        })
    return 0 if all("error" not in v for v in results.values()) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command."""
    parser = subparsers.add_parser(
        "bench", help="per-stage time, frames per second, first-frame latency and memory on frames it makes",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    parser.add_argument("--configs", nargs="+", metavar="NAME=YAML_OR_FLAGS",
                        help="further configurations to measure, each a YAML file or a quoted string of estimator "
                        "flags, e.g. dlib_cnn='--detector dlib_cnn' hog='--detector dlib_hog'")
    parser.add_argument("--skip-default", action="store_true", help="do not measure the default CPU configuration")
    parser.add_argument("--frames", type=int, default=100, help="timed frames per face count (default 100)")
    parser.add_argument("--repeats", type=int, default=30, help="timed regressor calls per batch size (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames")
    parser.add_argument("--baseline", choices=("ros4hri", "none"), default="ros4hri",
                        help="also run ROS4HRI's method (MediaPipe FaceMesh + EPnP) and this project's video mode on "
                        "the same frames, interleaved, and report time ratios (default ros4hri; needs mediapipe)")
    add_config_arguments(parser, defaults_note="the base of every configuration; 'default' runs on the CPU "
                         "unless --device or --config says otherwise")
    parser.set_defaults(func=run)
