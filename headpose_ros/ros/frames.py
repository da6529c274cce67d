"""TF frame names and transforms of tracked heads, following REP-155 (ROS4HRI "Face and Gaze Frames").

- ``face_<id>``: child of the camera's optical frame (the image's ``header.frame_id``); origin between the
  eyes (REP-155: the sellion, approximated by the mid-point of the eyes); x out of the face, y to the
  subject's left, z toward the top of the head.
- ``gaze_<id>``: collocated with ``face_<id>`` and published as its child with a constant rotation; optical
  convention: z along the gaze (here the head's facing direction, as REP-155 asks when the gaze is not
  estimated beyond the head orientation), x to the subject's right, y down.

``<id>`` is the tracker's integer id, optionally preceded by a prefix (``tf_prefix``, e.g. ``cam1_``), so that
names stay REP-155 names (``face_cam1_3``) when several cameras run this node. Rotations come from
:mod:`headpose_ros.estimator.geometry`; positions are metres in the optical frame (or the unit-depth ray).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..estimator import geometry
from ..estimator.types import HeadPose

FACE = "face_"
GAZE = "gaze_"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]*$")


def validate_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid id prefix (letters, digits, underscores; may be empty), else ValueError."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise ValueError(f"tf_prefix may contain only letters, digits and underscores, not {prefix!r}")
    return prefix


def face_id(track_id: int, prefix: str = "") -> str:
    """The REP-155 face id of a track: ``<prefix><track_id>``."""
    return f"{validate_prefix(prefix)}{int(track_id)}"


def face_frame(track_id: int, prefix: str = "") -> str:
    """``face_<prefix><track_id>``."""
    return FACE + face_id(track_id, prefix)


def gaze_frame(track_id: int, prefix: str = "") -> str:
    """``gaze_<prefix><track_id>``."""
    return GAZE + face_id(track_id, prefix)


@dataclass(frozen=True)
class FrameTransform:
    """A transform of ``child`` in ``parent``: translation (metres) and rotation quaternion (x, y, z, w)."""

    parent: str
    child: str
    translation: np.ndarray
    rotation: np.ndarray


def face_transform(camera_frame: str, track_id: int, pose: HeadPose, position: np.ndarray,
                   prefix: str = "") -> FrameTransform:
    """``face_<id>`` in the camera's optical frame: REP-155 face axes, origin at ``position``."""
    return FrameTransform(camera_frame, face_frame(track_id, prefix), np.asarray(position, dtype=np.float64).copy(),
                          geometry.quaternion_from_ypr(pose, frame="face"))


def gaze_transform(track_id: int, prefix: str = "") -> FrameTransform:
    """``gaze_<id>`` in ``face_<id>``: no translation, the constant face -> gaze rotation."""
    return FrameTransform(face_frame(track_id, prefix), gaze_frame(track_id, prefix), np.zeros(3),
                          geometry.quaternion_face_to_gaze())


def head_transforms(camera_frame: str, track_id: int, pose: HeadPose, position: np.ndarray,
                    prefix: str = "") -> list[FrameTransform]:
    """Both frames of one head, parent first."""
    return [face_transform(camera_frame, track_id, pose, position, prefix), gaze_transform(track_id, prefix)]
