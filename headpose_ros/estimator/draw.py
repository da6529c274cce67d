"""Drawing a :class:`FrameResult` on an 8-bit BGR image: box, five keypoints, 3D head axes, an angle label and a
one-line legend saying what the angles mean.

Used by the command line (``headpose-ros image`` / ``video``) and by the ROS node's debug image. The axes
are the REP-155 face frame (``axes="face"``: x out of the face in red, y to the subject's left in green, z to
the top of the head in blue) or the head frame (``axes="head"``: x subject's left, y chin, z back of head),
rotated by :func:`geometry.rotation_from_ypr` and projected with :func:`geometry.project_points`.

What the pose means (see :meth:`HeadPoseEstimator.process`): with calibrated intrinsics it is in the camera's
optical frame and is drawn as it is. Without them it is the pose relative to the line of sight (what the face
crop shows); for the drawing only, it is turned by the ray through the face under the guessed camera, so that
a face that looks into the camera is drawn looking into the camera wherever it is in the image. The label's
angles are always the reported ones, never the drawing's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import geometry
from .errors import ImageError
from .images import to_bgr8
from .types import KEYPOINT_NAMES, CameraIntrinsics, FaceResult, FrameResult

#: BGR colour of each keypoint, in KEYPOINT_NAMES order: nose yellow, right eye/ear orange/red (subject's
#: right), left eye/ear cyan/blue (subject's left).
KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 255),  # nose
    (0, 128, 255),  # right eye
    (255, 255, 0),  # left eye
    (0, 0, 255),  # right ear
    (255, 64, 0),  # left ear
)
#: BGR colour of the x, y, z axes (RViz: x red, y green, z blue).
AXIS_COLORS: tuple[tuple[int, int, int], ...] = ((0, 0, 255), (0, 200, 0), (255, 0, 0))
BOX_COLOR = (80, 220, 80)
#: Grey that a keypoint below threshold is faded toward, and by how much (0 = full colour, 1 = grey).
FADE_GREY = np.array([128.0, 128.0, 128.0])
FADE = 0.6
#: Length of each drawn axis, metres; a face is about FACE_WIDTH_M wide (sets the depth of an uncalibrated face).
AXIS_LENGTH_M = 0.10
FACE_WIDTH_M = 0.16
#: The legend drawn at the top left of a frame with faces: what the label's angles mean.
LEGEND_CAMERA_FRAME = "angles: camera optical frame (camera intrinsics given)"
LEGEND_LINE_OF_SIGHT = "angles: relative to each face's line of sight (no camera intrinsics)"


def faded(color: tuple[int, int, int], amount: float = FADE) -> tuple[int, int, int]:
    """``color`` blended toward grey by ``amount`` in [0, 1]."""
    mixed = (1.0 - amount) * np.asarray(color, dtype=np.float64) + amount * FADE_GREY
    return tuple(int(round(v)) for v in mixed)


def axis_endpoints(face: FaceResult, intrinsics: CameraIntrinsics, axes: str = "face",
                   length_m: float = AXIS_LENGTH_M, line_of_sight: Optional[bool] = None) -> Optional[np.ndarray]:
    """Pixels (4, 2) of the axes' origin and x, y, z tips for ``face``, or None when they cannot be drawn.

    A metric ``position`` is used as is; a unit-depth ray (uncalibrated camera) is placed at the depth at which
    a FACE_WIDTH_M wide face spans the detector's box. ``intrinsics`` must be those the estimator used (the
    given ones, or :meth:`CameraIntrinsics.guess` when none were given). ``line_of_sight``: the pose is the one
    relative to the line of sight (the estimator had no calibrated intrinsics), so it is turned by the ray
    through ``position`` before drawing; None takes ``face.position_is_ray``.
    """
    if axes not in ("face", "head"):
        raise ValueError(f"axes must be 'face' or 'head', not {axes!r}")
    pose = face.pose
    angles = np.array([pose.yaw, pose.pitch, pose.roll], dtype=np.float64)
    position = np.asarray(face.position, dtype=np.float64).reshape(-1)
    if position.shape != (3,) or not np.all(np.isfinite(angles)) or not np.all(np.isfinite(position)):
        return None
    if not intrinsics.is_valid() or position[2] <= 0:
        return None
    if face.position_is_ray:
        if face.box.width <= 1:
            return None
        depth = intrinsics.fx * FACE_WIDTH_M / face.box.width
        position = position / position[2] * depth
    rotation = geometry.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll)
    if face.position_is_ray if line_of_sight is None else line_of_sight:
        rotation = geometry.rotations_onto(position)[0] @ rotation  # as the crop shows it, seen along its ray
    if axes == "face":
        rotation = rotation @ geometry.R_HEAD_FACE
    points = np.vstack([position, position + length_m * rotation.T])  # rows: origin, x tip, y tip, z tip
    if np.any(points[:, 2] <= 1e-3):
        return None
    pixels = geometry.project_points(points, intrinsics)
    return pixels if np.all(np.isfinite(pixels)) else None


def _int_point(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(np.clip(p[0], -1e5, 1e5)))), int(round(float(np.clip(p[1], -1e5, 1e5))))


def draw_face(image: np.ndarray, face: FaceResult, intrinsics: CameraIntrinsics, *, keypoint_threshold: float = 0.3,
              axes: Optional[str] = "face", label: bool = True, line_of_sight: Optional[bool] = None) -> None:
    """Draw one face on ``image`` (8-bit BGR, modified in place); ``line_of_sight`` as in :func:`axis_endpoints`."""
    import cv2

    height, width = image.shape[:2]
    scale = max(1.0, max(height, width) / 640.0)
    thick = max(1, int(round(2 * scale)))
    box = face.box
    if all(np.isfinite([box.x0, box.y0, box.x1, box.y1])):
        cv2.rectangle(image, _int_point((box.x0, box.y0)), _int_point((box.x1, box.y1)), BOX_COLOR, thick,
                      cv2.LINE_AA)
    radius = max(3, int(round(0.04 * max(box.width, 1.0))), int(round(2 * scale)))
    kp = face.keypoints
    for i in range(len(KEYPOINT_NAMES)):
        xy = kp.xy[i]
        if not np.all(np.isfinite(xy)):
            continue
        if kp.confidence[i] >= keypoint_threshold:
            cv2.circle(image, _int_point(xy), radius, KEYPOINT_COLORS[i], -1, cv2.LINE_AA)
            cv2.circle(image, _int_point(xy), radius, (0, 0, 0), 1, cv2.LINE_AA)
        else:
            cv2.circle(image, _int_point(xy), radius, faded(KEYPOINT_COLORS[i]), max(1, thick // 2), cv2.LINE_8)
    if axes:
        tips = axis_endpoints(face, intrinsics, axes, line_of_sight=line_of_sight)
        if tips is not None:
            origin = _int_point(tips[0])
            for tip, color in zip(tips[1:], AXIS_COLORS):
                cv2.arrowedLine(image, origin, _int_point(tip), color, thick, cv2.LINE_AA, tipLength=0.15)
    if label:
        pose = face.pose
        text = f"yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f} roll {pose.roll:+.0f}"
        font_scale = 0.45 * scale
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        x = int(np.clip(box.x0 if np.isfinite(box.x0) else 0, 0, max(0, width - tw - 2)))
        y = int(box.y0) - 4 if np.isfinite(box.y0) and box.y0 - th - base - 4 >= 0 else \
            int(min(height - base - 2, (box.y1 if np.isfinite(box.y1) else 0) + th + 4))
        cv2.rectangle(image, (x, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
        cv2.putText(image, text, (x + 1, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_legend(image: np.ndarray, calibrated: bool) -> None:
    """Write at the top left of ``image`` (8-bit BGR, in place) what the angles mean: camera optical frame when
    ``calibrated`` (the estimator had camera intrinsics), else relative to each face's line of sight."""
    import cv2

    height, width = image.shape[:2]
    text = LEGEND_CAMERA_FRAME if calibrated else LEGEND_LINE_OF_SIGHT
    font_scale = 0.4 * max(1.0, max(height, width) / 640.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    cv2.rectangle(image, (0, 0), (tw + 6, th + base + 6), (0, 0, 0), -1)
    cv2.putText(image, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_result(image: np.ndarray, result: FrameResult, *, intrinsics: Optional[CameraIntrinsics] = None,
                keypoint_threshold: float = 0.3, axes: Optional[str] = "face", label: bool = True,
                copy: bool = True, legend: bool = True) -> np.ndarray:
    """``image`` annotated with every face of ``result``; returns the annotated 8-bit BGR image.

    With ``copy=True`` (default) any image :func:`to_bgr8` accepts is converted and drawn on a copy; with
    ``copy=False`` ``image`` must already be a C-contiguous (H, W, 3) uint8 array and is drawn on in place.
    ``intrinsics`` must be those given to :meth:`HeadPoseEstimator.process` (None: the estimator's guess).
    ``axes`` is ``"face"`` (REP-155), ``"head"`` or None (no axes). ``legend``: when the frame has faces, say at
    its top left what the angles mean (:func:`draw_legend`).
    """
    if copy:
        canvas = to_bgr8(image).copy()
    else:
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and image.flags.c_contiguous and image.flags.writeable):
            raise ImageError("drawing in place needs a writeable C-contiguous (H, W, 3) uint8 BGR image")
        canvas = image
    height, width = canvas.shape[:2]
    calibrated = intrinsics is not None and intrinsics.is_valid()
    cam = intrinsics if calibrated else CameraIntrinsics.guess(width, height)
    for face in result.faces:
        draw_face(canvas, face, cam, keypoint_threshold=keypoint_threshold, axes=axes, label=label,
                  line_of_sight=not calibrated)
    if legend and result.faces:
        draw_legend(canvas, calibrated)
    return canvas


__all__ = ["draw_result", "draw_face", "draw_legend", "axis_endpoints", "KEYPOINT_COLORS", "AXIS_COLORS", "faded",
           "LEGEND_CAMERA_FRAME", "LEGEND_LINE_OF_SIGHT"]
