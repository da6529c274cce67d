"""The regressor's TFLite runtime: the shipped exports match Keras, the export is checked against its card."""

import json
import shutil

import numpy as np
import pytest

from headpose_ros.estimator.errors import ModelFileError
from headpose_ros.estimator.heatmaps import keypoints_to_heatmaps
from headpose_ros.estimator.regressor import MODELS_DIR, HeadPoseRegressor, int8_pays
from headpose_ros.tools.synth import PROFILES, generate
from tools_fakes import copy_default_model


def _heatmaps(n: int = 64) -> np.ndarray:
    data = generate(n, 3, PROFILES["face_mesh"])
    return keypoints_to_heatmaps(data.xy, data.confidence, 0.3)[0]


@pytest.mark.parametrize("name", ["default", "openpose"])
def test_shipped_tflite_matches_keras_within_a_hundredth_of_a_degree(name):
    tflite = HeadPoseRegressor(f"{name}.tflite", "cpu")
    keras = HeadPoseRegressor(str(MODELS_DIR / f"{name}.weights.h5"), "cpu")
    assert tflite.runtime == "tflite" and keras.runtime == "keras"
    expected = "tflite_int8" if int8_pays() else "tflite"  # the CPU default follows the CPU's flags
    assert HeadPoseRegressor(name, "cpu").runtime == expected
    maps = _heatmaps()
    for batch in (maps[:1], maps[:4], maps):  # batch sizes change the interpreter's tensors
        np.testing.assert_allclose(tflite.predict(batch), keras.predict(batch), atol=0.01, rtol=0)


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx avx2 fma", False),  # AVX2 only (the AMD EPYC where int8 measured slower than float)
    ("fpu avx2 avx512f avx512bw avx512_vnni", True),
    ("fp asimd evtstrm asimddp", True),  # 64-bit ARM with dot-product instructions
    ("fp asimd evtstrm", False),
])
def test_int8_pays_follows_the_cpu_flags(tmp_path, flags, expected):
    key = "Features" if "asimd" in flags else "flags"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\n{key}\t\t: {flags}\n\nprocessor\t: 1\n")
    assert int8_pays(str(cpuinfo)) is expected
    assert int8_pays(str(tmp_path / "missing")) is False


def test_tflite_path_forces_tflite_and_h5_path_forces_keras():
    assert HeadPoseRegressor("default.tflite", "cpu").runtime == "tflite"
    assert HeadPoseRegressor(str(MODELS_DIR / "default.weights.h5"), "cpu").runtime == "keras"


def test_a_corrupted_export_is_refused_when_forced_and_skipped_otherwise(tmp_path, monkeypatch):
    from headpose_ros.estimator import regressor

    folder = copy_default_model(tmp_path)
    for name in ("m.tflite", "m.int8.tflite"):
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / name).write_bytes(bytes(data))
        with pytest.raises(ModelFileError, match="sha256"):
            HeadPoseRegressor(str(folder / name), "cpu")
    monkeypatch.setattr(regressor, "MODELS_DIR", folder)
    assert HeadPoseRegressor("m", "cpu").runtime == "keras"  # by name: falls back to the weights


def test_an_export_of_other_weights_is_not_used(tmp_path, monkeypatch):
    from headpose_ros.estimator import regressor

    folder = copy_default_model(tmp_path)
    shutil.copy(MODELS_DIR / "openpose.tflite", folder / "m.tflite")  # a valid TFLite file, but of the openpose weights
    monkeypatch.setattr(regressor, "MODELS_DIR", folder)
    card = json.loads((folder / "m.json").read_text())
    card["tflite"]["sha256"] = regressor.file_sha256(folder / "m.tflite")  # even with its own sha recorded
    card["tflite"]["weights_sha256"] = card["tflite_int8"]["weights_sha256"] = "0" * 64
    (folder / "m.json").write_text(json.dumps(card))
    assert HeadPoseRegressor("m", "cpu").runtime == "keras"
    with pytest.raises(ModelFileError, match="not exported from"):
        HeadPoseRegressor(str(folder / "m.tflite"), "cpu")


def test_int8_export_stays_near_keras():
    """The 8-bit export trades exactness for speed: measured within 0.64 deg of Keras on 400 synthetic faces."""
    int8 = HeadPoseRegressor("default.int8.tflite", "cpu")
    keras = HeadPoseRegressor(str(MODELS_DIR / "default.weights.h5"), "cpu")
    assert int8.runtime == "tflite_int8"
    maps = _heatmaps(200)
    diff = np.abs(int8.predict(maps) - keras.predict(maps))
    assert diff.max() < 1.5 and diff.mean() < 0.4, (diff.max(), diff.mean())
