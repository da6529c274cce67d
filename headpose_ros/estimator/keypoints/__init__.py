"""Keypoint sources: five keypoints with confidences and their (96, 96, 5) heatmaps for each face box."""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

import numpy as np

from ..registry import Registry
from ..types import FaceBox, FaceKeypoints


class KeypointSource(Protocol):
    """Locates nose, eyes and ears of each face box in an 8-bit BGR image.

    ``heatmap_kind`` names how the heatmaps are made (``"rendered"``: drawn by
    :func:`headpose_ros.estimator.heatmaps.keypoints_to_heatmaps` in a keypoint-normalised frame;
    ``"openpose"``: OpenPose's own part maps over the face crop); a model is trained on one kind and the
    pipeline refuses to pair it with another. ``locate`` returns one entry per box, None where the face's
    keypoints were not found. A source may also offer ``relocate`` (same arguments and return): a second reading
    of the boxes whose first one the estimator rejected (the face mesh's ``retry_crops``).
    """

    heatmap_kind: str

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]: ...


KEYPOINT_SOURCES = Registry(
    "keypoint source",
    {
        "face_mesh": ".keypoints.face_mesh:FaceMeshKeypoints",
        "mediapipe_pose": ".keypoints.mediapipe_pose:MediaPipePoseKeypoints",
        "openpose": ".keypoints.openpose:OpenPoseKeypoints",
    },
)
