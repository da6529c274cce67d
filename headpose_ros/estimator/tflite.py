"""Opening a ``.tflite`` model, the one way the estimator does it (XNNPACK on the CPU). Used by the BlazeFace
detector, the face mesh, the face-quality check and the regressor's TFLite runtime.

The interpreter comes from LiteRT (``ai-edge-litert``, Google's TFLite runtime without TensorFlow) where it is
installed, else from TensorFlow (``tf.lite.Interpreter``): the same kernels and the same results, but a process
that runs the estimator on the CPU then never imports TensorFlow (measured on the development machine: 0.1 s and
about 40 MiB to import LiteRT against 4.1 s and 660 MiB for TensorFlow; docs/speed.md). The environment variable
``HEADPOSE_TFLITE`` (``litert`` or ``tensorflow``) picks one; unset, LiteRT when importable.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, ConfigError, HeadPoseError

#: Environment variable naming the TFLite interpreter's package: ``litert`` or ``tensorflow``.
RUNTIME_ENV = "HEADPOSE_TFLITE"
RUNTIMES = ("litert", "tensorflow")


def interpreter_class() -> tuple[Any, str]:
    """The interpreter class and the name of the runtime it comes from (``litert`` or ``tensorflow``)."""
    wanted = os.environ.get(RUNTIME_ENV, "").strip().lower()
    if wanted and wanted not in RUNTIMES:
        raise ConfigError(f"{RUNTIME_ENV} must be one of {', '.join(RUNTIMES)}, not {wanted!r}")
    if wanted in ("", "litert"):
        try:
            from ai_edge_litert.interpreter import Interpreter
            return Interpreter, "litert"
        except ImportError:
            if wanted == "litert":
                raise BackendUnavailableError(
                    f"{RUNTIME_ENV}=litert but ai-edge-litert is not installed (pip install ai-edge-litert==2.3.0)"
                ) from None
    try:
        from tensorflow import lite
    except ImportError as exc:
        raise BackendUnavailableError(
            "running a .tflite model needs ai-edge-litert or tensorflow (pip install ai-edge-litert==2.3.0)") from exc
    return lite.Interpreter, "tensorflow"


def load_interpreter(path: "str | Path", what: str, num_threads: int = 1,
                     error: type[HeadPoseError] = BackendUnavailableError) -> Any:
    """An interpreter of the model at ``path`` (tensors not yet allocated). ``what`` names the model in errors:
    BackendUnavailableError without a runtime, ``error`` when the file cannot be loaded."""
    interpreter, _ = interpreter_class()
    with warnings.catch_warnings():  # tf.lite.Interpreter warns of its future move to ai_edge_litert
        warnings.simplefilter("ignore")
        try:
            return interpreter(model_path=str(path), num_threads=int(num_threads))
        except (ValueError, RuntimeError) as exc:
            raise error(f"{what} {path} cannot be loaded: {exc}") from None
