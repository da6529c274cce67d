"""Every angle and frame convention of the package lives here; nothing else converts angles.

Angles (yaw, pitch, roll) are degrees in the convention of Hopenet / FSA-Net / 6DRepNet and of the
datasets in ``shared/data``:

- yaw > 0: the face turns toward the image's left (the subject's right);
- pitch > 0: the face looks up;
- roll > 0: the face turns clockwise on screen.

As a rotation: with the camera's optical frame C (x right, y down, z forward) and the *head frame* H
(x to the subject's left, y to the chin, z to the back of the head; a frontal face is the identity)::

    R_C_H = Rx(-pitch) @ Ry(yaw) @ Rz(roll)

The REP-155 *face frame* F has x out of the face, y to the subject's left and z to the top of the head;
the *gaze frame* G is optical (z along the gaze, x to the subject's right, y down). Both have their origin
between the eyes. Quaternions are (x, y, z, w), as ROS orders them.
"""

from __future__ import annotations

import math
from typing import Optional, TypeVar

import numpy as np
from scipy.spatial.transform import Rotation

from .types import NUM_KEYPOINTS, CameraIntrinsics, HeadPose

T = TypeVar("T", float, np.ndarray)

#: Head-frame axes -> face-frame axes (REP-155): columns are F's x, y, z expressed in H.
R_HEAD_FACE = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
#: Head-frame axes -> gaze-frame axes (optical, z out of the face): a half turn about the head's y axis.
R_HEAD_GAZE = np.diag([-1.0, 1.0, -1.0])
#: Face frame -> gaze frame, a constant: the gaze frame is published as a child of the face frame.
R_FACE_GAZE = R_HEAD_FACE.T @ R_HEAD_GAZE

#: Mean adult positions of the five keypoints in the head frame, millimetres, origin between the eye
#: centres, rows in KEYPOINT_NAMES order. The eye centres are 63 mm apart (mean adult interpupillary
#: distance); the nose tip and "ears" are where the face_mesh keypoint source puts them, fitted by least
#: squares to ground-truth rotations on the development images (AFLW2000 and BIWI slices, 2,318 faces; see
#: README "How the geometry was fitted"). The "ears" are the face outline at the tragus level, about 70 mm
#: from the midline and 50 mm behind the eyes, not anthropometric tragion.
HEAD_MODEL_MM = np.array(
    [
        [0.0, 38.0, -38.0],  # nose tip
        [-31.5, 0.0, 0.0],  # right eye (subject's right = -x)
        [31.5, 0.0, 0.0],  # left eye
        [-69.0, 18.5, 53.0],  # right ear
        [69.0, 18.5, 53.0],  # left ear
    ]
)

#: Pseudo-inverse (3, 5) of :data:`HEAD_MODEL_MM` centred on its mean, for :func:`apparent_yaws_deg`.
_HEAD_MODEL_PINV = np.linalg.pinv(HEAD_MODEL_MM - HEAD_MODEL_MM.mean(axis=0))


def _rxyz(ca: "T", sa: "T", cb: "T", sb: "T", cc: "T", sc: "T") -> list[list["T"]]:
    """Rx(a) Ry(b) Rz(c) written out, from the angles' cosines and sines (floats or arrays)."""
    return [[cb * cc, -cb * sc, sb],
            [ca * sc + sa * sb * cc, ca * cc - sa * sb * sc, -sa * cb],
            [sa * sc - ca * sb * cc, sa * cc + ca * sb * sc, ca * cb]]


def rotation_from_ypr(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R_C_H (3x3) of a head pose given in degrees: Rx(-pitch) Ry(yaw) Rz(roll), written out in plain floats
    (scipy's Rotation objects cost 100-300 us per call, for every face of every frame)."""
    a, b, c = math.radians(-pitch), math.radians(yaw), math.radians(roll)
    return np.array(_rxyz(math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)))


def rotations_from_ypr(ypr: np.ndarray) -> np.ndarray:
    """Vectorised :func:`rotation_from_ypr`: (N, 3) degrees (yaw, pitch, roll) -> (N, 3, 3)."""
    ypr = np.radians(np.asarray(ypr, dtype=np.float64).reshape(-1, 3))
    abc = np.stack([-ypr[:, 1], ypr[:, 0], ypr[:, 2]])
    (ca, cb, cc), (sa, sb, sc) = np.cos(abc), np.sin(abc)
    return np.array(_rxyz(ca, sa, cb, sb, cc, sc)).transpose(2, 0, 1)


def ypr_from_rotation(r_c_h: np.ndarray) -> HeadPose:
    """The head pose (degrees) of R_C_H; yaw in [-90, 90], pitch and roll in [-180, 180]."""
    with np.errstate(all="ignore"):
        a, b, c = Rotation.from_matrix(np.asarray(r_c_h, dtype=np.float64)).as_euler("XYZ", degrees=True)
    return HeadPose(yaw=float(b), pitch=float(-a), roll=float(c))


def _hamilton(p: tuple[float, ...], q: tuple[float, ...]) -> tuple[float, float, float, float]:
    """The product p q of two quaternions (x, y, z, w): the rotation q, then p."""
    px, py, pz, pw = p
    qx, qy, qz, qw = q
    return (pw * qx + px * qw + py * qz - pz * qy, pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw, pw * qw - px * qx - py * qy - pz * qz)


#: The face frame in the head frame, as a quaternion (x, y, z, w).
Q_HEAD_FACE = tuple(float(v) for v in Rotation.from_matrix(R_HEAD_FACE).as_quat())


def quaternion_from_ypr(pose: HeadPose, frame: str = "head") -> np.ndarray:
    """Quaternion (x, y, z, w), w >= 0, of the head (``frame='head'``) or REP-155 face frame (``'face'``) in the
    camera's optical frame: R_C_H = Rx(-pitch) Ry(yaw) Rz(roll) composed as quaternions in plain floats (every
    message of every face needs one; scipy's Rotation objects took 100-300 us per call)."""
    if frame not in ("head", "face"):
        raise ValueError(f"frame must be 'head' or 'face', not {frame!r}")
    hx, hy, hz = (0.5 * math.radians(v) for v in (-pose.pitch, pose.yaw, pose.roll))
    q = _hamilton(_hamilton((math.sin(hx), 0.0, 0.0, math.cos(hx)), (0.0, math.sin(hy), 0.0, math.cos(hy))),
                  (0.0, 0.0, math.sin(hz), math.cos(hz)))
    if frame == "face":
        q = _hamilton(q, Q_HEAD_FACE)
    out = np.array(q)
    return -out if out[3] < 0 else out


def ypr_from_quaternion(q: np.ndarray, frame: str = "head") -> HeadPose:
    """Inverse of :func:`quaternion_from_ypr`."""
    r = Rotation.from_quat(np.asarray(q, dtype=np.float64)).as_matrix()
    if frame == "face":
        r = r @ R_HEAD_FACE.T
    elif frame != "head":
        raise ValueError(f"frame must be 'head' or 'face', not {frame!r}")
    return ypr_from_rotation(r)


#: The gaze frame in the face frame, as a quaternion (x, y, z, w).
Q_FACE_GAZE = tuple(float(v) for v in Rotation.from_matrix(R_FACE_GAZE).as_quat())


def quaternion_face_to_gaze() -> np.ndarray:
    """The constant quaternion (x, y, z, w) of the gaze frame in the face frame."""
    return np.array(Q_FACE_GAZE)


def facing_direction(pose: HeadPose) -> np.ndarray:
    """Unit vector out of the face (the face frame's x axis) in the camera's optical frame."""
    return rotation_from_ypr(pose.yaw, pose.pitch, pose.roll) @ np.array([0.0, 0.0, -1.0])


def slerp_quaternions(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from q0 (t = 0) to q1 (t = 1); quaternions (x, y, z, w)."""
    r0, r1 = Rotation.from_quat(q0), Rotation.from_quat(q1)
    delta = (r0.inv() * r1).as_rotvec()
    return (r0 * Rotation.from_rotvec(float(t) * delta)).as_quat()


def quaternion_angle_deg(q0: np.ndarray, q1: np.ndarray) -> float:
    """Angle in degrees of the rotation taking q0 to q1."""
    return float(np.degrees((Rotation.from_quat(q0).inv() * Rotation.from_quat(q1)).magnitude()))


def wrap_deg(angle: "float | np.ndarray") -> "float | np.ndarray":
    """Angle(s) wrapped to [-180, 180) degrees."""
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def angle_abs_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Absolute per-angle error in degrees, wrapped, for arrays of (yaw, pitch, roll)."""
    return np.abs(wrap_deg(np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)))


# --- dataset conventions -----------------------------------------------------------------------------------

def ypr_from_aflw_pose_para(pose_para: np.ndarray) -> HeadPose:
    """AFLW2000-3D ``Pose_Para[:3]`` (pitch, yaw, roll in radians) -> degrees in this package's convention."""
    pitch, yaw, roll = (math.degrees(float(v)) for v in np.asarray(pose_para).ravel()[:3])
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)


def ypr_from_biwi_rotation(m: np.ndarray) -> HeadPose:
    """BIWI ``frame_XXXXX_pose.txt`` rotation block (3x3, as stored) -> degrees in this package's convention."""
    r = np.asarray(m, dtype=np.float64)[:3, :3].T
    roll = -math.atan2(r[1, 0], r[0, 0])
    yaw = -math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    pitch = math.atan2(r[2, 1], r[2, 2])
    return HeadPose(yaw=math.degrees(yaw), pitch=math.degrees(pitch), roll=math.degrees(roll))


# --- projection and position -----------------------------------------------------------------------------

def project_points(points_c: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Pinhole projection of (N, 3) optical-frame points (any unit, z > 0) to (N, 2) pixels."""
    p = np.asarray(points_c, dtype=np.float64)
    z = np.maximum(p[..., 2], 1e-9)
    return np.stack([intrinsics.fx * p[..., 0] / z + intrinsics.cx, intrinsics.fy * p[..., 1] / z + intrinsics.cy], -1)


def unit_depth_ray(u: float, v: float, intrinsics: CameraIntrinsics) -> np.ndarray:
    """The point at depth 1 on the ray through pixel (u, v), optical frame."""
    return np.array([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy, 1.0])


def rotations_onto(directions: np.ndarray) -> np.ndarray:
    """The smallest rotations (N, 3, 3) taking the optical axis (0, 0, 1) onto each of (N, 3) directions."""
    d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    axis = np.cross(np.array([0.0, 0.0, 1.0]), d)
    sin = np.linalg.norm(axis, axis=1)
    angle = np.arctan2(sin, d[:, 2])
    rotvec = np.where(sin[:, None] > 1e-12, axis / np.maximum(sin, 1e-12)[:, None] * angle[:, None], 0.0)
    return Rotation.from_rotvec(rotvec).as_matrix().reshape(-1, 3, 3)


def ray_rotation(u: float, v: float, intrinsics: CameraIntrinsics) -> np.ndarray:
    """The smallest rotation (3x3) taking the optical axis (0, 0, 1) onto the ray through pixel (u, v)."""
    return rotations_onto(unit_depth_ray(u, v, intrinsics))[0]


def camera_pose_from_apparent(apparent: HeadPose, u: float, v: float, intrinsics: CameraIntrinsics) -> HeadPose:
    """The head's pose in the camera's optical frame, from its pose relative to the line of sight.

    A crop around a face shows the head as seen along the ray through the face, (u, v) in pixels: the
    regressor predicts that *apparent* pose. An off-axis head with camera-frame rotation R looks like a centred
    head with rotation ``ray_rotation(u, v)^T @ R``; this inverts it. At the image centre both are the same.
    """
    r_apparent = rotation_from_ypr(apparent.yaw, apparent.pitch, apparent.roll)
    return ypr_from_rotation(ray_rotation(u, v, intrinsics) @ r_apparent)


# --- in-plane rotation and batches of faces ----------------------------------------------------------------

def ypr_from_rotations(r_c_h: np.ndarray) -> np.ndarray:
    """Vectorised :func:`ypr_from_rotation`: (N, 3, 3) R_C_H -> (N, 3) degrees (yaw, pitch, roll)."""
    with np.errstate(all="ignore"):
        a = Rotation.from_matrix(np.asarray(r_c_h, dtype=np.float64).reshape(-1, 3, 3)).as_euler("XYZ", degrees=True)
    return np.stack([a[:, 1], -a[:, 0], a[:, 2]], axis=1)


def apparent_yaws_deg(xy: np.ndarray, model_mm: np.ndarray = HEAD_MODEL_MM) -> np.ndarray:
    """The yaw (N,) degrees, dataset convention, under which the rigid five-keypoint ``model_mm`` (5, 3) mm best
    explains each face's keypoints ``xy`` (N, 5, 2) image pixels (:data:`KEYPOINT_NAMES` order) under weak
    perspective: an affine camera fitted by least squares, whose first row, made unit, is the first row of the
    rotation R_camera_head, and R[0, 2] = sin(yaw) (:func:`rotation_from_ypr`). What the keypoints look like, not
    the regressor's pose: exact for keypoints placed as the model; the face mesh's follow the true yaw to about
    50 deg and stall beyond (docs/training.md, item 3)."""
    pinv = _HEAD_MODEL_PINV if model_mm is HEAD_MODEL_MM else np.linalg.pinv(model_mm - model_mm.mean(axis=0))
    x = np.asarray(xy, dtype=np.float64).reshape(-1, pinv.shape[1], 2)[..., 0]
    first = (x - x.mean(axis=1, keepdims=True)) @ pinv.T  # (N, 3): image x ~ centred model @ first
    sin = first[:, 2] / np.maximum(np.linalg.norm(first, axis=1), 1e-12)
    return np.degrees(np.arcsin(np.clip(sin, -1.0, 1.0)))


def eye_angle(right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Angle (radians, clockwise on screen) of the line from the subject's right eye to the left one; eyes are
    (..., 2) image pixels. 0 for level eyes; the face's in-plane roll as the image shows it."""
    d = np.asarray(left, dtype=np.float64) - np.asarray(right, dtype=np.float64)
    return np.arctan2(d[..., 1], d[..., 0])


def heatmap_frame_rotation_deg(to_heatmap: np.ndarray) -> np.ndarray:
    """How far (degrees, clockwise on screen) a 2x3 image-to-heatmap affine turns the image, for (..., 2, 3).

    0 for the axis-aligned frames of :func:`headpose_ros.estimator.heatmaps.heatmap_frames`; a frame drawn so
    that a face rolled by +r degrees looks level turns the image by -r.
    """
    m = np.asarray(to_heatmap, dtype=np.float64)
    return np.degrees(np.arctan2(m[..., 1, 0], m[..., 0, 0]))


def compose_line_of_sight_roll(ypr: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Poses (N, 3) degrees turned about the line of sight (the optical axis of the face's apparent view) by
    ``angle_deg`` (N,) degrees, clockwise on screen: ``R' = Rz(angle) @ R``.

    A head seen in an image turned clockwise by ``angle`` has this pose; for an upright head (yaw = pitch = 0)
    it adds ``angle`` to the roll. The pipeline uses it to turn the pose of a levelled heatmap frame (turned
    by ``heatmap_frame_rotation_deg``) back into the image: ``angle = -heatmap_frame_rotation_deg``.
    """
    ypr = np.asarray(ypr, dtype=np.float64).reshape(-1, 3)
    angle = np.broadcast_to(np.asarray(angle_deg, dtype=np.float64).reshape(-1), (len(ypr),))
    rz = Rotation.from_euler("Z", angle[:, None], degrees=True).as_matrix().reshape(-1, 3, 3)
    return ypr_from_rotations(rz @ rotations_from_ypr(ypr))


def rotation_errors_deg(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Geodesic distance (degrees, 0-180) between the rotations of (N, 3) predicted and true (yaw, pitch, roll):
    the angle of the one rotation that takes one head pose onto the other, free of the Euler angles' coupling."""
    r = np.swapaxes(rotations_from_ypr(pred), 1, 2) @ rotations_from_ypr(true)
    cos = np.clip((np.trace(r, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def camera_poses_from_apparent(ypr: np.ndarray, uv: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Vectorised :func:`camera_pose_from_apparent`: apparent poses (N, 3) degrees of faces whose reference
    pixels are ``uv`` (N, 2) -> camera-frame poses (N, 3) degrees."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    rays = np.stack([(uv[:, 0] - intrinsics.cx) / intrinsics.fx, (uv[:, 1] - intrinsics.cy) / intrinsics.fy,
                     np.ones(len(uv))], axis=1)
    return ypr_from_rotations(rotations_onto(rays) @ rotations_from_ypr(ypr))


def estimate_position(
    keypoints_xy: np.ndarray,
    weights: np.ndarray,
    pose: HeadPose,
    intrinsics: CameraIntrinsics,
    model_mm: np.ndarray = HEAD_MODEL_MM,
    min_depth_m: float = 0.05,
) -> Optional[np.ndarray]:
    """Head position (metres, optical frame, origin between the eyes) from 2D keypoints and orientation.

    Solves the pinhole equations of the weighted keypoints for the translation t of the head model
    ``model_mm`` rotated by ``pose`` (linear least squares). Returns None when fewer than two keypoints carry
    weight, the system is degenerate or the result lies behind the camera (< ``min_depth_m``).
    """
    xy = np.asarray(keypoints_xy, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64).reshape(NUM_KEYPOINTS))
    keep = (w > 0) & np.all(np.isfinite(xy), axis=1)
    if keep.sum() < 2 or not intrinsics.is_valid():
        return None
    rotated = (rotation_from_ypr(pose.yaw, pose.pitch, pose.roll) @ (model_mm / 1000.0).T).T[keep]
    with np.errstate(all="ignore"):
        xn = (xy[keep, 0] - intrinsics.cx) / intrinsics.fx
        yn = (xy[keep, 1] - intrinsics.cy) / intrinsics.fy
    if not (np.all(np.isfinite(xn)) and np.all(np.isfinite(yn))):
        return None
    ones, zeros = np.ones_like(xn), np.zeros_like(xn)
    # x_n * (P_z + t_z) = P_x + t_x  ->  t_x - x_n t_z = x_n P_z - P_x   (same for y)
    a = np.concatenate([np.stack([ones, zeros, -xn], 1), np.stack([zeros, ones, -yn], 1)])
    b = np.concatenate([xn * rotated[:, 2] - rotated[:, 0], yn * rotated[:, 2] - rotated[:, 1]])
    sw = np.sqrt(np.concatenate([w[keep], w[keep]]))
    try:
        with np.errstate(all="ignore"):
            sol, _, rank, _ = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)
    except np.linalg.LinAlgError:  # overflowing intrinsics (e.g. a centre of 1e308 px): no metric solution
        return None
    if rank < 3 or not np.all(np.isfinite(sol)) or sol[2] < min_depth_m:
        return None
    return sol
