"""The node's parameters: one spec per parameter, pure validation, and loading ``config/headpose.yaml`` offline.

The estimator's parameters mirror :class:`~headpose_ros.estimator.config.EstimatorConfig` (same names and
defaults); ``detector_options`` and ``keypoint_options`` are YAML mappings in a string, since ROS parameters
cannot be dictionaries. ``runtime`` marks the parameters that may change while the node runs; the others
are read-only after start-up (change them in the YAML file and restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from ..estimator.config import DEVICES, EstimatorConfig, read_yaml
from ..estimator.errors import ConfigError
from . import frames

#: The parameters file in a source checkout (installed copies live in share/headpose_ros/config).
SOURCE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "headpose.yaml"
#: Names ROS itself declares or reads; accepted in parameter files and ignored here.
ROS_OWN = ("use_sim_time", "qos_overrides.", "start_type_description_service")


_TYPE_WORDS = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


class ParamError(ConfigError):
    """A parameter value or file is invalid; the message names the parameter and what it accepts."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, Python type (bool, int, float, str), default, description, an inclusive range
    (numbers) or choices (strings), whether it may change at run time, and the EstimatorConfig field it sets."""

    name: str
    type: type
    default: Any
    description: str
    min: Optional[float] = None
    max: Optional[float] = None
    choices: tuple[str, ...] = ()
    runtime: bool = False
    estimator_field: Optional[str] = None

    def describe_range(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.min is not None and self.max is not None:
            return f"[{self.min:g}, {self.max:g}]"
        return ""


def _est_default(name: str) -> Any:
    value = getattr(EstimatorConfig(), name)
    return "{}" if isinstance(value, dict) else value


def _backend_names(kind: str) -> tuple[str, ...]:
    if kind == "detector":
        from ..estimator.detectors import DETECTORS

        return tuple(DETECTORS.names())
    from ..estimator.keypoints import KEYPOINT_SOURCES

    return tuple(KEYPOINT_SOURCES.names())


def _specs() -> tuple[ParamSpec, ...]:
    S = ParamSpec
    return (
        # --- estimator (EstimatorConfig) ---
        S("detector", str, _est_default("detector"), "Face detector backend; tiled (default): mediapipe on the whole "
          "frame, plus tiles for small faces on frames from 1280 px wide (narrower frames: exactly mediapipe).",
          choices=_backend_names("detector"), estimator_field="detector"),
        S("detector_options", str, "{}", "Detector options as a YAML mapping, e.g. '{models: full}' (tiled passes "
          "options that are not its own to its whole-frame mediapipe detector).", estimator_field="detector_options"),
        S("keypoints", str, _est_default("keypoints"), "Keypoint source backend (nose, eyes, ears).",
          choices=_backend_names("keypoints"), estimator_field="keypoints"),
        S("keypoint_options", str, "{}", "Keypoint source options as a YAML mapping.",
          estimator_field="keypoint_options"),
        S("model", str, _est_default("model"),
          "Regressor model: a shipped name (default, openpose) or a path to a .weights.h5 file with its .json card.",
          estimator_field="model"),
        S("device", str, _est_default("device"), "Where the regressor runs: auto (GPU when TensorFlow sees one; "
          "without a GPU driver TensorFlow is not loaded), cpu, or gpu (an error without one).", choices=DEVICES,
          estimator_field="device"),
        S("min_face_score", float, _est_default("min_face_score"), "Detector score below which a face is dropped.",
          0.0, 1.0, runtime=True, estimator_field="min_face_score"),
        S("keypoint_threshold", float, _est_default("keypoint_threshold"),
          "Keypoint confidence below which a keypoint counts as missing.", 0.0, 1.0, runtime=True,
          estimator_field="keypoint_threshold"),
        S("max_faces", int, _est_default("max_faces"), "At most this many faces (the largest) per frame.", 1, 256,
          runtime=True, estimator_field="max_faces"),
        S("min_face_px", int, _est_default("min_face_px"), "Faces narrower than this many pixels are dropped.",
          0, 4096, runtime=True, estimator_field="min_face_px"),
        S("min_face_quality", float, _est_default("min_face_quality"), "Face-quality check: faces whose quality (the "
          "face mesh's mirror consistency and presence, a frontal-looking mesh the mesh calls no face, the "
          "detector's score) is below this are dropped as false faces (0: no check).", 0.0, 1.0, runtime=True,
          estimator_field="min_face_quality"),
        S("hidden_keypoints", bool, _est_default("hidden_keypoints"), "Give keypoints the head hides (the far ear "
          "beyond about 50 degrees of yaw) a confidence below keypoint_threshold.", runtime=True,
          estimator_field="hidden_keypoints"),
        S("cpu_threads", int, _est_default("cpu_threads"), "CPU threads of each TFLite model (detector, face mesh, "
          "quality check, regressor): more cut the latency where cores are idle, at more CPU time per frame.", 1, 64,
          estimator_field="cpu_threads"),
        # --- input ---
        S("image_transport", str, "raw", "Subscribe to 'image' (sensor_msgs/Image, raw) or 'image/compressed' "
          "(sensor_msgs/CompressedImage, JPEG or PNG).", choices=("raw", "compressed")),
        S("qos.reliability", str, "best_effort", "Image subscription reliability; best_effort with depth 5 is "
          "SensorDataQoS and also receives from reliable publishers.", choices=("best_effort", "reliable")),
        S("qos.depth", int, 5, "Image subscription queue depth.", 1, 1000),
        S("use_camera_info", bool, True, "Use camera_info intrinsics: the pose is then in the camera's optical frame "
          "and the position in metres; without them the pose is relative to each face's line of sight and the "
          "position is the unit-depth ray through the point between the eyes.", runtime=True),
        S("video_mode", bool, True, "Follow faces from frame to frame with the face mesh and run the detector only "
          "every 10 frames or when a face is lost (as MediaPipe's face-mesh graph does); false: detect on every "
          "frame.", runtime=True),
        S("max_rate", float, 0.0, "Process at most this many frames per second (0: as fast as possible; the "
          "newest frame is always the one processed).", 0.0, 1000.0, runtime=True),
        S("executor", str, "auto", "How the node waits for messages: events (rclpy's EventsExecutor, C++ "
          "dispatch: less latency per frame; rclpy 7.1.4 and newer, i.e. Jazzy and later), single_threaded "
          "(rclpy's SingleThreadedExecutor), or auto (events where rclpy has it, else single_threaded).",
          choices=("auto", "events", "single_threaded")),
        # --- output ---
        S("publish_tf", bool, True, "Broadcast face_<id> and gaze_<id> TF frames (REP-155).", runtime=True),
        S("tf_prefix", str, "", "Prefix of every face id (REP-155), in TF frames and /humans/faces topics alike: "
          "'cam1_' gives face_cam1_abcde, gaze_cam1_abcde and /humans/faces/cam1_abcde/roi. Empty, or a letter "
          "then letters, digits and single underscores.", runtime=True),
        S("primary_face", str, "largest", "Which head /head_pose carries: the largest face or the one tracked "
          "longest.", choices=("largest", "longest_tracked"), runtime=True),
        S("markers", bool, True, "Publish ~/markers (arrow and label per head).", runtime=True),
        S("debug_image", bool, True, "Publish ~/debug_image (drawn only while someone subscribes).", runtime=True),
        # --- REP-155 (ROS4HRI) face topics ---
        S("hri.enabled", bool, True, "Publish the REP-155 face topics: /humans/faces/tracked (hri_msgs/IdsList) "
          "and per face /humans/faces/<id>/roi, landmarks, cropped and aligned (a face's topics are removed once "
          "its track is forgotten). Needs the hri_msgs package; without it the node says so once and goes on "
          "without them."),
        S("hri.face_width", int, 128, "Width in pixels of /humans/faces/<id>/cropped and aligned (REP-155's "
          "/humans/faces/width).", 16, 4096),
        S("hri.face_height", int, 128, "Height in pixels of /humans/faces/<id>/cropped and aligned (REP-155's "
          "/humans/faces/height).", 16, 4096),
        # --- tracking and smoothing ---
        S("tracking.iou_threshold", float, 0.3, "A face keeps its id when its box overlaps the previous one by "
          "at least this IoU...", 0.0, 1.0, runtime=True),
        S("tracking.max_centre_distance", float, 0.5, "...or its centre moved at most this many box sizes.",
          0.0, 10.0, runtime=True),
        S("tracking.max_missed", int, 5, "Frames a face may be missed before its id is forgotten.", 0, 10000,
          runtime=True),
        S("smoothing.enabled", bool, False, "One-euro filtering of each tracked head's orientation and position.",
          runtime=True),
        S("smoothing.min_cutoff", float, 1.0, "One-euro cutoff at rest, Hz (lower: smoother, more lag).",
          0.001, 1000.0, runtime=True),
        S("smoothing.beta", float, 0.3, "One-euro speed coefficient, Hz per rad/s (orientation) or per m/s "
          "(position) (higher: less lag when moving).", 0.0, 1000.0, runtime=True),
        S("smoothing.d_cutoff", float, 1.0, "One-euro cutoff of the speed estimate, Hz.", 0.001, 1000.0,
          runtime=True),
        # --- diagnostics ---
        S("diagnostics.period_s", float, 1.0, "Seconds between /diagnostics messages.", 0.1, 60.0),
        S("diagnostics.latency_warn_ms", float, 500.0, "WARN when the mean processing time per frame exceeds "
          "this (ms).", 0.0, 1e6, runtime=True),
        S("diagnostics.latency_error_ms", float, 2000.0, "ERROR when the mean processing time per frame exceeds "
          "this (ms).", 0.0, 1e6, runtime=True),
        S("diagnostics.input_timeout_s", float, 5.0, "WARN when no image arrived for this many seconds (0: never).",
          0.0, 3600.0, runtime=True),
        S("diagnostics.failure_ratio_error", float, 0.5, "ERROR when at least this fraction of the frames of a "
          "period failed (bad images, backend errors).", 0.0, 1.0, runtime=True),
    )


SPECS: dict[str, ParamSpec] = {s.name: s for s in _specs()}


def defaults() -> dict[str, Any]:
    """Every parameter's default value."""
    return {name: spec.default for name, spec in SPECS.items()}


def parse_options(name: str, text: Any) -> dict[str, Any]:
    """A backend options string (a YAML mapping) as a dict; ParamError if it is not one."""
    if isinstance(text, dict):
        return dict(text)
    if not isinstance(text, str):
        raise ParamError(f"{name} must be a YAML mapping in a string, not {text!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ParamError(f"{name} is not valid YAML: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ParamError(f"{name} must be a YAML mapping such as '{{models: full}}', not {text!r}")
    return value


def validate_value(name: str, value: Any) -> Any:
    """``value`` checked (and an int widened to float) for parameter ``name``; ParamError with the reason."""
    spec = SPECS.get(name)
    if spec is None:
        raise ParamError(f"unknown parameter {name!r}")
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.type is bool and not isinstance(value, bool) or spec.type is int and (
            isinstance(value, bool) or not isinstance(value, int)) or spec.type in (float, str) and not isinstance(
            value, spec.type):
        raise ParamError(f"parameter {name} must be {_TYPE_WORDS[spec.type]}, not {value!r} "
                         f"({type(value).__name__})")
    if spec.type is float and value != value:
        raise ParamError(f"parameter {name} must be a number, not NaN")
    if spec.min is not None and spec.max is not None and not spec.min <= value <= spec.max:
        raise ParamError(f"parameter {name} must lie in [{spec.min:g}, {spec.max:g}], not {value!r}")
    if spec.choices and value not in spec.choices:
        raise ParamError(f"parameter {name} must be one of {', '.join(spec.choices)}, not {value!r}")
    if name in ("detector_options", "keypoint_options"):
        parse_options(name, value)
    elif name == "model" and not value.strip():
        raise ParamError("parameter model must name a model or a weights file, not an empty string")
    elif name == "tf_prefix":
        try:
            frames.validate_prefix(value)
        except ValueError as exc:
            raise ParamError(f"parameter {exc}") from None
    return value


def check_consistency(values: Mapping[str, Any]) -> None:
    """Checks across parameters; ParamError naming both."""
    warn, error = values["diagnostics.latency_warn_ms"], values["diagnostics.latency_error_ms"]
    if warn > error:
        raise ParamError(f"diagnostics.latency_warn_ms ({warn:g}) must not exceed diagnostics.latency_error_ms "
                         f"({error:g})")


def validate_update(current: Mapping[str, Any], changes: Mapping[str, Any], running: bool = True) -> dict[str, Any]:
    """The parameter set after ``changes`` (name -> value), or ParamError for the first bad change.

    With ``running`` (the node's parameter callback) a parameter that is not runtime-safe is refused.
    """
    merged = dict(current)
    for name, value in changes.items():
        if name.startswith(ROS_OWN) or name in ROS_OWN:
            continue
        spec = SPECS.get(name)
        if spec is None:
            raise ParamError(f"unknown parameter {name!r}")
        if running and not spec.runtime and value != current.get(name):
            raise ParamError(f"parameter {name} cannot change while the node runs; set it in the parameters "
                             f"file and restart")
        merged[name] = validate_value(name, value)
    check_consistency(merged)
    return merged


def validate_all(values: Mapping[str, Any]) -> dict[str, Any]:
    """A complete validated parameter set: ``values`` over the defaults; ParamError on the first problem."""
    return validate_update(defaults(), values, running=False)


def estimator_config(values: Mapping[str, Any]) -> EstimatorConfig:
    """The EstimatorConfig the parameters describe."""
    kwargs: dict[str, Any] = {}
    for spec in SPECS.values():
        if spec.estimator_field is None:
            continue
        value = values.get(spec.name, spec.default)
        if spec.estimator_field.endswith("_options"):
            value = parse_options(spec.name, value)
        kwargs[spec.estimator_field] = value
    return EstimatorConfig(**kwargs)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in ("detector_options", "keypoint_options"):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parameters_from_yaml(data: Any, node_name: str = "headpose_node") -> dict[str, Any]:
    """The flat parameter mapping of a ROS 2 parameters file's content (``/**`` or ``<node>`` sections with
    ``ros__parameters``, merged in file order) or of a plain mapping of parameters."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamError("a parameters file must hold a mapping")
    sections = [(k, v) for k, v in data.items() if isinstance(v, dict) and "ros__parameters" in v]
    if not sections:
        return _flatten(data)
    params: dict[str, Any] = {}
    for key, section in sections:
        name = str(key).rstrip("/").split("/")[-1]
        if key in ("/**", "**") or name == node_name or name == "*":
            params.update(_flatten(section["ros__parameters"] or {}))
    return params


def load_params_file(path: "str | Path", node_name: str = "headpose_node") -> dict[str, Any]:
    """A complete validated parameter set from a YAML file (ROS 2 parameters file or plain mapping)."""
    path = Path(path)
    data = read_yaml(path, "parameters file", ParamError)
    params = {k: v for k, v in parameters_from_yaml(data, node_name).items()
              if not (k.startswith(ROS_OWN) or k in ROS_OWN)}
    try:
        return validate_all(params)
    except ParamError as exc:
        raise ParamError(f"{path}: {exc}") from None


def spec_table() -> list[dict[str, str]]:
    """Rows (name, type, default, range, runtime, description) for documentation."""
    return [{"name": s.name, "type": s.type.__name__, "default": repr(s.default), "range": s.describe_range(),
             "runtime": "yes" if s.runtime else "no", "description": s.description} for s in SPECS.values()]


__all__ = [
    "ParamSpec", "ParamError", "SPECS", "defaults", "validate_value", "validate_update", "validate_all",
    "estimator_config", "load_params_file", "parameters_from_yaml", "parse_options", "spec_table",
    "check_consistency", "SOURCE_CONFIG",
]
