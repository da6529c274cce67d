"""Opening a ``.tflite`` model, the one way the estimator does it: TensorFlow's ``tf.lite.Interpreter``
(XNNPACK on the CPU). Used by the BlazeFace detector, the face mesh, the face-quality check and the regressor's
TFLite runtime."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .errors import BackendUnavailableError, HeadPoseError


def load_interpreter(path: "str | Path", what: str, num_threads: int = 1,
                     error: type[HeadPoseError] = BackendUnavailableError) -> Any:
    """A ``tf.lite.Interpreter`` of the model at ``path`` (tensors not yet allocated). ``what`` names the model
    in errors: BackendUnavailableError without TensorFlow, ``error`` when the file cannot be loaded."""
    try:
        from tensorflow import lite
    except ImportError as exc:
        raise BackendUnavailableError(f"the {what} needs tensorflow (pip install tensorflow==2.19.1)") from exc
    with warnings.catch_warnings():  # tf.lite.Interpreter warns of its future move to ai_edge_litert
        warnings.simplefilter("ignore")
        try:
            return lite.Interpreter(model_path=str(path), num_threads=int(num_threads))
        except (ValueError, RuntimeError) as exc:
            raise error(f"{what} {path} cannot be loaded: {exc}") from None
