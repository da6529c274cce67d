"""TF frame names and transforms of tracked heads, following REP-155 (ROS4HRI "Face and Gaze Frames").

- ``face_<id>``: child of the camera's optical frame (the image's ``header.frame_id``); origin between the
  eyes (REP-155: the sellion, "generally approximated to the mid point of line connecting the two eyes");
  x out of the face, y to the subject's left, z toward the top of the head (the scalp).
- ``gaze_<id>``: collocated with ``face_<id>`` and published as its child with a constant rotation; optical
  convention: z along the gaze (here the head's facing direction, as REP-155 asks when the gaze is not
  estimated beyond the head orientation), x to the subject's right, y down.

``<id>`` is the face's REP-155 id: ``tf_prefix`` (may be empty, e.g. ``cam1_``) followed by the face's token
(:class:`headpose_ros.ros.hri.FaceIds`: five random lowercase letters, stable while the face is tracked). The
same id names the face's topics (``/humans/faces/<id>/...``), so it must be a valid ROS name token: letters,
digits and single underscores, starting with a letter. Rotations come from
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
_PREFIX_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)?$")
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def validate_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid id prefix (empty, or a letter then letters, digits and single underscores),
    else ValueError."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix) or "__" in prefix:
        raise ValueError(f"tf_prefix may be empty or start with a letter and hold only letters, digits and "
                         f"single underscores, not {prefix!r}")
    return prefix


def is_valid_id(face_id: str) -> bool:
    """Whether ``face_id`` is a valid REP-155 id here: a ROS name token (starts with a letter; letters,
    digits, single underscores; no trailing underscore)."""
    return (isinstance(face_id, str) and bool(_ID_RE.match(face_id)) and "__" not in face_id
            and not face_id.endswith("_"))


def face_id(token: str, prefix: str = "") -> str:
    """The REP-155 face id of a face token: ``<prefix><token>``; ValueError if it is not a valid id."""
    name = f"{validate_prefix(prefix)}{token}"
    if not is_valid_id(name):
        raise ValueError(f"face id {name!r} (prefix {prefix!r}, token {token!r}) is not a valid ROS name token")
    return name


def face_frame(token: str, prefix: str = "") -> str:
    """``face_<prefix><token>``."""
    return FACE + face_id(token, prefix)


def gaze_frame(token: str, prefix: str = "") -> str:
    """``gaze_<prefix><token>``."""
    return GAZE + face_id(token, prefix)


@dataclass(frozen=True)
class FrameTransform:
    """A transform of ``child`` in ``parent``: translation (metres) and rotation quaternion (x, y, z, w)."""

    parent: str
    child: str
    translation: np.ndarray
    rotation: np.ndarray


def face_transform(camera_frame: str, token: str, pose: HeadPose, position: np.ndarray,
                   prefix: str = "") -> FrameTransform:
    """``face_<id>`` in the camera's optical frame: REP-155 face axes, origin at ``position`` (between the eyes)."""
    return FrameTransform(camera_frame, face_frame(token, prefix), np.asarray(position, dtype=np.float64).copy(),
                          geometry.quaternion_from_ypr(pose, frame="face"))


def gaze_transform(token: str, prefix: str = "") -> FrameTransform:
    """``gaze_<id>`` in ``face_<id>``: no translation, the constant face -> gaze rotation."""
    return FrameTransform(face_frame(token, prefix), gaze_frame(token, prefix), np.zeros(3),
                          geometry.quaternion_face_to_gaze())


def head_transforms(camera_frame: str, token: str, pose: HeadPose, position: np.ndarray,
                    prefix: str = "") -> list[FrameTransform]:
    """Both frames of one head, parent first."""
    return [face_transform(camera_frame, token, pose, position, prefix), gaze_transform(token, prefix)]
