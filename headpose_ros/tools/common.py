"""Helpers shared by the image, video, eval and bench commands: estimator configuration from command-line flags
and YAML, image reading, intrinsics parsing, output checks and JSON output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..estimator.config import EstimatorConfig, read_yaml
from ..estimator.errors import ConfigError, HeadPoseError, ImageError
from ..estimator.types import CameraIntrinsics


class OutputError(HeadPoseError):
    """An output file or folder cannot be created or written."""


#: What the pose means, for --help texts: the same statement as the README and HeadPoseEstimator.process.
POSE_MEANING = (
    "What the pose means. With camera intrinsics (--intrinsics FX,FY,CX,CY here; camera_info in ROS) the pose is "
    "in the camera's optical frame: the CNN's pose relative to the line of sight, turned by the ray through the "
    "face; the position is in metres. Without them the pose is the one relative to the line of sight (what the "
    "face crop shows; exact for a face on the optical axis; no guessed focal length is used to turn it), and the "
    "position is the unit-depth ray (z = 1) through the point between the eyes under a guessed focal length "
    'equal to the image width ("position_is_ray": true).')

#: The angle conventions, for --help texts.
ANGLES = ("Angles in degrees: yaw > 0 the face turns to the image's left, pitch > 0 it looks up, roll > 0 it "
          "tilts clockwise on screen.")


class ParagraphHelpFormatter(argparse.HelpFormatter):
    """Wraps a description paragraph by paragraph (blank lines between them) to the terminal's width, at most 100."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: Optional[int] = None):
        import shutil

        width = min(width or shutil.get_terminal_size().columns - 2, 100)
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n\n".join(textwrap.fill(" ".join(part.split()), width, initial_indent=indent, subsequent_indent=indent)
                           for part in text.split("\n\n"))


def paragraphs(*texts: str) -> str:
    """Paragraphs separated by blank lines, for a parser with ParagraphHelpFormatter."""
    return "\n\n".join(texts)


#: File name endings the ``image`` and ``video`` commands and the dataset loaders read as images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def add_config_arguments(parser: argparse.ArgumentParser, *, defaults_note: str = "") -> None:
    """Add the estimator flags (--config, --detector, --keypoints, --model, --device, thresholds, options)."""
    group = parser.add_argument_group("estimator configuration" + (f" ({defaults_note})" if defaults_note else ""))
    group.add_argument("--config", metavar="YAML", help="estimator settings from a YAML file: a mapping of the "
                       "estimator's settings, a file with an 'estimator:' section, or the node's ROS 2 parameters "
                       "file (config/headpose.yaml); the flags below override it")
    group.add_argument("--detector", metavar="NAME", help="face detector: tiled (default; mediapipe plus tiles on "
                       "frames from 1280 px wide), mediapipe, dlib_cnn, dlib_hog")
    group.add_argument("--keypoints", metavar="NAME",
                       help="keypoint source: face_mesh (default), mediapipe_pose, openpose")
    group.add_argument("--model", metavar="NAME_OR_PATH",
                       help="regressor model: default, openpose, or a .weights.h5 file with its .json card beside it")
    group.add_argument("--device", choices=("auto", "cpu", "gpu"),
                       help="where the regressor runs: auto (GPU when TensorFlow sees one), cpu, or gpu")
    group.add_argument("--min-face-score", type=float, metavar="S",
                       help="drop faces whose detector score is below S, 0 to 1 (default 0.5)")
    group.add_argument("--keypoint-threshold", type=float, metavar="C",
                       help="a keypoint whose confidence is below C counts as missing (default 0.3)")
    group.add_argument("--max-faces", type=int, metavar="N",
                       help="process at most the N largest faces of each frame (default 16)")
    group.add_argument("--cpu-threads", type=int, metavar="N",
                       help="CPU threads of each TFLite model (default 1; more cut the wall time where cores are idle)")
    group.add_argument("--detector-option", action="append", default=[], metavar="KEY=VALUE",
                       help="a detector backend option (value parsed as YAML), repeatable, e.g. models=full")
    group.add_argument("--keypoint-option", action="append", default=[], metavar="KEY=VALUE",
                       help="a keypoint backend option (value parsed as YAML), repeatable")


def parse_options(items: Sequence[str], flag: str) -> dict[str, Any]:
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, not {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{flag} {item!r}: the value is not valid YAML ({exc})") from None
    return options


def estimator_settings_from_yaml(path: "str | os.PathLike[str]") -> dict[str, Any]:
    """The estimator settings in a YAML file.

    Accepted layouts: a plain mapping of EstimatorConfig fields (unknown keys are an error); a
    mapping with an ``estimator:`` section (other top-level keys are ignored); or a ROS 2 parameter file
    (``node: {ros__parameters: {...}}``, e.g. ``config/headpose.yaml``), read as the node reads it, of which the
    estimator's settings are taken and node-only parameters ignored.
    """
    file = Path(path).expanduser()
    data = read_yaml(file, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} must hold a mapping, not {type(data).__name__}")
    if any(isinstance(v, dict) and "ros__parameters" in v for v in data.values()):
        from ..ros import params  # the node's own reading of its parameters file (options are YAML strings there)

        return params.estimator_config(params.load_params_file(file)).to_dict()
    if isinstance(data.get("estimator"), dict):
        return dict(data["estimator"])
    return dict(data)


def config_from_args(args: argparse.Namespace, base: Optional[Mapping[str, Any]] = None) -> EstimatorConfig:
    """An EstimatorConfig from ``base`` (a mapping), then ``--config`` YAML, then explicit flags, in that order.

    Raises ConfigError naming the bad value.
    """
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        values.update(estimator_settings_from_yaml(args.config))
    flag_map = {"detector": "detector", "keypoints": "keypoints", "model": "model", "device": "device",
                "min_face_score": "min_face_score", "keypoint_threshold": "keypoint_threshold",
                "max_faces": "max_faces", "cpu_threads": "cpu_threads"}
    for attr, field_name in flag_map.items():
        value = getattr(args, attr, None)
        if value is not None:
            values[field_name] = value
    det = parse_options(getattr(args, "detector_option", None) or [], "--detector-option")
    kp = parse_options(getattr(args, "keypoint_option", None) or [], "--keypoint-option")
    if det:
        values["detector_options"] = {**dict(values.get("detector_options") or {}), **det}
    if kp:
        values["keypoint_options"] = {**dict(values.get("keypoint_options") or {}), **kp}
    return EstimatorConfig.from_dict(values)


def config_from_flag_string(text: str, base: Optional[Mapping[str, Any]] = None) -> EstimatorConfig:
    """An EstimatorConfig from a YAML file path or a string of estimator flags (``"--detector dlib_cnn"``)."""
    import shlex

    candidate = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or (candidate.is_file() and not text.lstrip().startswith("-")):
        return EstimatorConfig.from_dict({**dict(base or {}), **estimator_settings_from_yaml(candidate)})
    parser = argparse.ArgumentParser(prog="config", add_help=False, exit_on_error=False)
    add_config_arguments(parser)
    try:
        args, extra = parser.parse_known_args(shlex.split(text))
    except (argparse.ArgumentError, ValueError) as exc:
        raise ConfigError(f"cannot parse configuration {text!r}: {exc}") from None
    if extra:
        raise ConfigError(f"configuration {text!r}: unknown argument(s) {' '.join(extra)}")
    return config_from_args(args, base)


def parse_intrinsics(text: Optional[str]) -> Optional[CameraIntrinsics]:
    """``"fx,fy,cx,cy"`` (pixels) -> CameraIntrinsics; None for None or empty."""
    if not text:
        return None
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"--intrinsics takes four numbers fx,fy,cx,cy in pixels, not {text!r}")
    cam = CameraIntrinsics(*values)
    if not cam.is_valid():
        raise ConfigError(f"--intrinsics {text!r}: focal lengths must be positive")
    return cam


def check_output_dir(path: "str | os.PathLike[str]", flag: str) -> None:
    """Raise OutputError when ``path`` cannot be an output folder (a file is there, or it cannot be created)."""
    _check_creatable(Path(path).expanduser(), flag, folder=True)


def check_output_file(path: "str | os.PathLike[str]", flag: str) -> None:
    """Raise OutputError when ``path`` cannot be an output file (a folder is there, or its folder cannot be made)."""
    _check_creatable(Path(path).expanduser(), flag, folder=False)


def _check_creatable(path: Path, flag: str, folder: bool) -> None:
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: a file is in the way of this output folder")
    if not folder and path.is_dir():
        raise OutputError(f"{flag} {path} is a folder, not a file")
    existing = path if folder else path.parent
    while not existing.exists():  # the nearest existing folder must be a writable folder
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: cannot write in {existing} (permission denied)")


def read_image(path: "str | os.PathLike[str]") -> np.ndarray:
    """An image file as an array for HeadPoseEstimator.process (BGR; 16-bit kept; EXIF rotation applied).

    Raises ImageError when the file is missing, empty or not an image OpenCV can decode.
    """
    import cv2

    file = Path(path)
    if not file.is_file():
        raise ImageError(f"image file {file} does not exist")
    if file.stat().st_size == 0:
        raise ImageError(f"image file {file} is empty (0 bytes)")
    data = np.fromfile(str(file), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ImageError(f"image file {file} cannot be decoded (corrupt or not an image)")
    return image


def write_image(path: "str | os.PathLike[str]", image: np.ndarray) -> None:
    """Write an 8-bit BGR image; the format follows the suffix. Raises OutputError when it cannot."""
    import cv2

    file = Path(path)
    ok, buf = cv2.imencode(file.suffix or ".png", image)
    if not ok:
        raise OutputError(f"cannot encode an image as {file.suffix!r} for {file}")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        buf.tofile(str(file))
    except OSError as exc:
        raise OutputError(f"cannot write {file}: {exc.strerror or exc}") from None


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: "str | os.PathLike[str]", data: Any) -> None:
    """Write ``data`` as indented JSON (numpy values converted), creating the folder."""
    file = Path(path).expanduser()
    text = json.dumps(data, indent=2, default=json_default) + "\n"
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    except OSError as exc:
        raise OutputError(f"cannot write {file}: {exc.strerror or exc}") from None


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr, refreshed at most once a second."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", True)
    return tqdm(iterable, **kwargs)
