"""The debug image: the estimator's drawing of each face (box, keypoints, REP-155 axes, angles) plus its TF name.

Drawing itself is :mod:`headpose_ros.estimator.draw` (shared with the command line); this adds the face's TF
frame name under each box, marked ``(primary)`` for the head ``/head_pose`` carries.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..estimator.draw import draw_face, draw_legend
from ..estimator.types import CameraIntrinsics, FaceResult
from . import frames

ID_COLOR = (255, 255, 255)
PRIMARY_COLOR = (40, 220, 40)


def draw_debug(image_bgr: np.ndarray, faces: Sequence[FaceResult], face_ids: Sequence[str],
               primary_face_id: Optional[str] = None, intrinsics: Optional[CameraIntrinsics] = None,
               keypoint_threshold: float = 0.3, prefix: str = "") -> np.ndarray:
    """A copy of the 8-bit BGR ``image_bgr`` with every face drawn and labelled ``face_<prefix><token>`` (its TF
    frame); ``face_ids`` are the faces' tokens (:attr:`CoreResult.face_ids
    <headpose_ros.ros.core.CoreResult.face_ids>`), ``primary_face_id`` the primary head's; ``intrinsics`` are
    those the estimator used (None: its guess from the image size)."""
    import cv2

    canvas = np.ascontiguousarray(image_bgr, dtype=np.uint8).copy()
    height, width = canvas.shape[:2]
    calibrated = intrinsics is not None and intrinsics.is_valid()
    cam = intrinsics if calibrated else CameraIntrinsics.guess(width, height)
    scale = max(1.0, max(height, width) / 640.0)
    if faces:  # no face, no drawing: the frame goes out as it came
        draw_legend(canvas, calibrated)
    for face, token in zip(faces, face_ids):
        draw_face(canvas, face, cam, keypoint_threshold=keypoint_threshold, line_of_sight=not calibrated)
        primary = token == primary_face_id
        text = frames.face_frame(token, prefix) + (" (primary)" if primary else "")
        box = face.box
        if not np.all(np.isfinite([box.x0, box.y1])):
            continue
        (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, 1)
        x = int(np.clip(box.x0, 0, max(0, width - 1)))
        y = int(np.clip(box.y1 + th + 4, th, max(th, height - base - 1)))
        cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale,
                    PRIMARY_COLOR if primary else ID_COLOR, 1, cv2.LINE_AA)
    return canvas
