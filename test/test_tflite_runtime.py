"""The TFLite interpreter's package: LiteRT and TensorFlow give the same results, the CPU estimator runs without
importing TensorFlow, and ``device: auto`` asks TensorFlow only where a GPU driver is present."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from headpose_ros.estimator import tflite
from headpose_ros.estimator.detectors.mediapipe_face import SPECS, BlazeFaceTflite
from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator.heatmaps import keypoints_to_heatmaps
from headpose_ros.estimator.regressor import HeadPoseRegressor, gpu_possible
from headpose_ros.tools.bench import astronaut_face
from headpose_ros.tools.synth import PROFILES, generate


def test_the_interpreter_package_follows_the_environment(monkeypatch):
    monkeypatch.delenv(tflite.RUNTIME_ENV, raising=False)
    assert tflite.interpreter_class()[1] == "litert"  # installed by requirements.txt
    monkeypatch.setenv(tflite.RUNTIME_ENV, "tensorflow")
    assert tflite.interpreter_class()[1] == "tensorflow"
    monkeypatch.setenv(tflite.RUNTIME_ENV, "onnx")
    with pytest.raises(ConfigError, match="HEADPOSE_TFLITE"):
        tflite.interpreter_class()


def test_litert_and_tensorflow_give_the_same_angles_and_detections(monkeypatch):
    data = generate(16, 5, PROFILES["face_mesh"])
    maps = keypoints_to_heatmaps(data.xy, data.confidence, 0.3)[0]
    angles, detections = {}, {}
    for runtime in tflite.RUNTIMES:
        monkeypatch.setenv(tflite.RUNTIME_ENV, runtime)
        angles[runtime] = HeadPoseRegressor("default.tflite", "cpu").predict(maps)
        detector = BlazeFaceTflite(SPECS["full"], 0.5)
        detections[runtime] = detector.detect(astronaut_face())
        detector.close()
    assert np.ptp(angles["litert"][:, 0]) > 10.0  # varied faces, not one answer
    np.testing.assert_allclose(angles["litert"], angles["tensorflow"], atol=1e-3, rtol=0)
    assert len(detections["litert"][2]) == len(detections["tensorflow"][2]) == 1
    for ours, theirs in zip(detections["litert"], detections["tensorflow"]):
        np.testing.assert_allclose(ours, theirs, atol=1e-3, rtol=0)


def test_the_cpu_estimator_does_not_import_tensorflow():
    code = (
        "import json, sys\n"
        "from headpose_ros.estimator import HeadPoseEstimator\n"
        "from headpose_ros.tools.bench import astronaut_face\n"
        "faces = HeadPoseEstimator().process(astronaut_face()).faces\n"
        "print(json.dumps({'faces': len(faces), 'tensorflow': 'tensorflow' in sys.modules,"
        " 'mediapipe': 'mediapipe' in sys.modules}))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    env.pop(tflite.RUNTIME_ENV, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"faces": 1, "tensorflow": False, "mediapipe": False}


def test_gpu_possible_needs_a_driver_and_visible_devices(tmp_path, monkeypatch):
    driver = tmp_path / "nvidia0"
    driver.touch()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_possible((str(driver),)) is True
    assert gpu_possible((str(tmp_path / "missing"),)) is False
    for hidden in ("-1", ""):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert gpu_possible((str(driver),)) is False
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpu_possible((str(driver),)) is True


def test_without_tensorflow_the_keras_paths_say_what_to_install(monkeypatch):
    from headpose_ros.estimator.errors import BackendUnavailableError
    from headpose_ros.estimator.regressor import MODELS_DIR, select_device

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now raises ImportError
    with pytest.raises(BackendUnavailableError, match=r"device 'gpu' needs TensorFlow.*pip install tensorflow"):
        select_device("gpu")
    with pytest.raises(BackendUnavailableError, match=r"Keras runtime.*needs TensorFlow"):
        HeadPoseRegressor(str(MODELS_DIR / "default.weights.h5"), "cpu")
    assert HeadPoseRegressor("default", "cpu").runtime in ("tflite", "tflite_int8")  # the CPU path needs none
