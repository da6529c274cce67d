"""Face detectors: ``detect(image_bgr) -> list[FaceBox]``, every face in the frame, image pixels."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..registry import Registry
from ..types import FaceBox


class FaceDetector(Protocol):
    """Finds faces in an 8-bit BGR image (H, W, 3); returns boxes in image pixels with scores in [0, 1]."""

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]: ...


DETECTORS = Registry(
    "face detector",
    {
        "mediapipe": ".detectors.mediapipe_face:MediaPipeFaceDetector",
        "dlib_cnn": ".detectors.dlib_face:DlibCnnFaceDetector",
        "dlib_hog": ".detectors.dlib_face:DlibHogFaceDetector",
        "tiled": ".detectors.tiled:TiledFaceDetector",
    },
)
