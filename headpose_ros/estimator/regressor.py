"""The paper's regression CNN (Gupta et al. 2019): (96, 96, 5) keypoint heatmaps -> yaw, pitch, roll.

Architecture, exactly as published: three blocks of Conv2D 5x5 (50, 50, 150 filters) -> ReLU -> MaxPool 2 ->
Dropout (.2, .2, .3), then Flatten -> Dense 300 tanh -> Dropout .3 -> Dense 300 tanh -> Dropout .3 -> Dense 3 tanh.

Label encoding: the three tanh outputs are yaw, pitch and roll in degrees divided by ``LABEL_SCALE_DEG``
(120), so that every angle of the benchmark range (+-99 deg) sits at |output| <= 0.83, where tanh still has
gradient. A model ships as ``NAME.weights.h5`` (Keras weights) with a ``NAME.json`` card beside it, and
``NAME.tflite``, the same network exported to TensorFlow Lite (float32, by ``headpose-ros train`` or
:func:`export_tflite`; the card records its sha256 and that of the weights it was exported from).

Runtimes: ``tflite`` (LiteRT's or TensorFlow's TFLite interpreter with XNNPACK, see :mod:`.tflite`: no Keras
model is built, TensorFlow is not imported, and it is the faster on a CPU) and ``keras`` (one compiled
``tf.function``; the only one that runs on a GPU). Which one runs follows the model string: a name (``default``)
runs a TFLite export on the CPU when it is beside the weights and matches them, the 8-bit one
(``NAME.int8.tflite``) where the CPU has fast 8-bit kernels (:func:`int8_pays`), else the float one; else Keras
(always Keras with ``device: gpu``, or on ``auto`` when TensorFlow sees a GPU); a path or name ending in
``.tflite`` forces that TFLite file (``default.tflite``: the float export, within 0.01 deg of Keras), one ending
in ``.weights.h5`` forces Keras.

Turned faces: a card may name a companion model for faces turned away from the camera, ``"turned": {"model":
NAME, "blend_yaw_deg": [LO, HI]}`` (the ``default`` card names ``turned``, trained on keypoints levelled as the
face mesh source levels them: docs/accuracy.md). Faces that the model reads within LO degrees of yaw keep its
angles; beyond, the companion also runs on them and its angles are blended in by a weight that grows linearly
from 0 at LO to 1 from HI (no jump in the pose as a head turns). The companion is loaded by its name on the same
device, so it follows the name rule above whatever file forced the first model's runtime. With an optional
``"blend_apparent_deg": [LO, HI]`` the weight follows the apparent yaw of the heatmaps' peaks instead
(:func:`heatmap_apparent_yaws_deg`, known before any model runs), so that a face runs only the model it needs
outside the ramp and both only within it; faces with a keypoint not drawn keep ``blend_yaw_deg``. The ``default``
card sets [27, 37], about where the default model reads 20 and 30 deg (docs/accuracy.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import BackendUnavailableError, ConfigError, ModelFileError
from .geometry import apparent_yaws_deg
from .tflite import load_interpreter
from .types import HEATMAP_SIZE, NUM_KEYPOINTS

LOG = logging.getLogger(__name__)
LABEL_SCALE_DEG = 120.0
ARCHITECTURE = "gupta2019"
MODELS_DIR = Path(__file__).resolve().parent / "models"
_GPU_FALLBACK_LOGGED = False
#: Most faces the float TFLite runtime runs in one batch: batch 4 took no longer per face than batch 16 in the
#: bench, and batch 16's tensors added about 40 MiB to the process's peak memory.
TFLITE_MAX_BATCH = 4
#: CPU flags (``/proc/cpuinfo``) that mark fast 8-bit kernels for the 8-bit export's dynamic-range layers:
#: AVX-512 on x86-64, the dot-product instructions on 64-bit ARM.
INT8_CPU_FLAGS = frozenset({"avx512bw", "avx512_vnni", "avx_vnni", "asimddp"})


def int8_pays(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether a model named without a suffix runs its 8-bit export (``NAME.int8.tflite``) rather than the
    float one on this CPU: only where the CPU has one of :data:`INT8_CPU_FLAGS`. Measured: a third of the float
    export's time on the earlier development machine; 1.3x the float export's time on an AVX2-only AMD EPYC
    (see models/README.md). False when the flags cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return not INT8_CPU_FLAGS.isdisjoint(value.split())
    except OSError:
        pass
    return False


@dataclass
class ModelCard:
    """What a weights file was trained on; ``heatmap_kind`` must match the keypoint source's."""

    name: str
    heatmap_kind: str
    keypoint_source: str
    architecture: str = ARCHITECTURE
    label_scale_deg: float = LABEL_SCALE_DEG
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        try:
            data = json.loads(path.read_text())
            return cls(
                name=str(data["name"]), heatmap_kind=str(data["heatmap_kind"]),
                keypoint_source=str(data["keypoint_source"]), architecture=str(data["architecture"]),
                label_scale_deg=float(data["label_scale_deg"]),
                extra={k: v for k, v in data.items() if k not in {
                    "name", "heatmap_kind", "keypoint_source", "architecture", "label_scale_deg"}},
            )
        except FileNotFoundError:
            raise ModelFileError(f"model card {path} is missing (every weights file needs its .json card)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"model card {path} is not a valid card: {exc!r}") from None

    def save(self, path: Path) -> None:
        data = {
            "name": self.name, "heatmap_kind": self.heatmap_kind, "keypoint_source": self.keypoint_source,
            "architecture": self.architecture, "label_scale_deg": self.label_scale_deg, **self.extra,
        }
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def resolve_model_path(model: str) -> Path:
    """The weights file of a shipped model name (``default``, ``openpose``) or of a path (a ``.tflite`` path:
    the ``.weights.h5`` file beside it, from which it was exported)."""
    if model.endswith(".tflite"):
        path = Path(model).expanduser()
        path = path if os.sep in model else MODELS_DIR / path
        stem = path.name[: -len(".int8.tflite")] if path.name.endswith(".int8.tflite") else path.name[: -len(".tflite")]
        return path.with_name(stem + ".weights.h5")
    if os.sep in model or model.endswith(".h5"):
        return Path(model).expanduser()
    return MODELS_DIR / f"{model}.weights.h5"


def card_path(weights: Path) -> Path:
    return weights.with_name(weights.name.replace(".weights.h5", "") + ".json")


def tflite_path(weights: Path, int8: bool = False) -> Path:
    """Where the TFLite export of a weights file lives: ``NAME.tflite`` (``NAME.int8.tflite``) beside
    ``NAME.weights.h5``."""
    return weights.with_name(weights.name.replace(".weights.h5", "") + (".int8.tflite" if int8 else ".tflite"))


def export_tflite(model, path: Path, int8: bool = False) -> dict[str, Any]:
    """Write a Keras model of :func:`build_model` as a TFLite file: float32, or with ``int8`` its weights
    quantized to 8 bits (TFLite's dynamic-range quantization: activations stay float; no calibration data, so
    the export is deterministic). Returns its card entry (``file``, ``sha256``)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = Path(path)
    path.write_bytes(converter.convert())
    return {"file": path.name, "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the model card records the weights file's)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stored_weighted_layers(path: Path) -> int:
    """How many layers with weights a Keras 3 ``.weights.h5`` file holds (Keras names them by class, not by the
    model's layer names, and loads a file's matching layers while ignoring any extra ones)."""
    import h5py

    with h5py.File(path, "r") as fh:
        layers = fh.get("layers")
        return sum(1 for name in layers if len(layers[name].get("vars", {})) > 0) if layers is not None else 0


def build_model(seed: Optional[int] = None):
    """The paper's CNN as an uncompiled Keras model (input (96, 96, 5) float32 in [0, 1])."""
    import keras

    layers = keras.layers
    init = (lambda i: keras.initializers.GlorotUniform(seed=None if seed is None else seed + i))
    x = inputs = keras.Input((HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS), name="heatmaps")
    for i, (filters, drop) in enumerate([(50, 0.2), (50, 0.2), (150, 0.3)]):
        x = layers.Conv2D(filters, 5, activation="relu", kernel_initializer=init(i), name=f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        x = layers.Dropout(drop, seed=seed, name=f"drop{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in range(2):
        x = layers.Dense(300, activation="tanh", kernel_initializer=init(10 + i), name=f"dense{i + 1}")(x)
        x = layers.Dropout(0.3, seed=seed, name=f"drop_dense{i + 1}")(x)
    outputs = layers.Dense(3, activation="tanh", kernel_initializer=init(20), name="ypr")(x)
    return keras.Model(inputs, outputs, name=ARCHITECTURE)


def encode_labels(ypr_deg: np.ndarray) -> np.ndarray:
    """Degrees (N, 3) -> tanh targets."""
    return (np.asarray(ypr_deg, dtype=np.float32) / LABEL_SCALE_DEG).astype(np.float32)


def decode_labels(outputs: np.ndarray, scale_deg: float = LABEL_SCALE_DEG) -> np.ndarray:
    """tanh outputs (N, 3) -> yaw, pitch, roll in degrees."""
    return np.asarray(outputs, dtype=np.float64) * scale_deg


#: Device files of an NVIDIA GPU's driver (desktop and server, Jetson, WSL 2): without one TensorFlow sees no GPU.
GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/dxg")


def tensorflow(why: str) -> Any:
    """The ``tensorflow`` module; BackendUnavailableError saying ``why`` it is needed where it is not installed (a
    CPU install with LiteRT alone runs the TFLite exports without it)."""
    try:
        import tensorflow as tf
    except ImportError:
        raise BackendUnavailableError(f"{why} needs TensorFlow, which is not installed "
                                      "(pip install tensorflow==2.19.1)") from None
    return tf


def gpu_possible(device_files: tuple[str, ...] = GPU_DEVICE_FILES) -> bool:
    """Whether TensorFlow could see a GPU here: a GPU driver's device file exists and ``CUDA_VISIBLE_DEVICES``
    does not hide every GPU. Cheap: ``device: auto`` asks TensorFlow (a 4 s, 600 MiB import) only when true."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    return any(os.path.exists(f) for f in device_files)


def select_device(device: str) -> str:
    """The TensorFlow device string for ``auto``, ``cpu`` or ``gpu``; ``gpu`` without one raises. ``cpu``, and
    ``auto`` on a machine without a GPU driver (:func:`gpu_possible`), do not import TensorFlow."""
    global _GPU_FALLBACK_LOGGED
    if device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"device must be auto, cpu or gpu, not {device!r}")
    if device == "cpu" or (device == "auto" and not gpu_possible()):
        gpus = []
    else:
        gpus = tensorflow(f"device {device!r}").config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise BackendUnavailableError(
            "device 'gpu' was asked for but TensorFlow sees no GPU (no CUDA build or driver); use 'auto' or 'cpu'")
    if device == "auto" and not gpus:
        if not _GPU_FALLBACK_LOGGED:
            LOG.info("device auto: no GPU here, the regressor runs on the CPU")
            _GPU_FALLBACK_LOGGED = True
        return "/CPU:0"
    return "/GPU:0" if gpus else "/CPU:0"


def turned_weights(yaw_deg: np.ndarray, blend_yaw_deg: tuple[float, float]) -> np.ndarray:
    """Weight (N,) in [0, 1] of the turned-face companion's angles for faces read at ``yaw_deg`` (N,) degrees:
    0 within ``blend_yaw_deg[0]`` of yaw, 1 from ``blend_yaw_deg[1]``, linear in between."""
    lo, hi = blend_yaw_deg
    yaw = np.abs(np.asarray(yaw_deg, dtype=np.float64))
    return np.clip((yaw - lo) / (hi - lo), 0.0, 1.0) if hi > lo else (yaw >= hi).astype(np.float64)


def heatmap_apparent_yaws_deg(heatmaps: np.ndarray, min_peak: float = 0.1) -> np.ndarray:
    """The apparent yaw (N,) degrees of the five keypoints at the peaks of heatmaps (N, 96, 96, 5), in the heatmap
    frame (:func:`~headpose_ros.estimator.geometry.apparent_yaws_deg`); NaN where a keypoint's peak is below
    ``min_peak`` (a keypoint not drawn)."""
    maps = np.asarray(heatmaps)
    flat = maps.reshape(maps.shape[0], -1, NUM_KEYPOINTS)
    rows, cols = np.divmod(flat.argmax(axis=1), HEATMAP_SIZE)  # (N, 5) each
    yaw = apparent_yaws_deg(np.stack([cols, rows], axis=-1).astype(np.float64))
    return np.where(np.all(flat.max(axis=1) >= min_peak, axis=1), yaw, np.nan)


class HeadPoseRegressor:
    """Loads a model and maps heatmap batches to angles, through TFLite or one compiled Keras ``tf.function``;
    with the turned-face companion that its card names (see the module's docstring) unless ``companion`` is
    False."""

    def __init__(self, model: str = "default", device: str = "auto", num_threads: int = 1, companion: bool = True):
        self.weights_path = resolve_model_path(model)
        if not self.weights_path.is_file():
            raise ModelFileError(f"weights file {self.weights_path} does not exist")
        self.card = ModelCard.load(card_path(self.weights_path))
        if self.card.architecture != ARCHITECTURE:
            raise ModelFileError(
                f"weights file {self.weights_path} is for architecture {self.card.architecture!r}, "
                f"not {ARCHITECTURE!r}")
        expected = self.card.extra.get("sha256")
        weights_sha = file_sha256(self.weights_path) if expected or model.endswith(".tflite") else None
        if expected and weights_sha != expected:
            raise ModelFileError(f"weights file {self.weights_path} does not match the sha256 in its card "
                                 f"{card_path(self.weights_path).name} (corrupted or replaced)")
        self.device = select_device(device)
        self.num_threads = int(num_threads)  # of the TFLite interpreter; Keras uses TensorFlow's own thread pools
        self.runtime = "keras"
        self._interp = None
        if model.endswith(".tflite") or (not model.endswith(".h5") and os.sep not in model
                                         and self.device == "/CPU:0"):
            self._load_tflite(forced=model.endswith(".tflite"), weights_sha=weights_sha,
                              int8=model.endswith(".int8.tflite") or (not model.endswith(".tflite") and int8_pays()))
        if self.runtime == "keras":
            self._load_keras()
        self.turned: Optional[HeadPoseRegressor] = None
        self.blend_yaw_deg: tuple[float, float] = (0.0, 0.0)
        self.blend_apparent_deg: Optional[tuple[float, float]] = None
        spec = self.card.extra.get("turned") if companion else None
        if spec:
            card = card_path(self.weights_path).name
            try:
                name = str(spec["model"])
                keys = ("blend_yaw_deg",) + (("blend_apparent_deg",) if "blend_apparent_deg" in spec else ())
                ramps = {key: tuple(float(v) for v in spec[key]) for key in keys}
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ModelFileError(f"model card {card}: bad 'turned' entry {spec!r} ({exc!r})") from None
            for key, ramp in ramps.items():
                if len(ramp) != 2 or not 0.0 <= ramp[0] <= ramp[1] <= 180.0:
                    raise ModelFileError(f"model card {card}: {key} needs 0 <= LO <= HI <= 180, not {list(ramp)}")
            self.turned = HeadPoseRegressor(name, device, num_threads, companion=False)
            if self.turned.heatmap_kind != self.heatmap_kind:
                raise ModelFileError(f"turned-face model {name} reads {self.turned.heatmap_kind!r} heatmaps, "
                                     f"{self.weights_path.name} {self.heatmap_kind!r}")
            self.blend_yaw_deg = ramps["blend_yaw_deg"]
            self.blend_apparent_deg = ramps.get("blend_apparent_deg")
        self.predict(np.zeros((1, HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS), np.float32))  # trace / allocate now

    def _load_tflite(self, forced: bool, weights_sha: Optional[str], int8: bool) -> None:
        """Use the TFLite export when it exists and was exported from these weights (else Keras, or an error when
        ``forced``)."""
        path = tflite_path(self.weights_path, int8)
        entry = self.card.extra.get("tflite_int8" if int8 else "tflite") or {}
        problem = None
        if not path.is_file():
            problem = f"{path} does not exist"
        elif entry.get("weights_sha256") != (weights_sha or self.card.extra.get("sha256")):
            problem = f"{path} was not exported from {self.weights_path.name} (see its card)"
        elif entry.get("sha256") != file_sha256(path):
            problem = f"{path} does not match the sha256 in its card (corrupted or replaced)"
        if problem:
            if forced:
                raise ModelFileError(f"TFLite model: {problem}")
            LOG.info("regressor runs on Keras: %s", problem)
            return
        self._interp = load_interpreter(path, "TFLite model", self.num_threads, error=ModelFileError)
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._interp.resize_tensor_input(self._in, [1, HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS])
        self._interp.allocate_tensors()
        self._batch = 1
        self.runtime, self.model_path = "tflite_int8" if int8 else "tflite", path

    def _load_keras(self) -> None:
        tf = tensorflow(f"the Keras runtime (weights {self.weights_path.name}, device {self.device})")

        with tf.device(self.device):
            self.model = build_model()
            try:
                self.model.load_weights(str(self.weights_path))
                stored = _stored_weighted_layers(self.weights_path)
            except Exception as exc:  # h5py and Keras raise many types for truncated or foreign files
                raise ModelFileError(
                    f"weights file {self.weights_path} cannot be loaded into the {ARCHITECTURE} model "
                    f"(corrupt, truncated or from another model): {type(exc).__name__}: {exc}") from None
        expected_layers = sum(1 for layer in self.model.layers if layer.weights)
        if stored != expected_layers:
            raise ModelFileError(f"weights file {self.weights_path} is from another model: it holds {stored} layers "
                                 f"with weights, the {ARCHITECTURE} model has {expected_layers}")
        if not all(np.all(np.isfinite(w)) for w in self.model.get_weights()):
            raise ModelFileError(f"weights file {self.weights_path} holds NaN or infinite weights")
        self._fn = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec([None, HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS], tf.float32)],
            reduce_retracing=True,
        )
        self.runtime, self.model_path = "keras", self.weights_path

    @property
    def heatmap_kind(self) -> str:
        return self.card.heatmap_kind

    def companion_rule(self) -> str:
        """How the turned-face companion is blended in, in words, for logs and reports ("none" without one)."""
        if self.turned is None:
            return "none"
        read = "{:g}-{:g} deg of this model's yaw".format(*self.blend_yaw_deg)
        if self.blend_apparent_deg is None:
            return read
        return "{:g}-{:g} deg of the heatmaps' apparent yaw (a keypoint not drawn: {})".format(
            *self.blend_apparent_deg, read)

    def predict(self, heatmaps: np.ndarray) -> np.ndarray:
        """Angles (N, 3) in degrees (yaw, pitch, roll) for heatmaps (N, 96, 96, 5) in [0, 1]; turned faces
        blended with the turned-face companion's angles where there is one."""
        batch = np.asarray(heatmaps, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS):
            expected = (HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS)
            raise ValueError(f"heatmaps must be (N, {', '.join(map(str, expected))}), not {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, 3))
        if self.turned is None:
            return self._run(batch)
        count = batch.shape[0]
        weight = np.zeros(count)
        known = np.zeros(count, bool)  # faces whose weight their heatmaps' apparent yaw gives
        if self.blend_apparent_deg is not None:
            apparent = heatmap_apparent_yaws_deg(batch)  # NaN: a keypoint not drawn
            known = np.isfinite(apparent)
            weight[known] = turned_weights(apparent[known], self.blend_apparent_deg)
        angles = np.zeros((count, 3))
        first = weight < 1.0  # faces that need this model's own angles (every one not yet weighed among them)
        if np.any(first):
            angles[first] = self._run(batch[first])
        weight[~known] = turned_weights(angles[~known, 0], self.blend_yaw_deg)
        some = weight > 0.0
        if np.any(some):
            w = weight[some, None]
            angles[some] = (1.0 - w) * angles[some] + w * self.turned.predict(batch[some])
        return angles

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """This model's own angles (N, 3) degrees for a valid, non-empty float32 batch."""
        if self._interp is not None:  # in chunks of at most TFLITE_MAX_BATCH faces: see there
            # Resizing the 8-bit (hybrid-kernel) interpreter more than once makes its destructor crash (TF 2.19):
            # it stays at batch 1 (chunks of one face never resize it) and runs the faces one by one.
            limit = 1 if self.runtime == "tflite_int8" else TFLITE_MAX_BATCH
            out = np.empty((batch.shape[0], 3), np.float32)
            for start in range(0, batch.shape[0], limit):
                chunk = batch[start:start + limit]
                if chunk.shape[0] != self._batch:
                    self._interp.resize_tensor_input(self._in, list(chunk.shape))
                    self._interp.allocate_tensors()
                    self._batch = chunk.shape[0]
                self._interp.set_tensor(self._in, np.ascontiguousarray(chunk))
                self._interp.invoke()
                out[start:start + chunk.shape[0]] = self._interp.get_tensor(self._out)
            return decode_labels(out, self.card.label_scale_deg)
        import tensorflow as tf

        with tf.device(self.device):
            out = self._fn(tf.convert_to_tensor(batch)).numpy()
        return decode_labels(out, self.card.label_scale_deg)
