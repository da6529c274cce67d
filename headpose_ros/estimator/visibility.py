"""Which keypoints a turned head hides from the camera, and their confidence.

A face mesh places all five keypoints on every face, the ear turned away included (it extrapolates it), with
one confidence for all. Whether a keypoint is seen follows from the head's pose relative to the line of sight
(what the regressor predicts): a keypoint is seen when its outward surface normal points toward the camera.
The ears' normals point sideways and a little back (``NORMALS``, head frame: x subject's left, y chin,
z back); an ear is fully seen while the angle of its normal to the direction toward the camera is below
``SEEN_DEG`` and hidden beyond ``HIDDEN_DEG``, in between its confidence ramps down linearly. With the head
model's ear normals, yaw alone reaches those angles at 40 and 55 degrees of *predicted* yaw: the regressor
under-estimates profiles (a face mesh cannot represent them), so that the far ear of a head truly turned
more than 60 degrees gets confidence 0 (below any ``keypoint_threshold``) in 82-87 % of the development
profiles and no ear of a face turned less than 30 degrees does (README). The near ear keeps its confidence.
Nose and eyes are not hidden by yaw up to 90 degrees in this model and keep their confidence.

The regressor itself still sees all five keypoints, as the default model was trained (a face mesh places
the far ear, and the model learnt from that): dropping the far ear from its heatmaps raised the mean error
from 5.09 to 5.32 deg (AFLW2000 dev) and from 4.58 to 4.68 deg (BIWI dev). Consumers, the face's position
and its anchor use the confidences returned here.
"""

from __future__ import annotations

import numpy as np

from . import geometry
from .types import LEFT_EAR, NUM_KEYPOINTS, RIGHT_EAR, HeadPose

#: Outward normals of the two "ears" in the head frame (x subject's left, y chin, z back), unit length.
NORMALS = {RIGHT_EAR: np.array([-1.0, 0.0, 0.1]), LEFT_EAR: np.array([1.0, 0.0, 0.1])}
NORMALS = {k: v / np.linalg.norm(v) for k, v in NORMALS.items()}
#: Angle (degrees) between an ear's normal and the direction to the camera up to which it is fully seen, and
#: beyond which it is hidden. Facing the camera, an ear's normal is at 95.7 deg (it leans 5.7 deg back); a yaw
#: of 40 / 55 deg turns the far ear's to these angles.
SEEN_DEG = 95.7 + 40.0
HIDDEN_DEG = 95.7 + 55.0


def keypoint_visibilities(ypr_deg: np.ndarray) -> np.ndarray:
    """Visibility (N, 5) in [0, 1] of each keypoint of N heads with poses (N, 3) yaw, pitch, roll (degrees)
    relative to the line of sight."""
    r = geometry.rotations_from_ypr(ypr_deg)  # (N, 3, 3)
    to_camera = np.array([0.0, 0.0, -1.0])  # optical frame: the camera lies toward -z from the head
    out = np.ones((len(r), NUM_KEYPOINTS))
    for index, normal in NORMALS.items():
        cos = np.clip((r @ normal) @ to_camera, -1.0, 1.0)
        out[:, index] = np.clip((HIDDEN_DEG - np.degrees(np.arccos(cos))) / (HIDDEN_DEG - SEEN_DEG), 0.0, 1.0)
    return out


def keypoint_visibility(pose: HeadPose) -> np.ndarray:
    """Visibility (5,) in [0, 1] of each keypoint of a head with ``pose`` relative to the line of sight."""
    return keypoint_visibilities(np.array([pose.as_array()]))[0]


def visible_confidence(confidence: np.ndarray, pose: HeadPose) -> np.ndarray:
    """``confidence`` (5,) with each keypoint scaled by its visibility under ``pose`` (0 for a hidden one)."""
    return np.asarray(confidence, dtype=np.float64) * keypoint_visibility(pose)


__all__ = ["keypoint_visibility", "keypoint_visibilities", "visible_confidence", "SEEN_DEG", "HIDDEN_DEG", "NORMALS"]
