"""MediaPipe's BlazeFace detectors (bundled in the mediapipe wheel): the CPU default.

Two models: ``short`` (faces within about 2 m, fills most of the frame) and ``full`` (the full-range model,
small and far faces, more tolerant of turned heads). ``models="both"`` (the default) runs both and merges
their boxes by non-maximum suppression, which measured best on the development sets: short-range alone finds
near faces, full-range alone misses faces that fill the frame.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..types import FaceBox

_MODEL_SELECTION = {"short": 0, "full": 1}


def non_max_suppression(boxes: Sequence[FaceBox], iou_threshold: float) -> list[FaceBox]:
    """Boxes sorted by score with every box overlapping a better one by more than ``iou_threshold`` removed."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(box.iou(k) <= iou_threshold for k in kept):
            kept.append(box)
    return kept


class MediaPipeFaceDetector:
    """BlazeFace short- and/or full-range; boxes in image pixels, scores are the detector's, in [0, 1]."""

    def __init__(self, models: str = "both", min_score: float = 0.3, nms_iou: float = 0.3):
        names = ["short", "full"] if models == "both" else [models]
        if any(n not in _MODEL_SELECTION for n in names):
            raise ConfigError(f"mediapipe detector models must be short, full or both, not {models!r}")
        if not 0.0 <= float(min_score) <= 1.0 or not 0.0 <= float(nms_iou) <= 1.0:
            raise ConfigError("mediapipe detector min_score and nms_iou must lie in [0, 1]")
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as exc:
            raise BackendUnavailableError(
                "the mediapipe face detector needs mediapipe==0.10.21 (pip install mediapipe==0.10.21)") from exc
        self.nms_iou = float(nms_iou)
        self._detectors = [
            face_detection.FaceDetection(model_selection=_MODEL_SELECTION[n], min_detection_confidence=float(min_score))
            for n in names
        ]

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in an 8-bit BGR image, best score first."""
        height, width = image_bgr.shape[:2]
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        boxes: list[FaceBox] = []
        for detector in self._detectors:
            for det in detector.process(rgb).detections or []:
                rel = det.location_data.relative_bounding_box
                x0, y0 = rel.xmin * width, rel.ymin * height
                boxes.append(FaceBox(x0, y0, x0 + rel.width * width, y0 + rel.height * height, float(det.score[0])))
        return non_max_suppression(boxes, self.nms_iou)

    def close(self) -> None:
        for detector in self._detectors:
            detector.close()
        self._detectors = []
