"""``headpose-ros bench-ros``: headpose_node over real ROS 2 next to the estimator alone, in one run.

1. The estimator alone (this process) on the bench's 640x480 one-face frames, in video mode like the node
   (``--no-video`` for both: detection on every frame): time per frame and frame rate.
2. headpose_node in its own process (``python -m headpose_ros.ros.node``, default parameters, ``device`` cpu);
   once it has subscribed, its CPU use while idle (no images) over ``--idle-seconds``; the time from its start
   to its subscription, and its peak resident memory (VmHWM) after the load.
3. The transport floor: the same frames answered at once by an echo node (``bench_peer --echo``): the latency
   that rclpy and DDS alone add, image out and pose back.
4. A camera peer in a third process (:mod:`headpose_ros.ros.bench_peer`) publishes the same frames as raw
   ``bgr8`` images at ``--rate`` Hz for ``--seconds`` (stamped when the frame exists, before its message is
   built, as a driver does) and measures the latency from each image's stamp to its ``/head_pose``; the node's
   CPU use under load and its own counters (received, processed, skipped) from ``/diagnostics``.

Printed: the node's processed rate as a fraction of ``min(rate, estimator rate)``; latency p50/p95/p99 and the
ratios p50 / estimator p50 and mean / estimator mean (like against like: in video mode every 10th frame runs the
detector, which pulls the estimator's mean well above its median); idle and loaded CPU (% of one core); and where
the latency goes, p50 of each step per frame, from the node's trace (``HEADPOSE_TRACE_FILE``) and the echo's,
matched to the peer's frames by stamp. The estimator alone runs in this process with the node's malloc settings
(:mod:`headpose_ros.ros.memory`). ROS traffic stays on this machine: ``ROS_AUTOMATIC_DISCOVERY_RANGE`` is
LOCALHOST (or OFF if set so), in a domain id of its own unless one is set.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..estimator.config import EstimatorConfig
from ..estimator.errors import HeadPoseError
from ..ros.environment import subprocess_environment
from ..ros.memory import keep_image_buffers
from .bench import FRAME_SIZE, machine_info, make_frames
from .common import write_json
from .soak import percentiles

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> Optional[float]:
    """Resident-memory high-water mark (``VmHWM``) of process ``pid`` in MiB (Linux /proc), None if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def estimator_alone(frames: list[np.ndarray], seconds: float, video: bool = True) -> dict[str, Any]:
    """The default CPU estimator on ``frames`` (cycled) for about ``seconds``, in video mode as the node runs it by
    default (``video``): ms per frame and frames/s."""
    from ..estimator.pipeline import HeadPoseEstimator

    estimator = HeadPoseEstimator(EstimatorConfig(device="cpu"))
    try:
        for frame in frames[:3]:  # warm-up
            estimator.process(frame, video=video)
        times, faces = [], []
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            result = estimator.process(frames[i % len(frames)], video=video)
            times.append(time.perf_counter() - t0)
            faces.append(len(result.faces))
            i += 1
        wall = time.perf_counter() - start
    finally:
        estimator.close()
    ms = np.asarray(times) * 1000.0
    spread = percentiles(ms, (50, 95))
    return {"frames": i, "fps": round(i / wall, 2), "ms_mean": round(float(ms.mean()), 2),
            "ms_p50": spread["p50"], "ms_p95": spread["p95"],
            "faces_found_mean": round(float(np.mean(faces)), 2)}


class _Lines:
    """Collects a process's output lines in a thread; ``wait_for(text)`` blocks until a line contains it."""

    def __init__(self, stream: Any):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


def _run_peer(env: dict[str, str], frames_file: Path, out_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    peer = subprocess.Popen([sys.executable, "-m", "headpose_ros.ros.bench_peer", "--frames", str(frames_file),
                             "--rate", str(args.rate), "--seconds", str(args.seconds), "--reliability",
                             args.reliability, "--out", str(out_file)], env=env)
    if peer.wait(timeout=args.seconds + args.wait + 30) != 0:
        raise HeadPoseError(f"the camera peer failed (exit {peer.returncode})")
    result = json.loads(out_file.read_text(encoding="utf-8"))
    out_file.unlink()
    latency_ms = np.asarray(result.pop("latencies_s"), dtype=np.float64) * 1000.0
    result["latency_ms"] = {**percentiles(latency_ms),
                            "mean": round(float(latency_ms.mean()), 1) if latency_ms.size else None}
    return result


#: The steps of a frame's latency, as (name, from, to) over the peer's and the trace's per-frame times.
STEPS = (("stamp -> publish returned", "stamp", "published"), ("stamp -> image callback", "stamp", "received"),
         ("callback -> worker", "received", "started"), ("decode + estimator + tracking", "started", "processed"),
         ("result -> /head_pose published", "processed", "head_pose"),
         ("callback -> /head_pose published", "received", "head_pose"), ("published -> peer", "head_pose", "arrived"),
         ("stamp -> peer (latency)", "stamp", "arrived"))


def latency_breakdown(frames: list[dict[str, Any]], trace: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 (ms) of each step of :data:`STEPS` over the frames both the peer and the trace (the node's or the
    echo's) know; with the node's trace also the p50 of the estimator's own time in the node (``estimator_ms``),
    of the latency minus it and of the latency over it, frame by frame (the same frames at the same moments)."""
    by_stamp = {(t["sec"], t["nanosec"]): t for t in trace}
    rows = [{**f, **by_stamp[(f["sec"], f["nanosec"])]} for f in frames
            if f.get("arrived") is not None and (f["sec"], f["nanosec"]) in by_stamp]
    out: dict[str, Any] = {"frames": len(rows)}
    for name, start, end in STEPS:
        diffs = [1000.0 * (r[end] - r[start]) for r in rows if start in r and end in r]
        if diffs:
            out[name] = percentiles(diffs, (50,))["p50"]
    estimator = [r["estimator_ms"] for r in rows if "estimator_ms" in r]
    if estimator:
        out["estimator in the node"] = percentiles(estimator, (50,))["p50"]
        out["latency - estimator in the node"] = percentiles(
            [1000.0 * (r["arrived"] - r["stamp"]) - r["estimator_ms"] for r in rows], (50,))["p50"]
        ratios = [1000.0 * (r["arrived"] - r["stamp"]) / r["estimator_ms"] for r in rows if r["estimator_ms"] > 0]
        if ratios:
            out["latency / estimator in the node, per frame"] = round(float(np.median(ratios)), 2)
    return out


def _read_trace(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def transport_floor(frames_file: Path, out_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The same frames answered by an echo node (no processing): latency of the transport alone."""
    env = subprocess_environment(PYTHONUNBUFFERED="1")
    trace_file = out_file.with_name("echo_trace.json")
    echo = subprocess.Popen([sys.executable, "-m", "headpose_ros.ros.bench_peer", "--echo", "--frames",
                             str(frames_file), "--seconds", str(args.seconds + args.wait + 30), "--reliability",
                             args.reliability, "--executor", args.executor, "--out", str(trace_file)], env=env)
    try:
        result = _run_peer(env, frames_file, out_file, args)
    finally:
        _stop(echo)
    result["breakdown_ms"] = latency_breakdown(result.pop("frames"), _read_trace(trace_file))
    return result


def node_under_load(frames_file: Path, out_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start the node, measure it idle, then under the peer's frames; its figures."""
    trace_file = out_file.with_name("node_trace.json")
    env = subprocess_environment(PYTHONUNBUFFERED="1", HEADPOSE_TRACE_FILE=str(trace_file))
    node = subprocess.Popen([sys.executable, "-m", "headpose_ros.ros.node", "--ros-args", "-r",
                             "image:=/bench/image_raw", "-p", "device:=cpu", "-p",
                             f"qos.reliability:={args.reliability}", "-p", f"video_mode:={str(args.video).lower()}",
                             "-p", f"hri.enabled:={str(args.hri).lower()}", "-p", f"executor:={args.executor}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output = _Lines(node.stdout)
    started = time.monotonic()
    try:
        if not output.wait_for("subscribed to", args.wait):
            raise HeadPoseError("headpose_node did not start:\n" + "\n".join(output.lines[-20:]))
        startup = time.monotonic() - started
        time.sleep(1.0)  # let start-up settle
        c0, t0 = cpu_seconds(node.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (cpu_seconds(node.pid) - c0) / (time.monotonic() - t0)
        c0, t0 = cpu_seconds(node.pid), time.monotonic()
        result = _run_peer(env, frames_file, out_file, args)
        loaded = (cpu_seconds(node.pid) - c0) / (time.monotonic() - t0)
        peak = peak_rss_mib(node.pid)
    finally:
        _stop(node)
    result.update(node_cpu_idle_pct=round(100 * idle, 2), node_cpu_loaded_pct=round(100 * loaded, 1),
                  node_startup_s=round(startup, 2), node_peak_rss_mib=peak,
                  node_exit_code=node.returncode,
                  breakdown_ms=latency_breakdown(result.pop("frames"), _read_trace(trace_file)))
    return result


def format_report(est: dict[str, Any], node: dict[str, Any], floor: dict[str, Any], rate: float) -> str:
    achievable = min(rate, est["fps"])
    diag = node.get("node_diagnostics", {})
    lat = node["latency_ms"]
    ratios = (f"p50 / estimator p50 = {lat['p50'] / est['ms_p50']:.2f}x, mean / estimator mean = "
              f"{lat['mean'] / est['ms_mean']:.2f}x" if lat["p50"] is not None else "")
    lines = [
        f"estimator alone: {est['fps']:.1f} frames/s, {est['ms_mean']:.1f} ms per frame (p50 {est['ms_p50']:.1f}, "
        f"p95 {est['ms_p95']:.1f}), {est['faces_found_mean']:.2f} faces found per frame",
        f"node: published {node['published']} frames at {node['publish_rate_hz']:.1f} Hz; /head_pose "
        f"{node['pose_rate_hz']:.1f} Hz = {node['pose_rate_hz'] / achievable:.0%} of min(rate, estimator) = "
        f"{achievable:.1f}",
        f"node counters: received {diag.get('frames_received', '?')}, processed {diag.get('frames_processed', '?')}, "
        f"skipped {diag.get('frames_skipped', '?')}, failed {diag.get('frames_failed', '?')}",
        f"latency image stamp -> /head_pose: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
        f"mean {lat['mean']} ms ({ratios})" if lat["p50"] is not None else "latency: no /head_pose received",
        f"transport floor (an echo node, no processing): p50 {floor['latency_ms']['p50']} ms, p95 "
        f"{floor['latency_ms']['p95']} ms; node p50 minus floor = "
        f"{(lat['p50'] or 0) - (floor['latency_ms']['p50'] or 0):.1f} ms",
        f"node CPU: idle {node['node_cpu_idle_pct']:.1f} % of a core, under load {node['node_cpu_loaded_pct']:.0f} %",
        f"node process: start to subscribed {node['node_startup_s']:.1f} s, peak RSS {node['node_peak_rss_mib']} MiB",
    ]
    for who, figures in (("node", node), ("echo", floor)):
        parts = figures.get("breakdown_ms", {})
        lines.append(f"where the latency goes, {who} (p50 ms over {parts.get('frames', 0)} frames): " + "; ".join(
            f"{name} {value}" for name, value in parts.items() if name != "frames"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """The ``bench-ros`` command."""
    frames = make_frames(1, 8, args.seed)
    machine = machine_info()
    keep_image_buffers()  # as the node's process does
    est = estimator_alone(frames, args.estimator_seconds, video=args.video)
    with tempfile.TemporaryDirectory(prefix="headpose_bench_ros_") as tmp:
        frames_file, out_file = Path(tmp) / "frames.npy", Path(tmp) / "peer.json"
        np.save(frames_file, np.stack(frames))
        floor = transport_floor(frames_file, out_file, args)
        node = node_under_load(frames_file, out_file, args)
    print(f"bench-ros: {FRAME_SIZE[0]}x{FRAME_SIZE[1]} bgr8 frames with one face at {args.rate:g} Hz for "
          f"{args.seconds:g} s ({args.reliability}, {'video mode' if args.video else 'detection on every frame'}, "
          f"REP-155 topics {'on' if args.hri else 'off'}, executor {args.executor}), "
          f"{machine['cpus_usable']} usable CPUs ({machine['cpu']}), load average at start "
          f"{machine['load_average_at_start']}")
    print(format_report(est, node, floor, args.rate))
    if args.json:
        write_json(args.json, {"estimator": est, "node": node, "transport_floor": floor, "rate_hz": args.rate,
                               "machine": machine})
    return 0 if node["poses"] > 0 else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench-ros`` command."""
    parser = subparsers.add_parser(
        "bench-ros", help="the ROS 2 node's rate, latency and CPU next to the estimator alone (needs ROS 2)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second (default 30)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of publishing (default 20)")
    parser.add_argument("--estimator-seconds", type=float, default=10.0,
                        help="seconds of the estimator-alone measurement (default 10)")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="seconds of idle CPU measurement")
    parser.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort",
                        help="QoS of the camera publisher and the node's subscription")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the node to start")
    parser.add_argument("--no-video", dest="video", action="store_false",
                        help="detect on every frame, in the node and the estimator alone (default: video mode)")
    parser.add_argument("--no-hri", dest="hri", action="store_false",
                        help="run the node without its REP-155 face topics (hri.enabled false)")
    parser.add_argument("--executor", choices=("auto", "events", "single_threaded"), default="auto",
                        help="the node's executor parameter, also used by the echo node (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frames")
    parser.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    parser.set_defaults(func=run)
