"""The soak command's pieces (no timing assertions: speed lives in the command's own figures), and a memory-
growth check of the node's core behind LatestFrameProcessor.

- ``headpose-ros soak`` end to end for one second per face count with stand-in backends and a throw-away
  model: every figure present, the accounting adds up, the JSON written, exit code 0 or 1 from its checks.
- Memory: 200 frames (640x480 bgr8 messages, a fresh buffer each) decoded, estimated, tracked and smoothed
  through HeadPoseCore in LatestFrameProcessor with stand-in backends; the resident memory may grow by at
  most 50 MB. Keeping every frame (a leak of the decoded image or the message: 0.9 MB each) would grow it by
  180 MB and fail.
"""

from __future__ import annotations

import gc
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.stream import LatestFrameProcessor
from headpose_ros.estimator.types import FaceBox
from headpose_ros.tools import soak
from tools_fakes import (CentreDetector, ConstantRegressor, LayoutKeypoints, make_model_file, register_fake_backends,
                         sigint_default)

WAIT = 60.0


def fake_estimator() -> HeadPoseEstimator:
    return HeadPoseEstimator(detector=CentreDetector(), keypoint_source=LayoutKeypoints(),
                             regressor=ConstantRegressor())


# --- helpers ------------------------------------------------------------------------------------------------

def test_percentiles():
    values = list(range(1, 101))
    assert soak.percentiles(values) == {"p50": 50.5, "p95": 95.0, "p99": 99.0}
    assert soak.percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_slope_per_minute():
    t = np.arange(0, 60, 0.5)
    assert soak.slope_per_minute(t, 100 + 0.5 * t) == pytest.approx(30.0)  # 0.5 MB/s = 30 MB/min
    assert soak.slope_per_minute(t, np.full_like(t, 7.0)) == pytest.approx(0.0)
    assert soak.slope_per_minute([0.0, 1.0], [1.0, 2.0]) is None


def test_drift_compares_first_and_last_thirds_by_submit_time():
    submit = np.arange(30.0)
    latency = np.r_[np.full(10, 10.0), np.full(10, 20.0), np.full(10, 40.0)]
    order = np.random.default_rng(0).permutation(30)  # records arrive in any order
    d = soak.drift(submit[order], latency[order])
    assert (d["first_p50_ms"], d["last_p50_ms"], d["ratio"]) == (10.0, 40.0, 4.0)
    assert soak.drift([1.0, 2.0], [3.0, 4.0])["ratio"] is None


def test_no_drift_rule():
    assert soak._no_drift({"ratio": 1.4, "first_p50_ms": 10.0, "last_p50_ms": 14.0}, 1.25, 5.0)  # +4 ms
    assert not soak._no_drift({"ratio": 1.4, "first_p50_ms": 100.0, "last_p50_ms": 140.0}, 1.25, 5.0)
    assert soak._no_drift({"ratio": 1.2, "first_p50_ms": 100.0, "last_p50_ms": 120.0}, 1.25, 5.0)
    assert not soak._no_drift({"ratio": None, "first_p50_ms": None, "last_p50_ms": None}, 1.25, 5.0)


@pytest.mark.parametrize("n, size, grid", [(1, (1920, 1080), (1, 1)), (8, (1920, 1080), (4, 2)),
                                           (16, (1920, 1080), (6, 3)), (4, (640, 480), (2, 2))])
def test_grid_for_uses_the_largest_faces(n, size, grid):
    cols, rows, scale = soak.grid_for(n, size, (170, 160))
    assert (cols, rows) == grid and cols * rows >= n
    assert cols * 160 * scale <= size[0] and rows * 170 * scale <= size[1]


@pytest.mark.parametrize("n", [0, 1, 8, 32])
def test_soak_frames(n):
    pytest.importorskip("skimage", reason="scikit-image (dev requirement) makes the frames")
    variants = soak.make_variants(n, (640, 360), 2, seed=3)
    again = soak.make_variants(n, (640, 360), 2, seed=3)
    for (frame, rects), (frame2, rects2) in zip(variants, again):
        assert frame.shape == (360, 640, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame, frame2) and rects == rects2  # deterministic
        assert len(rects) == n
        for x, y, w, h in rects:
            assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 360
    boxes = [FaceBox(x, y, x + w, y + h) for x, y, w, h in variants[0][1]]
    assert all(a.iou(b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])  # faces do not overlap


@pytest.mark.parametrize("text", ["16", "16:0", "a:4", "4:b", "0:4"])
def test_bad_sweep_caps(text):
    from headpose_ros.estimator.errors import ConfigError

    with pytest.raises(ConfigError):
        soak._caps(text)


def test_placed_faces_detector_places_the_relative_box():
    placed = soak.PlacedFaces((0.25, 0.5, 0.75, 1.0))
    placed.rects = [(100, 200, 40, 20)]
    (box,) = placed.detect(np.zeros((1, 1, 3), np.uint8))
    assert (box.x0, box.y0, box.x1, box.y1) == (110.0, 210.0, 130.0, 220.0)


# --- one soak phase with a stand-in core -----------------------------------------------------------------------

class GatedCore:
    """A core whose process_msg waits for the test, so that skipping is forced, not timed."""

    def __init__(self):
        from headpose_ros.ros.core import HeadPoseCore

        self.inner = HeadPoseCore(fake_estimator())
        self.gate = threading.Semaphore(0)
        self.seen: list[int] = []

    @property
    def values(self):
        return self.inner.values

    def process_msg(self, msg):
        assert self.gate.acquire(timeout=WAIT)
        self.seen.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        return self.inner.process_msg(msg)


def test_soak_phase_counts_and_newest_only():
    core = GatedCore()
    frames = [np.full((48, 64, 3), 100, np.uint8)]
    releaser_stop = threading.Event()

    def release_slowly():  # let a frame through now and then: most frames are replaced while the worker waits
        while not releaser_stop.wait(0.05):
            core.gate.release()

    releaser = threading.Thread(target=release_slowly, daemon=True)
    releaser.start()
    try:
        out = soak.soak_phase(core, frames, seconds=1.0, rate=200.0, warmup=0.2)
    finally:
        releaser_stop.set()
        for _ in range(100):
            core.gate.release()
    assert out["submitted"] == out["processed"] + out["skipped"] + out["errors"]
    assert out["accounting_ok"] and out["finished_cleanly"] and out["errors"] == 0, out["error_examples"]
    assert out["submitted"] >= 50 and out["skipped"] > 0 and out["processed"] >= 1
    assert out["newest_only"]["in_submit_order"]
    assert core.seen == sorted(core.seen)  # stamps processed in order: never an older frame after a newer one
    for key in ("latency_ms", "processing_ms", "wait_ms"):
        assert set(out[key]) == {"p50", "p95", "p99"}
    assert set(out["rss_mb"]) >= {"start", "after_warmup", "end", "slope_mb_per_min", "growth_after_warmup"}


def test_soak_phase_counts_errors():
    class Failing:

        def __init__(self):
            self.n = 0

        def process_msg(self, msg):
            self.n += 1
            raise RuntimeError("backend down")

    out = soak.soak_phase(Failing(), [np.zeros((16, 16, 3), np.uint8)], seconds=0.3, rate=50.0, warmup=0.0)
    assert out["processed"] == 0 and out["errors"] >= 1
    assert out["submitted"] == out["skipped"] + out["errors"]
    assert "RuntimeError: backend down" in out["error_examples"][0]


# --- the command, briefly, with stand-in backends ---------------------------------------------------------------

def test_soak_command_end_to_end(tmp_path, monkeypatch, capsys):
    pytest.importorskip("skimage", reason="scikit-image (dev requirement) makes the frames")
    from headpose_ros.tools import cli

    register_fake_backends(monkeypatch)
    weights = make_model_file(tmp_path / "model")
    out = tmp_path / "soak.json"
    code = cli.main(["soak", "--seconds", "1", "--rate", "30", "--faces", "0,1", "--width", "320", "--height", "240",
                     "--sweep-faces", "1,2", "--sweep-caps", "2:1", "--sweep-frames", "2", "--detector", "centre",
                     "--keypoints", "layout", "--model", str(weights), "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert code in (0, 1)
    assert code == (0 if all(c["ok"] for c in report["checks"].values()) else 1)
    assert set(report["phases"]) == {"0", "1"}
    assert set(report["checks"]) == {"memory", "drift", "newest", "accounting", "linear", "max_faces"}
    assert report["checks"]["accounting"]["ok"] and report["checks"]["newest"]["ok"]
    for phase in report["phases"].values():
        assert phase["submitted"] == phase["processed"] + phase["skipped"] + phase["errors"]
        assert phase["errors"] == 0 and phase["processed"] > 0
    # the centre detector finds one 'face' in every frame, whatever was pasted
    assert report["detector_check"]["0"]["found"] == [1, 1, 1, 1]
    assert report["sweep"]["placed"]["2"]["faces_found"] == 2
    assert report["sweep"]["capped"]["placed 2:1"]["faces_found"] == 1
    assert "detector check" in printed and "checks:" in printed and "latency ms p50/p95/p99" in printed


# --- memory growth -------------------------------------------------------------------------------------------

def _message(i: int, width: int = 640, height: int = 480, bad: bool = False):
    """A bgr8 Image message with a fresh buffer (as from a camera driver); ``bad``: a malformed one, in turn
    truncated data, an unknown encoding, or a CompressedImage with a cut JPEG."""
    import cv2

    image = np.full((height, width, 3), i % 251, np.uint8)
    header = SimpleNamespace(stamp=SimpleNamespace(sec=i, nanosec=0), frame_id="cam_optical")
    if bad and i % 3 == 2:
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        return SimpleNamespace(header=header, format="jpeg", data=jpeg[: len(jpeg) // 2])
    data = image.tobytes()
    encoding = "bgr8"
    if bad:
        data, encoding = (data[:-100], "bgr8") if i % 3 == 0 else (data, "32FC1")
    return SimpleNamespace(header=header, encoding=encoding, height=height, width=width, step=width * 3, data=data,
                           is_bigendian=0)


@pytest.mark.parametrize("bad_every", [0, 2], ids=["good frames", "every other frame bad"])
def test_memory_does_not_grow_over_200_frames(bad_every):
    from headpose_ros.ros.core import HeadPoseCore

    core = HeadPoseCore(fake_estimator(), {"smoothing.enabled": True})
    done = {"faces": 0, "frames": 0, "errors": 0}

    def on_result(item, result):
        done["frames"] += 1
        done["faces"] += len(result.faces)

    def on_error(item, exc):
        done["errors"] += 1

    def message(i):
        return _message(i, bad=bool(bad_every) and i % bad_every == 1)

    with LatestFrameProcessor(core.process_msg, on_result=on_result, on_error=on_error) as proc:
        for i in range(30):  # warm-up: allocator pools, imports, first conversions
            proc.submit(message(i))
            assert proc.wait_idle(WAIT)
        gc.collect()
        before = soak.rss_mb()
        for i in range(30, 230):
            proc.submit(message(i))
            if i % 3 != 0:  # most frames wait for the worker; the others may be replaced (skipped)
                assert proc.wait_idle(WAIT)
        assert proc.wait_idle(WAIT)
        stats = proc.stats()
    gc.collect()
    after = soak.rss_mb()
    assert stats.submitted == 230 and stats.failed == done["errors"]
    assert stats.processed + stats.skipped + stats.failed == 230 and stats.processed >= 60
    assert done["faces"] == done["frames"] == stats.processed  # every processed frame had its one face
    if bad_every:
        assert stats.failed >= 60  # the bad frames were refused, one by one
    else:
        assert stats.failed == 0
    assert after - before < 50.0, f"RSS grew by {after - before:.1f} MB over 200 frames"


# --- Ctrl-C in the middle of a soak ------------------------------------------------------------------------

SOAK_SCRIPT = """
import sys

sys.path.insert(0, {test_dir!r})
from headpose_ros.estimator.detectors import DETECTORS
from headpose_ros.estimator.keypoints import KEYPOINT_SOURCES
from headpose_ros.tools import cli

DETECTORS._entries["centre"] = "tools_fakes:CentreDetector"
KEYPOINT_SOURCES._entries["layout"] = "tools_fakes:LayoutKeypoints"
sys.exit(cli.main(sys.argv[1:]))
"""


def test_soak_interrupted_by_ctrl_c_exits_cleanly(tmp_path):
    """SIGINT during a phase: the producer and the worker stop, exit code 130, no traceback."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("skimage", reason="scikit-image (dev requirement) makes the frames")
    weights = make_model_file(tmp_path / "model")
    script = tmp_path / "run_soak.py"
    script.write_text(SOAK_SCRIPT.format(test_dir=str(Path(__file__).resolve().parent)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), "soak", "--seconds", "600", "--faces", "1", "--width", "320", "--height",
         "240", "--no-sweep", "--detector", "centre", "--keypoints", "layout", "--model", str(weights),
         "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
        preexec_fn=sigint_default)
    try:
        seen = ""
        while "soak 1 face(s)" not in seen:  # the progress bar (stderr) says the phase has started
            chunk = proc.stderr.read(1)
            assert chunk, f"soak ended before its phase started: {seen[-2000:]}"
            seen += chunk
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, (seen + stderr)[-2000:])
    assert "Traceback" not in seen + stderr
