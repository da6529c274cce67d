"""Faults: bad model files and devices at start-up, backends failing mid-stream, stopping mid-frame, signals.

- Weights file missing, truncated (a real weights file cut at several points), not HDF5, a folder, or saved
  from another Keras model; model card missing, unreadable or for another architecture: ModelFileError
  naming the file, raised when the estimator is constructed (before any frame).
- ``device: gpu`` without a GPU: BackendUnavailableError with a message saying what to use instead;
  ``device: auto`` runs on the CPU and logs that once per process.
- A backend (detector, keypoints, regressor) or the result callback raising in the middle of a stream that
  runs through the node's core and LatestFrameProcessor: that frame is counted as failed (and as a backend
  error in the diagnostics window), the stream goes on and later frames are processed.
- ``stop()`` while a frame is being processed returns (it never waits for ever), drops the pending frame,
  processes nothing more, and the worker ends once the frame finishes.
- ``headpose-ros video`` in a subprocess, interrupted mid-run by SIGINT or SIGTERM: exit code 130 / 143,
  no traceback, and the annotated output video is finalised (readable).

No timing assertions: threads are held with events; waits have generous timeouts only so that a bug fails
instead of hanging.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from headpose_ros.estimator.config import EstimatorConfig
from headpose_ros.estimator.errors import BackendUnavailableError, ModelFileError
from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.stream import LatestFrameProcessor
from tools_fakes import CentreDetector, ConstantRegressor, LayoutKeypoints, make_model_file, sigint_default

WAIT = 60.0
TEST_DIR = Path(__file__).resolve().parent
# Keras warns while it refuses a foreign weights file; the refusal is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")
REPO = TEST_DIR.parent


# --- model files ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_weights(tmp_path_factory) -> Path:
    """A real weights file of the paper's model (untrained) with its card."""
    return make_model_file(tmp_path_factory.mktemp("good"), "good")


def _card_for(weights: Path, architecture: str = "gupta2019") -> None:
    from headpose_ros.estimator.regressor import ModelCard, card_path

    ModelCard(weights.name.split(".")[0], "rendered", "face_mesh", architecture=architecture).save(card_path(weights))


def _construct(weights: Path) -> HeadPoseEstimator:
    """The estimator as the node and the CLI build it (stand-in detector and keypoints: no mediapipe needed)."""
    return HeadPoseEstimator(EstimatorConfig(model=str(weights), device="cpu"), detector=CentreDetector(),
                             keypoint_source=LayoutKeypoints())


def test_good_weights_load(good_weights):
    estimator = _construct(good_weights)
    assert estimator.describe()["model"] == str(good_weights)
    result = estimator.process(np.zeros((120, 160, 3), np.uint8))
    assert len(result.faces) == 1 and np.all(np.isfinite(result.faces[0].pose.as_array()))


def test_missing_weights_name_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "absent.weights.h5"
    with pytest.raises(ModelFileError, match=str(missing).replace(".", r"\.")):
        _construct(missing)


def test_missing_shipped_model_names_the_file(monkeypatch, tmp_path):
    from headpose_ros.estimator import regressor

    monkeypatch.setattr(regressor, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelFileError, match="nonexistent_model.weights.h5"):
        HeadPoseEstimator(EstimatorConfig(model="nonexistent_model", device="cpu"), detector=CentreDetector(),
                          keypoint_source=LayoutKeypoints())


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncated_weights_name_the_file(good_weights, tmp_path, fraction):
    data = good_weights.read_bytes()
    cut = tmp_path / "cut.weights.h5"
    cut.write_bytes(data[: int(len(data) * fraction)])
    _card_for(cut)
    with pytest.raises(ModelFileError, match=str(cut).replace(".", r"\.")) as info:
        _construct(cut)
    assert "truncated" in str(info.value) or "corrupt" in str(info.value)


def test_weights_that_are_not_hdf5(tmp_path):
    bad = tmp_path / "text.weights.h5"
    bad.write_text("this is not an HDF5 file\n")
    _card_for(bad)
    with pytest.raises(ModelFileError, match=str(bad).replace(".", r"\.")):
        _construct(bad)


def test_a_folder_named_like_weights(tmp_path):
    folder = tmp_path / "folder.weights.h5"
    folder.mkdir()
    with pytest.raises(ModelFileError, match=str(folder).replace(".", r"\.")):
        _construct(folder)


def _foreign_dense(path: Path) -> None:
    import keras

    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs)).save_weights(str(path))


def _foreign_same_names(path: Path) -> None:
    """Layers named like the paper's (conv1, flatten, ypr) with other shapes."""
    import keras

    x = inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, name="conv1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    keras.Model(inputs, keras.layers.Dense(3, name="ypr")(x), name="gupta2019").save_weights(str(path))


def _foreign_other_input(path: Path) -> None:
    """The paper's architecture on 3-channel input: every layer name matches, conv1's kernel does not."""
    import keras

    from headpose_ros.estimator import regressor

    model = regressor.build_model(seed=0)
    clone = keras.models.clone_model(model, input_tensors=keras.Input((96, 96, 3)))
    clone.save_weights(str(path))


@pytest.mark.parametrize("make", [_foreign_dense, _foreign_same_names, _foreign_other_input],
                         ids=["dense-model", "same-layer-names-other-shapes", "three-channel-input"])
def test_weights_from_another_model_name_the_file(tmp_path, make):
    foreign = tmp_path / "foreign.weights.h5"
    make(foreign)
    _card_for(foreign)
    with pytest.raises(ModelFileError, match=str(foreign).replace(".", r"\.")) as info:
        _construct(foreign)
    assert "another model" in str(info.value) or "cannot be loaded" in str(info.value)


def test_weights_from_a_larger_model_are_refused(tmp_path):
    import keras

    from headpose_ros.estimator import regressor

    base = regressor.build_model(seed=1)
    bigger = keras.Model(base.input, keras.layers.Dense(3, name="extra_head")(base.output), name="gupta2019")
    path = tmp_path / "bigger.weights.h5"
    bigger.save_weights(str(path))
    _card_for(path)
    with pytest.raises(ModelFileError, match=str(path).replace(".", r"\.")):
        _construct(path)


def test_weights_holding_nan_are_refused(tmp_path):
    from headpose_ros.estimator import regressor

    model = regressor.build_model(seed=2)
    weights = model.get_weights()
    weights[0][...] = np.nan
    model.set_weights(weights)
    path = tmp_path / "nan.weights.h5"
    model.save_weights(str(path))
    _card_for(path)
    with pytest.raises(ModelFileError, match=str(path).replace(".", r"\.")):
        _construct(path)


def test_weights_with_corrupted_bytes_are_refused(good_weights, tmp_path):
    import hashlib
    import json

    from headpose_ros.estimator.regressor import card_path

    data = bytearray(good_weights.read_bytes())
    path = tmp_path / "flipped.weights.h5"
    _card_for(path)
    card = json.loads(card_path(path).read_text())
    card["sha256"] = hashlib.sha256(bytes(data)).hexdigest()  # the card of the good file
    card_path(path).write_text(json.dumps(card))
    rng = np.random.default_rng(0)
    for i in rng.integers(len(data) // 4, 3 * len(data) // 4, 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=str(path).replace(".", r"\.")):
        _construct(path)


def test_missing_card_names_the_card(good_weights, tmp_path):
    lonely = tmp_path / "lonely.weights.h5"
    lonely.write_bytes(good_weights.read_bytes())
    with pytest.raises(ModelFileError, match=r"lonely\.json"):
        _construct(lonely)


@pytest.mark.parametrize("text", ["", "{not json", "[]", '{"name": "x"}', '{"name": "x", "heatmap_kind": "rendered", '
                                  '"keypoint_source": "face_mesh", "architecture": "gupta2019", '
                                  '"label_scale_deg": "wide"}'])
def test_unreadable_card_names_the_card(good_weights, tmp_path, text):
    weights = tmp_path / "m.weights.h5"
    weights.write_bytes(good_weights.read_bytes())
    (tmp_path / "m.json").write_text(text)
    with pytest.raises(ModelFileError, match=r"m\.json"):
        _construct(weights)


def test_card_for_another_architecture(good_weights, tmp_path):
    weights = tmp_path / "m.weights.h5"
    weights.write_bytes(good_weights.read_bytes())
    _card_for(weights, architecture="hopenet")
    with pytest.raises(ModelFileError, match=r"m\.weights\.h5.*hopenet"):
        _construct(weights)


# --- devices ----------------------------------------------------------------------------------------------

def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def test_gpu_without_a_gpu_is_a_clear_error_at_start(good_weights):
    if _gpus():
        pytest.skip("TensorFlow sees a GPU here; the no-GPU error cannot be provoked")
    with pytest.raises(BackendUnavailableError) as info:
        HeadPoseEstimator(EstimatorConfig(model=str(good_weights), device="gpu"), detector=CentreDetector(),
                          keypoint_source=LayoutKeypoints())
    message = str(info.value)
    assert "gpu" in message.lower() and "no GPU" in message and ("'auto'" in message or "'cpu'" in message)


def test_auto_falls_back_to_cpu_and_says_so_once(good_weights, monkeypatch, caplog):
    if _gpus():
        pytest.skip("TensorFlow sees a GPU here; auto would use it")
    from headpose_ros.estimator import regressor

    monkeypatch.setattr(regressor, "_GPU_FALLBACK_LOGGED", False)
    with caplog.at_level(logging.INFO, logger=regressor.LOG.name):
        first = HeadPoseEstimator(EstimatorConfig(model=str(good_weights), device="auto"), detector=CentreDetector(),
                                  keypoint_source=LayoutKeypoints())
        second = regressor.HeadPoseRegressor(str(good_weights), "auto")
    assert first.describe()["device"] == "/CPU:0" and second.device == "/CPU:0"
    said = [r for r in caplog.records if r.name == regressor.LOG.name and "CPU" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert "auto" in said[0].getMessage() and "GPU" in said[0].getMessage()


def test_cli_reports_gpu_without_gpu_in_one_line(good_weights, tmp_path, capsys):
    if _gpus():
        pytest.skip("TensorFlow sees a GPU here")
    from headpose_ros.tools import cli

    image = tmp_path / "grey.png"
    import cv2

    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    code = cli.main(["image", str(image), "--model", str(good_weights), "--device", "gpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "device 'gpu'" in err and "Traceback" not in err


# --- a backend failing in the middle of a stream --------------------------------------------------------------

class Flaky:
    """Wraps a backend method: raises ``exc`` on the calls numbered in ``fail_on`` (1-based)."""

    def __init__(self, inner, method: str, fail_on: set[int], exc: Exception):
        self.inner, self.method, self.fail_on, self.exc = inner, method, fail_on, exc
        self.calls = 0
        self.heatmap_kind = getattr(inner, "heatmap_kind", "rendered")
        for attr in ("device", "weights_path"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))

    def __getattr__(self, name):
        if name != self.method:
            return getattr(self.inner, name)

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls in self.fail_on:
                raise self.exc
            return getattr(self.inner, name)(*args, **kwargs)

        return call


def _message(i: int, height: int = 120, width: int = 160):
    image = np.full((height, width, 3), 100, np.uint8)
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=i, nanosec=0), frame_id="cam_optical"),
                           encoding="bgr8", height=height, width=width, step=width * 3, data=image.tobytes(),
                           is_bigendian=0)


@pytest.mark.parametrize("stage, exc", [
    ("detector", RuntimeError("mediapipe graph failed")),
    ("keypoints", ValueError("tflite: tensor size mismatch")),
    ("regressor", MemoryError("out of memory")),
    ("regressor", OSError("device lost")),
])
def test_a_backend_raising_mid_stream_is_counted_and_the_stream_goes_on(stage, exc):
    from headpose_ros.ros.core import HeadPoseCore
    from headpose_ros.ros.diagnostics import DiagnosticsWindow, Thresholds
    from headpose_ros.ros.image_codec import ImageDecodeError

    detector, keypoints, regressor = CentreDetector(), LayoutKeypoints(), ConstantRegressor()
    fail_on = {3, 4, 7}
    if stage == "detector":
        detector = Flaky(detector, "detect", fail_on, exc)
    elif stage == "keypoints":
        keypoints = Flaky(keypoints, "locate", fail_on, exc)
    else:
        regressor = Flaky(regressor, "predict", fail_on, exc)
    core = HeadPoseCore(HeadPoseEstimator(detector=detector, keypoint_source=keypoints, regressor=regressor))
    window = DiagnosticsWindow()
    results, errors = [], []

    def on_error(item, error):
        errors.append((item.header.stamp.sec, error))
        window.failure(isinstance(error, ImageDecodeError), f"{type(error).__name__}: {error}")

    def on_result(item, result):
        results.append(result)
        window.result(result.frame.stages_ms, len(result.faces))

    with LatestFrameProcessor(core.process_msg, on_result=on_result, on_error=on_error) as proc:
        for i in range(1, 11):
            window.input()
            proc.submit(_message(i))
            assert proc.wait_idle(WAIT)  # one at a time: every frame is processed or fails, none skipped
        stats = proc.stats()
    assert (stats.submitted, stats.processed, stats.failed, stats.skipped) == (10, 7, 3, 0)
    assert [sec for sec, _ in errors] == [3, 4, 7] and all(e is exc for _, e in errors)
    assert [r.header.sec for r in results] == [1, 2, 5, 6, 8, 9, 10]
    assert all(len(r.faces) == 1 for r in results)
    assert type(exc).__name__ in stats.last_error
    # the face keeps its track across the failed frames (the tracker forgets only after max_missed frames)
    assert len({r.ids[0] for r in results}) == 1
    status = window.report(stats, Thresholds(), name="headpose")
    assert status.values["backend_errors"] == 3 and status.values["bad_images"] == 0
    assert status.values["frames_failed"] == 3 and status.values["frames_processed"] == 7
    assert type(exc).__name__ in status.values["last_error"]


def test_a_failing_publisher_does_not_stop_the_stream():
    from headpose_ros.ros.core import HeadPoseCore

    core = HeadPoseCore(HeadPoseEstimator(detector=CentreDetector(), keypoint_source=LayoutKeypoints(),
                                          regressor=ConstantRegressor()))
    published = []

    def publish(item, result):
        if item.header.stamp.sec == 2:
            raise RuntimeError("publisher's context is invalid")
        published.append(item.header.stamp.sec)

    with LatestFrameProcessor(core.process_msg, on_result=publish, on_error=lambda i, e: None) as proc:
        for i in range(1, 5):
            proc.submit(_message(i))
            assert proc.wait_idle(WAIT)
        stats = proc.stats()
    assert published == [1, 3, 4] and stats.failed == 1 and stats.processed == 3


def test_an_error_callback_that_raises_does_not_kill_the_worker(caplog):
    def process(i):
        raise RuntimeError(f"frame {i}")

    def on_error(item, error):
        raise ValueError("logger broke")

    with caplog.at_level(logging.ERROR):
        with LatestFrameProcessor(process, on_error=on_error) as proc:
            for i in range(3):
                proc.submit(i)
                assert proc.wait_idle(WAIT)
            assert proc.stats().failed == 3


# --- stop() in the middle of a slow frame ------------------------------------------------------------------

class HeldDetector(CentreDetector):
    """A detector that blocks inside ``detect`` until the test releases it."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def detect(self, image_bgr):
        self.entered.set()
        assert self.release.wait(WAIT)
        return super().detect(image_bgr)


def test_stop_during_a_slow_frame_returns_and_the_worker_ends_cleanly():
    from headpose_ros.ros.core import HeadPoseCore

    detector = HeldDetector()
    core = HeadPoseCore(HeadPoseEstimator(detector=detector, keypoint_source=LayoutKeypoints(),
                                          regressor=ConstantRegressor()))
    results, errors = [], []
    proc = LatestFrameProcessor(core.process_msg, on_result=lambda i, r: results.append(i.header.stamp.sec),
                                on_error=lambda i, e: errors.append(e)).start()
    proc.submit(_message(1))
    assert detector.entered.wait(WAIT)  # frame 1 is in the middle of detection
    proc.submit(_message(2))  # pending behind it
    stopped = proc.stop(timeout=0.5)  # returns although the frame is still running
    assert stopped is False
    assert not proc.submit(_message(3))  # refused while stopping
    stats = proc.stats()
    assert stats.pending is False and stats.skipped == 2  # frame 2 dropped at stop, frame 3 refused
    detector.release.set()  # the slow frame finishes...
    assert proc.stop(timeout=WAIT) is True  # ...and the worker ends without taking another frame
    stats = proc.stats()
    assert (stats.submitted, stats.processed, stats.failed, stats.skipped) == (3, 1, 0, 2)
    assert results == [1] and errors == []
    assert not any(t.name == "headpose-worker" and t.is_alive() for t in threading.enumerate())


def test_stop_while_throttled_returns_at_once():
    """A worker waiting for the rate limiter (max_rate) ends as soon as stop() is called."""
    clock = SimpleNamespace(t=0.0)
    seen = []
    proc = LatestFrameProcessor(seen.append, max_rate=0.001, clock=lambda: clock.t).start()  # one frame / 1000 s
    proc.submit(1)
    assert proc.wait_idle(WAIT)
    proc.submit(2)  # held by the throttle
    assert proc.stop(timeout=WAIT) is True
    assert seen == [1] and proc.stats().skipped == 1


# --- signals: headpose-ros video in a subprocess ------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import importlib.util
    import sys
    import time

    sys.path.insert(0, {test_dir!r})
    from headpose_ros.estimator.detectors import DETECTORS
    from headpose_ros.estimator.keypoints import KEYPOINT_SOURCES
    from headpose_ros.tools import cli
    from tools_fakes import CentreDetector


    class SlowDetector(CentreDetector):
        def detect(self, image_bgr):
            time.sleep(0.05)  # a slow frame: the signal arrives in the middle of one
            return super().detect(image_bgr)


    DETECTORS._entries["slow"] = "__main__:SlowDetector"
    KEYPOINT_SOURCES._entries["layout"] = "tools_fakes:LayoutKeypoints"
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def video_job(tmp_path_factory, good_weights):
    import cv2

    folder = tmp_path_factory.mktemp("video")
    source = folder / "input.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    assert writer.isOpened()
    for i in range(400):
        frame = np.full((120, 160, 3), 60 + (i % 100), np.uint8)
        writer.write(frame)
    writer.release()
    script = folder / "run_cli.py"
    script.write_text(SCRIPT.format(test_dir=str(TEST_DIR)))
    return script, source, good_weights


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)],
                         ids=["SIGINT", "SIGTERM"])
def test_video_command_interrupted_mid_run_exits_cleanly(video_job, tmp_path, sig, code):
    import cv2

    script, source, weights = video_job
    out = tmp_path / "annotated.avi"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), "video", str(source), "--detector", "slow", "--keypoints", "layout",
         "--model", str(weights), "--device", "cpu", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
        preexec_fn=sigint_default)
    try:
        lines = []
        for _ in range(3):  # three frames done: the run is well under way, a frame is in flight
            line = proc.stdout.readline()
            assert line, f"the video command ended before its first frames: {proc.stderr.read()[-2000:]}"
            lines.append(line)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert '"frame": 0' in lines[0]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert proc.returncode == code, f"exit code {proc.returncode}, expected {code}; stderr: {stderr[-2000:]}"
    capture = cv2.VideoCapture(str(out))  # the annotated video was finalised, not cut off
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames >= 2, f"the output video {out} holds {frames} readable frames"  # frames 0 and 1 were written
