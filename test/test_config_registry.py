"""EstimatorConfig validation and the backend Registry's errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from headpose_ros.estimator.config import EstimatorConfig
from headpose_ros.estimator.detectors import DETECTORS
from headpose_ros.estimator.errors import BackendUnavailableError, ConfigError, HeadPoseError
from headpose_ros.estimator.keypoints import KEYPOINT_SOURCES
from headpose_ros.estimator.registry import Registry


# --- EstimatorConfig -----------------------------------------------------------------------------------------

def test_defaults_are_valid_and_round_trip() -> None:
    cfg = EstimatorConfig()
    again = EstimatorConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert cfg.detector in DETECTORS and cfg.keypoints in KEYPOINT_SOURCES


def test_from_dict_takes_known_keys() -> None:
    cfg = EstimatorConfig.from_dict({"detector": "dlib_hog", "detector_options": {"upsample": 1},
                                     "min_face_score": 0.7, "max_faces": 3, "device": "cpu"})
    assert (cfg.detector, cfg.detector_options, cfg.min_face_score, cfg.max_faces, cfg.device) == (
        "dlib_hog", {"upsample": 1}, 0.7, 3, "cpu")


@pytest.mark.parametrize(
    "field, value",
    [
        ("device", "tpu"),
        ("device", ""),
        ("min_face_score", -0.01),
        ("min_face_score", 1.01),
        ("min_face_score", "0.5"),
        ("min_face_score", float("nan")),
        ("min_face_score", None),
        ("keypoint_threshold", 2),
        ("keypoint_threshold", [0.3]),
        ("max_faces", 0),
        ("max_faces", 257),
        ("max_faces", 2.0),
        ("max_faces", True),
        ("min_face_px", -1),
        ("min_face_px", 5000),
        ("min_face_px", "16"),
        ("cpu_threads", 0),
        ("cpu_threads", 65),
        ("cpu_threads", 2.0),
        ("cpu_threads", True),
        ("detector", ""),
        ("detector", None),
        ("keypoints", 3),
        ("model", ""),
        ("detector_options", ["upsample", 1]),
        ("keypoint_options", "threshold=0.3"),
    ],
)
def test_bad_values_are_rejected_naming_the_setting(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        EstimatorConfig(**{field: value})


@pytest.mark.parametrize("field", ["min_face_score", "keypoint_threshold"])
def test_booleans_are_not_scores(field: str) -> None:
    """max_faces and min_face_px refuse booleans; a score of True is just as much a mistake."""
    with pytest.raises(ConfigError, match=field):
        EstimatorConfig(**{field: True})


def test_error_message_shows_the_bad_value() -> None:
    with pytest.raises(ConfigError) as info:
        EstimatorConfig(max_faces=0)
    assert "0" in str(info.value) and "[1, 256]" in str(info.value)


def test_validate_catches_later_mutation() -> None:
    cfg = EstimatorConfig()
    cfg.device = "quantum"
    with pytest.raises(ConfigError, match="device"):
        cfg.validate()


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="detektor") as info:
        EstimatorConfig.from_dict({"detektor": "dlib_cnn", "max_faces": 2})
    assert "detector" in str(info.value)  # the known settings are listed


def test_config_error_is_a_value_error_and_a_headpose_error() -> None:
    with pytest.raises(ValueError):
        EstimatorConfig(device="tpu")
    with pytest.raises(HeadPoseError):
        EstimatorConfig(device="tpu")


# --- Registry ----------------------------------------------------------------------------------------------------

@pytest.fixture()
def fake_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path with a working backend module and one whose dependency is missing."""
    (tmp_path / "hp_fake_ok_backend.py").write_text(textwrap.dedent("""
        class Thing:
            def __init__(self, size: int = 1):
                self.size = size
    """))
    (tmp_path / "hp_fake_broken_backend.py").write_text("import hp_surely_missing_dependency_xyz\nclass Thing: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hp_fake_ok_backend", "hp_fake_broken_backend"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        DETECTORS.create("haar_cascade")
    message = str(info.value)
    assert "haar_cascade" in message
    for name in DETECTORS.names():
        assert name in message


def test_registries_name_the_documented_backends() -> None:
    assert {"mediapipe", "dlib_cnn", "dlib_hog"} <= set(DETECTORS.names())
    assert {"face_mesh", "mediapipe_pose", "openpose"} <= set(KEYPOINT_SOURCES.names())
    assert "nope" not in DETECTORS


def test_missing_backend_module_is_backend_unavailable() -> None:
    reg = Registry("test stage", {"ghost": "headpose_ros.estimator.no_such_backend_module:Ghost"})
    with pytest.raises(BackendUnavailableError, match="no_such_backend_module"):
        reg.create("ghost")


def test_missing_relative_backend_module_is_backend_unavailable() -> None:
    reg = Registry("test stage", {"ghost": ".detectors.no_such_detector:Ghost"})
    with pytest.raises(BackendUnavailableError) as info:
        reg.resolve("ghost")
    assert "ghost" in str(info.value) and "no_such_detector" in str(info.value)


def test_missing_dependency_of_a_backend_is_named(fake_modules: Path) -> None:
    reg = Registry("test stage", {"broken": "hp_fake_broken_backend:Thing"})
    with pytest.raises(BackendUnavailableError) as info:
        reg.create("broken")
    assert "hp_surely_missing_dependency_xyz" in str(info.value)
    assert "broken" in str(info.value)


def test_create_passes_options_and_rejects_unknown_ones(fake_modules: Path) -> None:
    reg = Registry("test stage", {"ok": "hp_fake_ok_backend:Thing"})
    assert reg.create("ok", size=3).size == 3
    with pytest.raises(ConfigError, match="ok"):
        reg.create("ok", colour="red")


def test_resolving_does_not_import_other_backends(fake_modules: Path) -> None:
    reg = Registry("test stage", {"ok": "hp_fake_ok_backend:Thing", "broken": "hp_fake_broken_backend:Thing"})
    assert reg.resolve("ok").__name__ == "Thing"
    assert "hp_fake_broken_backend" not in sys.modules
