"""``headpose-ros soak``: the node's processing core under sustained load, without ROS.

Three threads, as in ``headpose_node``: a producer (the camera) submits ``sensor_msgs/Image`` messages
(``bgr8``, rosbags' message classes, a fresh header per frame) at ``--rate`` Hz to a
:class:`~headpose_ros.estimator.stream.LatestFrameProcessor`, whose worker decodes each frame, runs it through
:class:`~headpose_ros.ros.core.HeadPoseCore` (the estimator of the configuration flags, tracking, smoothing)
and builds the messages the node publishes (/head_pose, /head_poses, /tf, markers), exactly as the node's
worker does; the main thread samples the resident memory every half second.

Frames: ``--width`` x ``--height`` (default 1920x1080) with 0, 1 or 8 copies of the head of scikit-image's
public-domain astronaut portrait (``skimage.data.astronaut()``, bench's crop) on bench's noisy gradient
background, as large as a grid of the frame allows (8 faces at 1080p: 4 x 2, heads about 420 px wide; the
default detector sees the whole frame downscaled and misses much smaller faces in a 1080p frame), four
jittered variants per face count. Before the soak, every variant is run once
and the number of faces the detector actually finds is printed, so that no figure describes empty frames.

Per face count (``--faces``), for ``--seconds`` each, the report gives:

- frames submitted, processed, skipped (replaced by a newer frame before the worker was free) and failed;
- latency, submit -> messages built (the moment the node publishes), p50 / p95 / p99 in ms; the processing
  time (decode + estimator + tracking + messages) and the wait before it;
- resident memory (VmRSS) at the start, after ``--warmup`` seconds and at the end, and its slope over the
  post-warm-up samples (least squares, MB/min);
- drift: median latency of the first third of the post-warm-up frames against the last third;
- newest-frame-only: processed frames come in submit order, and how many newer frames existed when a frame
  started (0, or 1 when a frame arrives between the hand-over and the start).

Then a "many faces" sweep (``--sweep-faces``, ``--sweep-frames`` frames each, ``max_faces`` raised to 256):
time per frame with 1..32 faces, and the same frames with ``max_faces`` capping them (``--sweep-caps``
``FACES:MAX_FACES`` pairs), in two modes: ``detector`` (the real pipeline; the faces it finds are printed) and
``placed`` (the detector replaced by the placed faces' boxes, keypoints and regression real), so that the
per-face cost is measured up to 32 faces even where the detector finds fewer.

Checks (each printed as PASS or FAIL with its threshold; the exit code is 1 when any fails):
``memory`` RSS growth from after warm-up to the end <= ``--max-growth-mb``; ``drift`` last-third median
latency <= ``--max-drift`` x the first third's or <= ``--max-drift-ms`` above it; ``newest`` processed
frames in submit order and never more than one newer frame at a start; ``accounting`` submitted = processed +
skipped + failed; ``linear`` (placed mode) from one face count to the next, the time per frame grows at most
by the faces' factor x (1 + ``--linear-tolerance``); ``max_faces`` a capped frame yields exactly the cap's
faces in at most (1 + ``--linear-tolerance``) x the time of an uncapped frame with that many faces.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import threading
import time
from typing import Any, Optional

import numpy as np

from ..estimator.errors import ConfigError
from .bench import background, peak_rss_mb
from .common import add_config_arguments, config_from_args, progress, write_json

LOG = logging.getLogger(__name__)
VARIANTS = 4
RSS_PERIOD_S = 0.5
FRAME_ID = "camera_color_optical_frame"


# --- measurements ------------------------------------------------------------------------------------------

def rss_mb() -> float:
    """Current resident memory of this process in MiB (VmRSS); the peak (ru_maxrss) where /proc is missing."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def percentiles(values: "list[float] | np.ndarray", qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, Optional[float]]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` of ``values`` (None for no values), rounded to 0.1."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(np.percentile(arr, q)), 1) for q in qs}


def slope_per_minute(times_s: "list[float] | np.ndarray", values: "list[float] | np.ndarray") -> Optional[float]:
    """Least-squares slope of ``values`` against ``times_s`` (seconds), per minute; None for < 3 points."""
    t, v = np.asarray(times_s, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if t.size < 3 or float(np.ptp(t)) <= 0:
        return None
    return round(float(np.polyfit(t, v, 1)[0]) * 60.0, 3)


def drift(submit_s: "list[float] | np.ndarray", latency_ms: "list[float] | np.ndarray") -> dict[str, Any]:
    """Median latency of the first and last thirds of the frames (by submit time) and last / first."""
    order = np.argsort(np.asarray(submit_s, dtype=np.float64))
    lat = np.asarray(latency_ms, dtype=np.float64)[order]
    if lat.size < 6:
        return {"first_p50_ms": None, "last_p50_ms": None, "ratio": None, "frames_per_third": int(lat.size // 3)}
    third = lat.size // 3
    first, last = float(np.median(lat[:third])), float(np.median(lat[-third:]))
    return {"first_p50_ms": round(first, 1), "last_p50_ms": round(last, 1),
            "ratio": round(last / first, 3) if first > 0 else None, "frames_per_third": int(third)}


# --- frames --------------------------------------------------------------------------------------------------

def grid_for(n_faces: int, size: tuple[int, int], face_shape: tuple[int, int]) -> tuple[int, int, float]:
    """(columns, rows, scale) of the grid holding ``n_faces`` copies of a ``face_shape`` (h, w) patch as large as
    possible in a frame of ``size`` (width, height), each filling at most 90% of its cell."""
    width, height = size
    fh, fw = face_shape
    best = (1, 1, 0.0)
    for cols in range(1, max(n_faces, 1) + 1):
        rows = math.ceil(max(n_faces, 1) / cols)
        scale = min(0.9 * width / cols / fw, 0.9 * height / rows / fh)
        if scale > best[2]:
            best = (cols, rows, scale)
    return best


def make_soak_frame(n_faces: int, rng: np.random.Generator, face: np.ndarray,
                    size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A frame of ``size`` (width, height) with ``n_faces`` copies of ``face`` on the grid of :func:`grid_for`,
    each jittered by a few pixels and +-5% in size; and the pasted patches as (x, y, w, h) pixels."""
    import cv2

    frame = background(size, rng)
    width, height = size
    cols, rows, scale = grid_for(n_faces, size, face.shape[:2])
    cell_w, cell_h = width / cols, height / rows
    rects = []
    for i in range(n_faces):
        r, c = divmod(i, cols)
        s = scale * rng.uniform(0.95, 1.0)
        w, h = max(8, int(face.shape[1] * s)), max(8, int(face.shape[0] * s))
        dx, dy = rng.integers(-4, 5, size=2)
        x0 = int(np.clip(c * cell_w + (cell_w - w) / 2 + dx, 0, width - w))
        y0 = int(np.clip(r * cell_h + (cell_h - h) / 2 + dy, 0, height - h))
        frame[y0:y0 + h, x0:x0 + w] = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)
        rects.append((x0, y0, w, h))
    return frame, rects


def make_variants(n_faces: int, size: tuple[int, int], count: int = VARIANTS,
                  seed: int = 0) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    """``count`` jittered frames (and their face patches) with ``n_faces`` faces, deterministic for a seed."""
    from .bench import astronaut_face

    rng = np.random.default_rng(seed + 7919 * n_faces)
    face = astronaut_face()
    return [make_soak_frame(n_faces, rng, face, size) for _ in range(count)]


@dataclasses.dataclass
class _Item:
    seq: int
    msg: Any
    t_submit: float


@dataclasses.dataclass
class _Record:
    seq: int
    t_submit: float
    t_start: float
    t_done: float
    stages_total_ms: float
    faces: int
    newer_at_start: int


def build_messages(types: Any, values: dict[str, Any], result: Any) -> list[Any]:
    """The messages ``headpose_node`` publishes for one result (its ``_publish``, without the debug image, which
    it makes only while someone subscribes): /head_pose, /head_poses, /tf and ~/markers."""
    from ..ros import messages

    out = messages.frame_outputs(types, result, values["publish_tf"], values["markers"], values["tf_prefix"])
    if "transforms" in out:
        out["transforms"] = messages.tf_message(types, out["transforms"])
    return list(out.values())


# --- one soak phase ------------------------------------------------------------------------------------------

def soak_phase(core: Any, frames: list[np.ndarray], seconds: float, rate: float, warmup: float,
               max_rate: float = 0.0, label: str = "") -> dict[str, Any]:
    """Feed ``frames`` (cycled) at ``rate`` Hz for ``seconds`` through a LatestFrameProcessor running
    ``core.process_msg``; the figures of one face count (see the module docstring)."""
    from ..estimator.stream import LatestFrameProcessor
    from ..ros import messages

    types = messages.RosbagsTypes()
    templates = [messages.image_msg(types, messages.HeaderData(0, 0, FRAME_ID), f) for f in frames]
    records: list[_Record] = []
    errors: list[str] = []
    latest = [-1]
    lock = threading.Lock()

    def process(item: _Item):
        t_start = time.perf_counter()
        newer = latest[0] - item.seq
        return core.process_msg(item.msg), t_start, newer

    def on_result(item: _Item, out) -> None:
        result, t_start, newer = out
        build_messages(types, core.values, result)  # what the node's worker publishes, built alike
        t_done = time.perf_counter()
        with lock:
            records.append(_Record(item.seq, item.t_submit, t_start, t_done,
                                   float(result.frame.stages_ms.get("total", float("nan"))), len(result.faces), newer))

    def on_error(item: _Item, exc: BaseException) -> None:
        with lock:
            errors.append(f"frame {item.seq}: {type(exc).__name__}: {exc}")

    processor = LatestFrameProcessor(process, on_result, on_error, max_rate=max_rate, name="soak-worker")
    stop = threading.Event()
    lag: list[float] = []
    period = 1.0 / rate

    def produce(t0: float) -> None:
        k = 0
        stamp0 = time.time_ns()
        while not stop.is_set():
            target = t0 + k * period
            if target - t0 >= seconds:
                return
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.perf_counter()
            lag.append(now - target)
            header = messages.header_msg(types, messages.HeaderData.from_ns(stamp0 + int(k * period * 1e9), FRAME_ID))
            msg = dataclasses.replace(templates[k % len(templates)], header=header)
            latest[0] = k
            processor.submit(_Item(k, msg, time.perf_counter()))
            k += 1

    rss: list[tuple[float, float]] = []
    processor.start()
    t0 = time.perf_counter() + 0.05
    rss.append((0.0, rss_mb()))
    producer = threading.Thread(target=produce, args=(t0,), name="soak-producer", daemon=True)
    producer.start()
    bar = progress(total=int(round(seconds)), desc=f"soak {label}".strip(), unit="s")
    try:
        shown = 0
        while producer.is_alive():
            producer.join(RSS_PERIOD_S)
            now = time.perf_counter() - t0
            rss.append((now, rss_mb()))
            if int(now) > shown:
                bar.update(min(int(now), int(round(seconds))) - shown)
                shown = min(int(now), int(round(seconds)))
        idle = processor.wait_idle(timeout=max(30.0, 10 * seconds))
    except KeyboardInterrupt:
        stop.set()
        producer.join(5.0)
        processor.stop(timeout=5.0)
        bar.close()
        raise
    finally:
        bar.close()
    stopped = processor.stop(timeout=30.0)
    rss.append((time.perf_counter() - t0, rss_mb()))
    stats = processor.stats()
    return summarise_phase(records, errors, stats, rss, seconds, rate, warmup, lag, t0, idle and stopped)


def summarise_phase(records: list[_Record], errors: list[str], stats: Any, rss: list[tuple[float, float]],
                    seconds: float, rate: float, warmup: float, lag: list[float], t0: float,
                    finished: bool) -> dict[str, Any]:
    """The figures of one phase from its raw records (times in seconds from perf_counter)."""
    recs = sorted(records, key=lambda r: r.t_done)
    warm = [r for r in recs if r.t_submit - t0 >= warmup]
    latency = [(r.t_done - r.t_submit) * 1e3 for r in warm]
    processing = [(r.t_done - r.t_start) * 1e3 for r in warm]
    wait = [(r.t_start - r.t_submit) * 1e3 for r in warm]
    seqs = [r.seq for r in recs]
    rss_t = np.array([t for t, _ in rss])
    rss_v = np.array([v for _, v in rss])
    after = rss_t >= warmup
    rss_warm = float(rss_v[after][0]) if after.any() else float(rss_v[-1])
    faces = [r.faces for r in recs]
    return {
        "seconds": seconds,
        "rate_hz": rate,
        "input_rate_hz": round(stats.submitted / seconds, 2) if seconds > 0 else None,
        "producer_lag_ms": percentiles(np.asarray(lag) * 1e3),
        "submitted": stats.submitted,
        "processed": stats.processed,
        "skipped": stats.skipped,
        "errors": stats.failed,
        "error_examples": errors[:5],
        "processed_per_s": round(stats.processed / seconds, 2) if seconds > 0 else None,
        "frames_after_warmup": len(warm),
        "latency_ms": percentiles(latency),
        "processing_ms": percentiles(processing),
        "wait_ms": percentiles(wait),
        "estimator_total_ms": percentiles([r.stages_total_ms for r in warm]),
        "faces_found": ({"min": int(min(faces)), "median": float(np.median(faces)), "max": int(max(faces))}
                        if faces else None),
        "rss_mb": {"start": round(float(rss_v[0]), 1), "after_warmup": round(rss_warm, 1),
                   "end": round(float(rss_v[-1]), 1), "max": round(float(rss_v.max()), 1),
                   "growth_after_warmup": round(float(rss_v[-1]) - rss_warm, 1),
                   "slope_mb_per_min": slope_per_minute(rss_t[after], rss_v[after]),
                   "samples": int(rss_v.size)},
        "drift": drift([r.t_submit for r in warm], latency),
        "newest_only": {"in_submit_order": bool(all(a < b for a, b in zip(seqs, seqs[1:]))),
                        "max_newer_at_start": int(max((r.newer_at_start for r in recs), default=0)),
                        "starts_with_a_newer_frame": int(sum(r.newer_at_start > 0 for r in recs))},
        "accounting_ok": stats.submitted == stats.processed + stats.skipped + stats.failed and not stats.pending,
        "finished_cleanly": bool(finished),
    }


# --- the many-faces sweep ------------------------------------------------------------------------------------

class PlacedFaces:
    """A stand-in detector returning the boxes of the faces pasted into the current frame (set ``rects``):
    the face box the real detector draws on the astronaut patch (``relative``: fractions of the patch),
    so that keypoints and regression get exactly the placed faces even where the detector would miss some."""

    def __init__(self, relative: tuple[float, float, float, float], score: float = 0.9):
        self.relative, self.score = relative, score
        self.rects: list[tuple[int, int, int, int]] = []

    def detect(self, image_bgr: np.ndarray) -> list[Any]:
        from ..estimator.types import FaceBox

        a, b, c, d = self.relative
        return [FaceBox(x + a * w, y + b * h, x + c * w, y + d * h, self.score) for x, y, w, h in self.rects]


def relative_face_box(estimator: Any, size: tuple[int, int], seed: int = 0) -> tuple[float, float, float, float]:
    """Where the real detector puts the face inside a pasted astronaut patch, as fractions of the patch."""
    frame, rects = make_variants(1, size, 1, seed)[0]
    boxes = estimator.detector.detect(frame)
    if not boxes:
        raise ConfigError("the detector finds no face in the single-face frame; the sweep cannot place faces")
    box, (x, y, w, h) = max(boxes, key=lambda b: b.area), rects[0]
    return ((box.x0 - x) / w, (box.y0 - y) / h, (box.x1 - x) / w, (box.y1 - y) / h)


def _time_frames(estimator: Any, frames: list[tuple[np.ndarray, list]], n: int,
                 placed: Optional[PlacedFaces] = None) -> dict[str, Any]:
    def one(i: int):
        frame, rects = frames[i % len(frames)]
        if placed is not None:
            placed.rects = rects
        s = time.perf_counter()
        result = estimator.process(frame)
        return (time.perf_counter() - s) * 1e3, result

    for i in range(min(2, len(frames))):  # warm-up (batch shapes, tracing)
        one(i)
    totals, found, stages = [], [], {}
    for i in range(n):
        ms, result = one(i)
        totals.append(ms)
        found.append(len(result.faces))
        for stage, v in result.stages_ms.items():
            stages.setdefault(stage, []).append(v)
    return {"ms_per_frame": round(float(np.median(totals)), 1), "ms_p95": round(float(np.percentile(totals, 95)), 1),
            "faces_found": float(np.median(found)), "faces_found_min": int(min(found)),
            "stages_ms": {k: round(float(np.median(v)), 1) for k, v in stages.items()}}


def sweep(estimator: Any, counts: list[int], caps: list[tuple[int, int]], size: tuple[int, int],
          frames_per_count: int, seed: int = 0) -> dict[str, Any]:
    """Time per frame against faces, ``max_faces`` 256 unless capped, in two modes: ``detector`` (the real
    pipeline: faces found) and ``placed`` (the placed faces' boxes instead of the detector's, the rest real)."""
    from ..estimator.pipeline import HeadPoseEstimator

    original = estimator.config
    placed = PlacedFaces(relative_face_box(estimator, size, seed))
    with_placed = HeadPoseEstimator(original, detector=placed, keypoint_source=estimator.keypoint_source,
                                    regressor=estimator.regressor)
    out: dict[str, Any] = {"size": list(size), "frames_per_count": frames_per_count,
                           "placed_box_in_patch": [round(v, 3) for v in placed.relative],
                           "detector": {}, "placed": {}, "capped": {}}
    frames = {n: make_variants(n, size, 2, seed) for n in sorted(set(counts) | {n for n, _ in caps})}
    try:
        for mode, est in (("detector", estimator), ("placed", with_placed)):
            est.config = dataclasses.replace(original, max_faces=256)
            for n in progress(counts, desc=f"sweep ({mode})", unit="count"):
                out[mode][str(n)] = {"placed": n, **_time_frames(est, frames[n], frames_per_count,
                                                                 placed if mode == "placed" else None)}
            for n, cap in caps:
                est.config = dataclasses.replace(original, max_faces=cap)
                out["capped"][f"{mode} {n}:{cap}"] = {
                    "mode": mode, "placed": n, "max_faces": cap,
                    **_time_frames(est, frames[n], frames_per_count, placed if mode == "placed" else None)}
    finally:
        estimator.config = original
    return out


def _cap_text(case: dict[str, Any]) -> str:
    ref = case["uncapped_ms_same_faces"]
    return (f"{case['case']}: {case['faces']:g} faces in {case['ms_per_frame']:.0f} ms, uncapped "
            + ("-" if ref is None else f"{ref:.0f} ms"))


def sweep_checks(result: dict[str, Any], tolerance: float) -> dict[str, dict[str, Any]]:
    """``linear`` (placed mode, where every placed face is processed) and ``max_faces`` verdicts."""
    checks: dict[str, dict[str, Any]] = {}
    fits: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    for mode in ("detector", "placed"):
        points = sorted((v["faces_found"], v["ms_per_frame"]) for v in result[mode].values() if v["faces_found"] > 0)
        if len({f for f, _ in points}) >= 2:
            f, t = np.array(points).T
            b, a = np.polyfit(f, t, 1)
            resid = t - (a + b * f)
            r2 = 1 - float(np.sum(resid ** 2)) / float(np.sum((t - t.mean()) ** 2)) if np.ptp(t) > 0 else 1.0
            fits[mode] = {"ms_fixed": round(float(a), 1), "ms_per_face": round(float(b), 2), "r2": round(r2, 4)}
        if mode == "placed":
            for (f1, t1), (f2, t2) in zip(points, points[1:]):
                if f2 > f1:
                    steps.append({"faces": [f1, f2], "time_ratio": round(t2 / t1, 3),
                                  "faces_ratio": round(f2 / f1, 3), "ok": t2 / t1 <= (f2 / f1) * (1 + tolerance)})
    if result["placed"]:
        worst = max(steps, key=lambda s: s["time_ratio"] / s["faces_ratio"], default=None)
        checks["linear"] = {
            "ok": bool(steps) and all(s["ok"] for s in steps), "steps": steps, "fits": fits,
            "rule": f"placed faces: time ratio <= faces ratio x {1 + tolerance:g} at every step",
            "detail": None if worst is None else
            f"worst step {worst['faces'][0]:g}->{worst['faces'][1]:g} faces: time x{worst['time_ratio']:.2f}"}
    cases = []
    for key, v in result["capped"].items():
        same = result[v["mode"]].get(str(v["max_faces"]))
        ref = same["ms_per_frame"] if same and same["faces_found"] == v["max_faces"] else None
        ok = v["faces_found_min"] == v["max_faces"] and ref is not None and v["ms_per_frame"] <= ref * (1 + tolerance)
        cases.append({"case": key, "faces": v["faces_found"], "ms_per_frame": v["ms_per_frame"],
                      "uncapped_ms_same_faces": ref, "ok": bool(ok)})
    if cases:
        checks["max_faces"] = {
            "ok": all(c["ok"] for c in cases), "cases": cases,
            "rule": f"capped frame: faces == max_faces and time <= {1 + tolerance:g} x an uncapped frame with "
                    f"max_faces faces",
            "detail": ", ".join(_cap_text(c) for c in cases)}
    return checks


# --- the command ---------------------------------------------------------------------------------------------

def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ConfigError(f"{name} takes comma-separated integers, not {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name} takes comma-separated integers >= 0, not {text!r}")
    return values


def _caps(text: str) -> list[tuple[int, int]]:
    out = []
    for part in filter(None, text.replace(" ", "").split(",")):
        faces, sep, cap = part.partition(":")
        try:
            out.append((int(faces), int(cap)))
        except ValueError:
            raise ConfigError(f"--sweep-caps takes FACES:MAX_FACES pairs, not {part!r}") from None
        if not sep or out[-1][1] < 1 or out[-1][0] < 1:
            raise ConfigError(f"--sweep-caps takes FACES:MAX_FACES pairs with both >= 1, not {part!r}")
    return out


def detector_check(estimator: Any, frames: dict[int, list[tuple[np.ndarray, list]]]) -> dict[str, Any]:
    """Faces the pipeline finds in every variant of every frame kind (also the warm-up of the estimator)."""
    out = {}
    for n, variants in frames.items():
        rects = variants[0][1]
        out[str(n)] = {"placed": n, "face_px": int(np.median([w for _, _, w, _ in rects])) if rects else None,
                       "found": [len(estimator.process(frame).faces) for frame, _ in variants]}
    return out


def format_report(report: dict[str, Any]) -> str:
    """The printed table."""
    lines = []
    p, fr = report["pipeline"], report["frame"]
    lines.append(f"soak: {fr['width']}x{fr['height']} bgr8 frames at {fr['rate_hz']:g} Hz, {fr['seconds']:g} s per "
                 f"face count (warm-up {fr['warmup_s']:g} s), max_rate {fr['max_rate_hz']:g} Hz; "
                 f"detector={p['detector']} keypoints={p['keypoints']} device={p['device']}")
    lines.append(f"  model {p['model']}; {report['machine']['cpus_usable']} usable CPUs, load average at start "
                 f"{report['machine']['load_average_at_start']}")
    lines.append("detector check (faces found per variant): " + "; ".join(
        f"{k} placed -> {','.join(map(str, v['found']))}" for k, v in report["detector_check"].items()))
    hdr = (f"{'faces':>5} {'found':>5} {'submit':>6} {'in Hz':>5} {'done':>5} {'skip':>5} {'err':>3} {'done/s':>6} "
           f"{'latency ms p50/p95/p99':>23} {'processing ms p50/p95/p99':>26} {'RSS MB start/warm/end':>22} "
           f"{'MB/min':>6} {'drift p50 first->last':>22}")
    lines.append(hdr)
    for key, ph in report["phases"].items():
        lat, pro, mem, d = ph["latency_ms"], ph["processing_ms"], ph["rss_mb"], ph["drift"]
        trip = lambda q: "/".join("-" if q[k] is None else f"{q[k]:.0f}" for k in ("p50", "p95", "p99"))  # noqa: E731
        found = ph["faces_found"]
        found_s = "-" if found is None else (f"{found['min']}" if found["min"] == found["max"]
                                             else f"{found['min']}-{found['max']}")
        dr = "-" if d["ratio"] is None else f"{d['first_p50_ms']:.0f}->{d['last_p50_ms']:.0f} (x{d['ratio']:.2f})"
        slope = "-" if mem["slope_mb_per_min"] is None else f"{mem['slope_mb_per_min']:+.2f}"
        rss = f"{mem['start']:.0f}/{mem['after_warmup']:.0f}/{mem['end']:.0f}"
        lines.append(f"{key:>5} {found_s:>5} {ph['submitted']:>6} {ph['input_rate_hz']:>5.1f} {ph['processed']:>5} "
                     f"{ph['skipped']:>5} {ph['errors']:>3} {ph['processed_per_s']:>6.1f} {trip(lat):>23} "
                     f"{trip(pro):>26} {rss:>22} {slope:>6} {dr:>22}")
    sw = report.get("sweep")
    if sw:
        lines.append(f"many faces ({sw['size'][0]}x{sw['size'][1]}, {sw['frames_per_count']} frames each, median ms "
                     f"per frame; max_faces 256 unless capped; 'detector': the real pipeline, 'placed': the placed "
                     f"faces' boxes instead of the detector's):")
        lines.append(f"  {'mode':>8} {'placed':>6} {'cap':>4} {'found':>5} {'ms/frame':>8} {'detect':>7} {'keypts':>7} "
                     f"{'regress':>7}")
        rows = [(m, v) for m in ("detector", "placed") for v in sw[m].values()] + \
            [(v["mode"], v) for v in sw["capped"].values()]
        for mode, v in rows:
            st = v["stages_ms"]
            found = f"{v['faces_found']:g}" + ("" if v["faces_found_min"] == v["faces_found"] else "*")
            lines.append(f"  {mode:>8} {v['placed']:>6} {v.get('max_faces', '-'):>4} {found:>5} "
                         f"{v['ms_per_frame']:>8.1f} {st.get('detect', 0):>7.1f} {st.get('keypoints', 0):>7.1f} "
                         f"{st.get('regress', 0):>7.1f}")
        for mode, fit in report["checks"].get("linear", {}).get("fits", {}).items():
            lines.append(f"  linear fit ({mode}): {fit['ms_fixed']:.1f} ms + {fit['ms_per_face']:.2f} ms per face "
                         f"(R^2 {fit['r2']:.3f})")
    lines.append("checks:")
    for name, check in report["checks"].items():
        lines.append(f"  {'PASS' if check['ok'] else 'FAIL'} {name}: {check['rule']}" + (
            f" ({check['detail']})" if check.get("detail") else ""))
    return "\n".join(lines)


def _no_drift(d: dict[str, Any], max_ratio: float, max_ms: float) -> bool:
    if d["ratio"] is None:
        return False
    return d["last_p50_ms"] <= max(d["first_p50_ms"] * max_ratio, d["first_p50_ms"] + max_ms)


def phase_checks(phases: dict[str, dict[str, Any]], max_growth_mb: float, max_drift: float,
                 max_drift_ms: float = 5.0) -> dict[str, Any]:
    """``memory``, ``drift``, ``newest``, ``accounting`` verdicts over every phase."""
    growth = {k: v["rss_mb"]["growth_after_warmup"] for k, v in phases.items()}
    ratios = {k: v["drift"]["ratio"] for k, v in phases.items()}
    newest = {k: v["newest_only"] for k, v in phases.items()}
    return {
        "memory": {"ok": all(g <= max_growth_mb for g in growth.values()),
                   "rule": f"RSS growth after warm-up <= {max_growth_mb:g} MB",
                   "detail": ", ".join(f"{k} faces {g:+.1f} MB" for k, g in growth.items())},
        "drift": {"ok": all(_no_drift(v["drift"], max_drift, max_drift_ms) for v in phases.values()),
                  "rule": f"median latency of the last third <= {max_drift:g} x the first third's, or at most "
                          f"{max_drift_ms:g} ms above it",
                  "detail": ", ".join(f"{k} faces x{r}" for k, r in ratios.items())},
        "newest": {"ok": all(n["in_submit_order"] and n["max_newer_at_start"] <= 1 for n in newest.values()),
                   "rule": "frames processed in submit order, at most one newer frame when one starts",
                   "detail": ", ".join(f"{k} faces max {n['max_newer_at_start']} ({n['starts_with_a_newer_frame']} "
                                       f"starts)" for k, n in newest.items())},
        "accounting": {"ok": all(v["accounting_ok"] and v["finished_cleanly"] for v in phases.values()),
                       "rule": "submitted = processed + skipped + failed; the worker stopped cleanly"},
    }


def run(args: argparse.Namespace) -> int:
    """The ``soak`` command: 0 when every check passes, 1 otherwise."""
    from ..estimator.pipeline import HeadPoseEstimator
    from ..ros.core import HeadPoseCore
    from .bench import machine_info

    faces = _int_list(args.faces, "--faces")
    sweep_faces = [] if args.no_sweep else _int_list(args.sweep_faces, "--sweep-faces")
    caps = [] if args.no_sweep else _caps(args.sweep_caps)
    if args.seconds <= 0 or args.rate <= 0 or args.width < 16 or args.height < 16 or args.sweep_frames < 1:
        raise ConfigError("--seconds and --rate must be > 0, --width/--height >= 16, --sweep-frames >= 1")
    warmup = args.warmup if args.warmup is not None else min(10.0, 0.2 * args.seconds)
    if not 0 <= warmup < args.seconds:
        raise ConfigError(f"--warmup must lie in [0, --seconds), not {warmup}")
    size = (args.width, args.height)
    machine = machine_info()
    config = config_from_args(args)
    estimator = HeadPoseEstimator(config)
    report: dict[str, Any] = {
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "machine": machine, "config": config.to_dict(), "pipeline": estimator.describe(),
        "frame": {"width": size[0], "height": size[1], "rate_hz": args.rate, "seconds": args.seconds,
                  "warmup_s": warmup, "max_rate_hz": args.max_rate, "variants": VARIANTS,
                  "source": "copies of skimage.data.astronaut()'s face on a noisy gradient, bench's layout"},
        "phases": {},
    }
    try:
        frames = {n: make_variants(n, size, VARIANTS, args.seed) for n in faces}
        report["detector_check"] = detector_check(estimator, frames)
        for n in faces:
            found = report["detector_check"][str(n)]["found"]
            if min(found) != n:
                LOG.warning("frames with %d face(s): the pipeline finds %s per variant", n, found)
        for n in faces:
            core = HeadPoseCore(estimator)  # fresh tracks and filters per face count
            report["phases"][str(n)] = soak_phase(core, [f for f, _ in frames.pop(n)], args.seconds, args.rate, warmup,
                                                  args.max_rate, label=f"{n} face(s)")
        report["checks"] = phase_checks(report["phases"], args.max_growth_mb, args.max_drift,
                                        args.max_drift_ms)
        if sweep_faces:
            report["sweep"] = sweep(estimator, sweep_faces, caps, size, args.sweep_frames, args.seed)
            report["checks"].update(sweep_checks(report["sweep"], args.linear_tolerance))
    finally:
        estimator.close()
    report["peak_rss_mb"] = peak_rss_mb()
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    return 0 if all(c["ok"] for c in report["checks"].values()) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``soak`` command."""
    p = subparsers.add_parser(
        "soak", help="sustained-load benchmark of the node's processing core (no ROS): latency, skips, memory",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="duration per face count, s (default 60)")
    p.add_argument("--warmup", type=float, help="seconds at the start of each face count left out of the latency, "
                   "drift and memory-growth figures (default: 20%% of --seconds, at most 10)")
    p.add_argument("--rate", type=float, default=60.0, help="frames submitted per second (default 60)")
    p.add_argument("--max-rate", type=float, default=0.0, help="the node's max_rate throttle, Hz (default 0: none)")
    p.add_argument("--faces", default="0,1,8", help="face counts to soak, comma-separated (default 0,1,8)")
    p.add_argument("--width", type=int, default=1920, help="frame width, px (default 1920)")
    p.add_argument("--height", type=int, default=1080, help="frame height, px (default 1080)")
    p.add_argument("--sweep-faces", default="1,2,4,8,16,32", help="face counts of the many-faces sweep")
    p.add_argument("--sweep-caps", default="16:4,32:8", help="FACES:MAX_FACES pairs timed with max_faces capping")
    p.add_argument("--sweep-frames", type=int, default=10, help="timed frames per sweep point (default 10)")
    p.add_argument("--no-sweep", action="store_true", help="skip the many-faces sweep")
    p.add_argument("--max-growth-mb", type=float, default=25.0, help="memory check: RSS growth allowed after "
                   "warm-up, MB (default 25)")
    p.add_argument("--max-drift", type=float, default=1.25, help="drift check: last/first third median latency "
                   "allowed (default 1.25)")
    p.add_argument("--max-drift-ms", type=float, default=5.0, help="drift check: or at most this many ms more "
                   "(default 5; for fast phases, where a ratio magnifies scheduling noise)")
    p.add_argument("--linear-tolerance", type=float, default=0.15, help="linear and max_faces checks' tolerance "
                   "(default 0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames")
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    add_config_arguments(p)
    p.set_defaults(func=run)
