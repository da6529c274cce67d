"""dlib's face detectors: the MMOD CNN (``dlib_cnn``, the original paper's detector) and HOG (``dlib_hog``).

Both take an 8-bit BGR image and return :class:`FaceBox` es in image pixels (x1, y1 exclusive: dlib's inclusive
``right()`` / ``bottom()`` plus one). dlib's boxes are tight: they run from the eyebrows to the chin (measured on
60 AFLW2000 development images, the MMOD box is 1.02 x 1.03 the extent of the 68 ground-truth landmarks); the
mediapipe detector's boxes are about as large (MMOD / mediapipe side ratio: median 0.95 on AFLW2000, 1.04 on BIWI
crops) but sit about 6 % of their height lower. The heatmaps do not care (their frame is set by the keypoints);
keypoint sources that crop around the box must leave a margin.

Scores. dlib reports a detection margin, not a probability: the MMOD CNN's ``confidence`` and the HOG detector's
``run()`` score are both ``w . x - threshold``, positive above dlib's own decision threshold. They are mapped to
[0, 1] by a logistic, ``score = 1 / (1 + exp(-margin / scale))``, so that

- dlib's own threshold (margin 0) maps to 0.5, the estimator's default ``min_face_score``;
- the scale is set so that a typical clear face maps to about 0.95: the median margin of the best detection on
  60 AFLW2000 development images (every 5th) was MMOD 1.06 (BIWI crops 1.01; 10th-90th percentile 1.02-1.10) and
  HOG 1.3 (10th percentile 0.24-0.49), hence scales MMOD 0.35 and HOG 0.45.

The MMOD network only ever returns detections above its threshold (its Python binding has no threshold
argument), so its scores are always > 0.5 and a ``min_face_score`` below 0.5 lets nothing more through. The HOG
detector is run with ``adjust_threshold`` set to the margin of its ``min_score`` option (default 0.5, dlib's own
threshold), so a lower ``min_score`` returns weaker candidates too; they are mostly false positives.

CUDA. dlib runs the CNN on the GPU when it was built with CUDA (``dlib.DLIB_USE_CUDA``; the ``dlib-bin`` wheel
is CPU-only); which one is used is logged at INFO when the detector is created.

Upsampling (measured on the project's shared 2-core machine on 640x480 frames): the CNN takes 1.0-1.5 s without
upsampling and 5-7.6 s with one step, so its ``upsample`` defaults to 0; it then finds faces from about 70 pixels
wide (one step: from about 40). HOG takes 17 ms (upsample 0) or 70 ms (1); it defaults to 0 as well: on the development
images both settings found the same faces, and one step added false positives (on the astronaut portrait, a
patch of the space suit scores 0.56), while faces below about 60 pixels need ``upsample=1``.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import BackendUnavailableError, ConfigError, ModelFileError
from ..types import FaceBox

LOG = logging.getLogger(__name__)

#: Logistic scales (margin units) mapping dlib's detection margins to [0, 1]; see the module docstring.
MMOD_SCORE_SCALE = 0.35
HOG_SCORE_SCALE = 0.45
MMOD_FILE = "mmod_human_face_detector.dat"
#: Images whose shorter side, after upsampling, is below this many pixels hold no face dlib could find (the MMOD
#: network's window is 40 px); the CNN raises on images under about 10 px, so they are answered without it.
MIN_SIDE_PX = 32
_INSTALL_DLIB = "pip install dlib-bin (a prebuilt dlib wheel; or build dlib from source, with CUDA for the GPU)"


def margin_to_score(margin: float, scale: float) -> float:
    """A dlib detection margin (0 = dlib's threshold) mapped to [0, 1] by a logistic of ``margin / scale``."""
    z = float(margin) / float(scale)
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def score_to_margin(score: float, scale: float) -> float:
    """Inverse of :func:`margin_to_score` for ``score`` in (0, 1)."""
    s = min(max(float(score), 1e-6), 1.0 - 1e-6)
    return float(scale) * math.log(s / (1.0 - s))


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise BackendUnavailableError(f"the dlib face detectors need the dlib Python package: {_INSTALL_DLIB}") from exc
    return dlib


def mmod_model_path() -> Path:
    """``mmod_human_face_detector.dat`` of the installed ``face_recognition_models`` package.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``, which setuptools >= 82 no
    longer provides.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            f"the dlib_cnn detector needs {MMOD_FILE} from the face_recognition_models package: "
            "pip install face_recognition_models (or pass the file as the detector option model_path)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MMOD_FILE
    if not path.is_file():
        raise BackendUnavailableError(
            f"face_recognition_models is installed but {path} is missing: reinstall it "
            "(pip install --force-reinstall face_recognition_models) or pass model_path")
    return path


def _check_upsample(upsample: Any) -> int:
    if isinstance(upsample, bool) or not isinstance(upsample, (int, np.integer)) or not 0 <= int(upsample) <= 4:
        raise ConfigError(f"dlib detector upsample must be an integer in [0, 4], not {upsample!r}")
    return int(upsample)


def _to_rgb(image_bgr: np.ndarray) -> np.ndarray:
    """dlib takes RGB (or grey) uint8, C-contiguous."""
    if image_bgr.ndim == 3 and image_bgr.shape[2] == 1:
        image_bgr = image_bgr[:, :, 0]
    if image_bgr.ndim == 2:
        return np.ascontiguousarray(image_bgr, dtype=np.uint8)
    return np.ascontiguousarray(image_bgr[:, :, 2::-1], dtype=np.uint8)


def _box(rect: Any, score: float) -> FaceBox:
    return FaceBox(float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1), score)


class DlibCnnFaceDetector:
    """dlib's MMOD CNN face detector; scores are the logistic of its confidence (module docstring)."""

    def __init__(self, upsample: int = 0, model_path: Optional[str] = None):
        self.upsample = _check_upsample(upsample)
        dlib = _import_dlib()
        path = Path(model_path).expanduser() if model_path else mmod_model_path()
        if not path.is_file():
            raise BackendUnavailableError(f"the dlib_cnn detector's model file {path} does not exist")
        try:
            self._net = dlib.cnn_face_detection_model_v1(str(path))
        except RuntimeError as exc:  # dlib's deserialisation error
            raise ModelFileError(f"{path} is not a dlib MMOD detector file: {exc}") from exc
        self.model_path = path
        self.uses_cuda = bool(getattr(dlib, "DLIB_USE_CUDA", False))
        LOG.info("dlib_cnn face detector (%s, upsample %d) runs on %s", path.name, self.upsample,
                 "the GPU (dlib built with CUDA)" if self.uses_cuda else "the CPU (dlib built without CUDA)")

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in an 8-bit BGR image, image pixels, best score first."""
        if min(image_bgr.shape[:2]) * 2**self.upsample < MIN_SIDE_PX:
            return []
        dets = self._net(_to_rgb(image_bgr), self.upsample)
        boxes = [_box(d.rect, margin_to_score(d.confidence, MMOD_SCORE_SCALE)) for d in dets]
        return sorted(boxes, key=lambda b: b.score, reverse=True)


class DlibHogFaceDetector:
    """dlib's HOG + linear SVM frontal face detector; scores are the logistic of its ``run()`` margins.

    ``min_score`` (in (0, 1)) sets how weak a candidate it still returns: dlib's own threshold is 0.5.
    """

    def __init__(self, upsample: int = 0, min_score: float = 0.5):
        self.upsample = _check_upsample(upsample)
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0.0 < float(min_score) < 1.0:
            raise ConfigError(f"dlib_hog min_score must be a number in (0, 1), not {min_score!r}")
        self.min_score = float(min_score)
        self._adjust = score_to_margin(self.min_score, HOG_SCORE_SCALE)
        self._detector = _import_dlib().get_frontal_face_detector()

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in an 8-bit BGR image, image pixels, best score first."""
        rects, margins, _ = self._detector.run(_to_rgb(image_bgr), self.upsample, self._adjust)
        boxes = [_box(r, margin_to_score(m, HOG_SCORE_SCALE)) for r, m in zip(rects, margins)]
        return sorted(boxes, key=lambda b: b.score, reverse=True)
