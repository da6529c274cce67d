"""The estimator's configuration: which backend runs each stage, the model, the device and thresholds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

DEVICES = ("auto", "cpu", "gpu")


def read_yaml(path: "str | Path", what: str, error: type[ConfigError] = ConfigError) -> Any:
    """The content of a YAML file; ``error`` naming ``what`` and the file when it is missing or unreadable."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"{what} {path} cannot be read as YAML: {exc}") from None


@dataclass
class EstimatorConfig:
    """Everything :class:`~headpose_ros.estimator.pipeline.HeadPoseEstimator` needs; defaults are the CPU default.

    - ``detector`` / ``keypoints``: backend names (see ``DETECTORS`` and ``KEYPOINT_SOURCES``), with options. The
      default detector ``tiled`` is ``mediapipe`` on the whole frame plus tiles for small faces on frames from
      1280 px wide (:mod:`~headpose_ros.estimator.detectors.tiled`); narrower frames get exactly ``mediapipe``.
    - ``model``: a shipped model's name (``default``, ``openpose``) or a path to a ``.weights.h5`` file whose
      ``.json`` card sits beside it.
    - ``device``: ``auto`` (a GPU when TensorFlow sees one), ``cpu`` or ``gpu`` (an error without one).
    - ``min_face_score``: detector score below which a face is dropped, in [0, 1].
    - ``keypoint_threshold``: confidence below which a keypoint counts as missing, in [0, 1].
    - ``max_faces``: at most this many faces (the largest) are processed per frame.
    - ``min_face_px``: faces whose box is narrower than this many pixels are dropped.
    - ``min_face_quality``: faces whose quality (:mod:`~headpose_ros.estimator.quality`: is it a face at all,
      whatever the detector says) is below this are dropped, in [0, 1]; 0 turns the check off. The default 0.45
      keeps every face of the development sets the pipeline found without the check (the least face-like, an
      AFLW2000 profile, scores 0.64) at 0-0.016 false faces per frame on generated negative scenes not used to
      fit the check.
    - ``hidden_keypoints``: ``True`` lowers the confidence of keypoints the face hides from the camera (the far
      ear of a turned head, :mod:`~headpose_ros.estimator.visibility`) below ``keypoint_threshold``.
    - ``cpu_threads``: CPU threads of each TFLite model (detector, face mesh, quality check, regressor), 1-64.
      More cut a frame's wall time where cores are idle and cost more CPU time per frame (see docs/speed.md);
      a backend option ``num_threads`` overrides it for that backend. Keras (``device: gpu``) ignores it.
    """

    detector: str = "tiled"
    detector_options: dict[str, Any] = field(default_factory=dict)
    keypoints: str = "face_mesh"
    keypoint_options: dict[str, Any] = field(default_factory=dict)
    model: str = "default"
    device: str = "auto"
    min_face_score: float = 0.5
    keypoint_threshold: float = 0.3
    max_faces: int = 16
    min_face_px: int = 16
    min_face_quality: float = 0.45
    hidden_keypoints: bool = True
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        for name in ("min_face_score", "keypoint_threshold", "min_face_quality"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1], not {value!r}")
        if not isinstance(self.max_faces, int) or isinstance(self.max_faces, bool) or not 1 <= self.max_faces <= 256:
            raise ConfigError(f"max_faces must be an integer in [1, 256], not {self.max_faces!r}")
        px = self.min_face_px
        if not isinstance(px, int) or isinstance(px, bool) or not 0 <= px <= 4096:
            raise ConfigError(f"min_face_px must be an integer in [0, 4096], not {self.min_face_px!r}")
        threads = self.cpu_threads
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 64:
            raise ConfigError(f"cpu_threads must be an integer in [1, 64], not {threads!r}")
        if not isinstance(self.hidden_keypoints, bool):
            raise ConfigError(f"hidden_keypoints must be true or false, not {self.hidden_keypoints!r}")
        for name in ("detector", "keypoints", "model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name} must be a non-empty string, not {getattr(self, name)!r}")
        for name in ("detector_options", "keypoint_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a mapping, not {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EstimatorConfig":
        """Build from a mapping (a YAML section, ROS parameters); unknown keys raise ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown estimator setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
