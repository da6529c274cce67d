"""Property tests of headpose_ros.estimator.geometry: round trips, frames and the dataset sign conventions.

Conventions under test (shared/data/README.md and the geometry module): yaw > 0 turns the face toward the image's
left, pitch > 0 looks up, roll > 0 is clockwise on screen; optical frame x right, y down, z forward; head frame x to
the subject's left, y to the chin, z to the back of the head; REP-155 face frame x out of the face, y to the
subject's left, z to the top of the head; the gaze frame's z is the face frame's x.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from headpose_ros.estimator import geometry as g
from headpose_ros.estimator.types import LEFT_EYE, RIGHT_EYE, CameraIntrinsics, HeadPose

# Away from the gimbal lock at |yaw| = 90 the decomposition is unique.
yaws = st.floats(-85.0, 85.0)
angles = st.floats(-179.0, 179.0)
poses = st.builds(HeadPose, yaw=yaws, pitch=angles, roll=angles)
small = st.floats(-60.0, 60.0)


def assert_angles_close(a: HeadPose, b: HeadPose, tol: float = 1e-6) -> None:
    err = g.angle_abs_error(a.as_array(), b.as_array())
    assert np.all(err < tol), (a, b)


def rot_x(deg: float) -> np.ndarray:
    return Rotation.from_euler("x", deg, degrees=True).as_matrix()


def rot_y(deg: float) -> np.ndarray:
    return Rotation.from_euler("y", deg, degrees=True).as_matrix()


def rot_z(deg: float) -> np.ndarray:
    return Rotation.from_euler("z", deg, degrees=True).as_matrix()


# --- round trips and rotation matrices -----------------------------------------------------------------------

@given(poses)
def test_ypr_rotation_round_trip(pose: HeadPose) -> None:
    r = g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll)
    assert_angles_close(g.ypr_from_rotation(r), pose)


@given(poses)
def test_rotation_is_the_documented_product(pose: HeadPose) -> None:
    expected = rot_x(-pose.pitch) @ rot_y(pose.yaw) @ rot_z(pose.roll)
    np.testing.assert_allclose(g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll), expected, atol=1e-12)


@given(poses)
def test_rotation_is_orthonormal_with_det_plus_one(pose: HeadPose) -> None:
    r = g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


@given(st.lists(st.tuples(yaws, angles, angles), min_size=1, max_size=8))
def test_vectorised_rotations_match_scalar(ypr: list[tuple[float, float, float]]) -> None:
    batch = g.rotations_from_ypr(np.array(ypr))
    assert batch.shape == (len(ypr), 3, 3)
    for r, (y, p, ro) in zip(batch, ypr):
        np.testing.assert_allclose(r, g.rotation_from_ypr(y, p, ro), atol=1e-12)


@given(poses, st.sampled_from(["head", "face"]))
def test_quaternion_round_trip(pose: HeadPose, frame: str) -> None:
    q = g.quaternion_from_ypr(pose, frame)
    assert q.shape == (4,)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-12)
    assert_angles_close(g.ypr_from_quaternion(q, frame), pose)


@given(poses)
def test_quaternion_is_xyzw_of_the_rotation(pose: HeadPose) -> None:
    q = g.quaternion_from_ypr(pose, "head")
    x, y, z, w = q
    # Rotation matrix of a unit quaternion (x, y, z, w), written out.
    m = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    np.testing.assert_allclose(m, g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll), atol=1e-12)


def test_quaternion_rejects_unknown_frame() -> None:
    with pytest.raises(ValueError, match="frame"):
        g.quaternion_from_ypr(HeadPose(0, 0, 0), "gaze")
    with pytest.raises(ValueError, match="frame"):
        g.ypr_from_quaternion(np.array([0, 0, 0, 1.0]), "camera")


def test_frontal_face_is_identity() -> None:
    np.testing.assert_allclose(g.rotation_from_ypr(0, 0, 0), np.eye(3), atol=1e-15)
    np.testing.assert_allclose(g.quaternion_from_ypr(HeadPose(0, 0, 0)), [0, 0, 0, 1], atol=1e-15)


# --- sign conventions ------------------------------------------------------------------------------------------

@given(poses)
def test_yaw_sign_turns_the_face_toward_the_image_left(pose: HeadPose) -> None:
    assume(abs(pose.yaw) > 0.5)
    facing = g.facing_direction(pose)
    assert np.sign(facing[0]) == -np.sign(pose.yaw)  # yaw > 0: facing x < 0, toward the image's left


@given(st.builds(HeadPose, yaw=small, pitch=st.floats(-85.0, 85.0), roll=angles))
def test_pitch_sign_looks_up(pose: HeadPose) -> None:
    assume(abs(pose.pitch) > 0.5)
    facing = g.facing_direction(pose)
    assert np.sign(facing[1]) == -np.sign(pose.pitch)  # pitch > 0: facing y < 0 (up on screen)


@given(st.floats(0.5, 85.0))
def test_roll_sign_lowers_the_subjects_left_eye(roll: float) -> None:
    cam = CameraIntrinsics(600.0, 600.0, 320.0, 240.0)
    eyes = (g.rotation_from_ypr(0.0, 0.0, roll) @ g.HEAD_MODEL_MM[[RIGHT_EYE, LEFT_EYE]].T).T / 1000.0
    uv = g.project_points(eyes + np.array([0.0, 0.0, 1.0]), cam)
    right, left = uv
    assert left[0] > right[0]  # the subject's left eye is on the image's right
    assert left[1] > right[1]  # roll > 0 (clockwise on screen): the left eye lies lower
    uv_neg = g.project_points((g.rotation_from_ypr(0.0, 0.0, -roll) @ g.HEAD_MODEL_MM[[RIGHT_EYE, LEFT_EYE]].T).T
                              / 1000.0 + np.array([0.0, 0.0, 1.0]), cam)
    assert uv_neg[1, 1] < uv_neg[0, 1]


def test_pure_rotations_face_where_the_readme_says() -> None:
    np.testing.assert_allclose(g.facing_direction(HeadPose(0, 0, 0)), [0, 0, -1], atol=1e-12)
    f = g.facing_direction(HeadPose(90.0, 0, 0))
    np.testing.assert_allclose(f, [-1, 0, 0], atol=1e-12)  # a profile toward the image's left
    f = g.facing_direction(HeadPose(0, 90.0, 0))
    np.testing.assert_allclose(f, [0, -1, 0], atol=1e-12)  # looking straight up


# --- REP-155 face and gaze frames --------------------------------------------------------------------------------

@given(poses)
def test_face_frame_axes(pose: HeadPose) -> None:
    r = g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll)
    face = Rotation.from_quat(g.quaternion_from_ypr(pose, "face")).as_matrix()
    np.testing.assert_allclose(face[:, 0], g.facing_direction(pose), atol=1e-9)  # x out of the face
    np.testing.assert_allclose(face[:, 1], r @ [1.0, 0.0, 0.0], atol=1e-9)  # y to the subject's left
    np.testing.assert_allclose(face[:, 2], r @ [0.0, -1.0, 0.0], atol=1e-9)  # z to the top of the head
    assert np.linalg.det(face) == pytest.approx(1.0, abs=1e-9)


def test_face_frame_of_an_upright_frontal_head() -> None:
    face = Rotation.from_quat(g.quaternion_from_ypr(HeadPose(0, 0, 0), "face")).as_matrix()
    assert face[1, 2] < 0  # z toward the top of the head: up on screen, y_optical < 0
    assert face[2, 0] < 0  # x out of the face: toward the camera
    assert face[0, 1] > 0  # y to the subject's left: the image's right


@given(poses)
def test_gaze_frame_z_is_face_frame_x(pose: HeadPose) -> None:
    face = Rotation.from_quat(g.quaternion_from_ypr(pose, "face")).as_matrix()
    gaze = face @ Rotation.from_quat(g.quaternion_face_to_gaze()).as_matrix()
    np.testing.assert_allclose(gaze[:, 2], face[:, 0], atol=1e-9)
    r = g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll)
    np.testing.assert_allclose(gaze[:, 0], r @ [-1.0, 0.0, 0.0], atol=1e-9)  # x to the subject's right
    np.testing.assert_allclose(gaze[:, 1], r @ [0.0, 1.0, 0.0], atol=1e-9)  # y toward the chin (down)
    assert np.linalg.det(gaze) == pytest.approx(1.0, abs=1e-9)


def test_frame_constants_are_rotations() -> None:
    for m in (g.R_HEAD_FACE, g.R_HEAD_GAZE, g.R_FACE_GAZE):
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-15)
        assert np.linalg.det(m) == pytest.approx(1.0)


# --- helpers on angles and quaternions ---------------------------------------------------------------------------

@given(st.floats(-1000.0, 1000.0))
def test_wrap_deg_range_and_equivalence(a: float) -> None:
    w = float(g.wrap_deg(a))
    assert -180.0 <= w < 180.0
    assert math.isclose(math.cos(math.radians(w)), math.cos(math.radians(a)), abs_tol=1e-9)
    assert math.isclose(math.sin(math.radians(w)), math.sin(math.radians(a)), abs_tol=1e-9)


def test_angle_abs_error_wraps() -> None:
    np.testing.assert_allclose(g.angle_abs_error([179.0, -170.0, 10.0], [-179.0, 170.0, 10.0]), [2.0, 20.0, 0.0])


@given(poses, poses, st.floats(0.0, 1.0))
def test_slerp_endpoints_and_angle(p0: HeadPose, p1: HeadPose, t: float) -> None:
    q0, q1 = g.quaternion_from_ypr(p0), g.quaternion_from_ypr(p1)
    total = g.quaternion_angle_deg(q0, q1)
    assert g.quaternion_angle_deg(g.slerp_quaternions(q0, q1, 0.0), q0) < 1e-6
    assert g.quaternion_angle_deg(g.slerp_quaternions(q0, q1, 1.0), q1) < 1e-6
    qt = g.slerp_quaternions(q0, q1, t)
    assert g.quaternion_angle_deg(q0, qt) == pytest.approx(t * total, abs=1e-6)


# --- dataset conventions -----------------------------------------------------------------------------------------

@given(st.floats(-89.0, 89.0), st.floats(-89.0, 89.0), st.floats(-179.0, 179.0))
def test_aflw_pose_para(pitch: float, yaw: float, roll: float) -> None:
    # scipy.io.loadmat returns Pose_Para as a (1, 7) array: pitch, yaw, roll in radians, then scale and translation.
    para = np.array([[math.radians(pitch), math.radians(yaw), math.radians(roll), 1.2, 100.0, 120.0, 0.0]])
    pose = g.ypr_from_aflw_pose_para(para)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=1e-9)


def biwi_stored_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """A BIWI ``pose.txt`` rotation block for known angles, built from the README's decomposition.

    The README reads R = M.T and roll = -atan2(R10, R00), yaw = -atan2(-R20, hypot(R21, R22)),
    pitch = atan2(R21, R22): the Z-Y-X decomposition R = Rz(-roll) Ry(-yaw) Rx(pitch).
    """
    r = rot_z(-roll) @ rot_y(-yaw) @ rot_x(pitch)
    return r.T


@given(yaws, st.floats(-85.0, 85.0), st.floats(-85.0, 85.0))
def test_biwi_rotation_inverts_the_readme_formula(yaw: float, pitch: float, roll: float) -> None:
    pose = g.ypr_from_biwi_rotation(biwi_stored_matrix(yaw, pitch, roll))
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=1e-7)


def test_biwi_rotation_reads_the_3x3_block_of_a_loaded_file() -> None:
    m = biwi_stored_matrix(20.0, -10.0, 5.0)
    loaded = np.vstack([m, [[12.0, -30.0, 900.0]]])  # np.loadtxt of pose.txt: 3 rotation rows, then the centre
    pose = g.ypr_from_biwi_rotation(loaded)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((20.0, -10.0, 5.0), abs=1e-9)


# --- projection and position -------------------------------------------------------------------------------------

intrinsics = st.builds(CameraIntrinsics, fx=st.floats(500.0, 1200.0), fy=st.floats(500.0, 1200.0),
                       cx=st.floats(200.0, 700.0), cy=st.floats(150.0, 500.0))
translations = st.tuples(st.floats(-0.4, 0.4), st.floats(-0.3, 0.3), st.floats(0.4, 2.0)).map(np.array)
head_poses = st.builds(HeadPose, yaw=st.floats(-80.0, 80.0), pitch=st.floats(-50.0, 50.0), roll=st.floats(-45.0, 45.0))


def project_head(pose: HeadPose, t: np.ndarray, cam: CameraIntrinsics) -> np.ndarray:
    points = (g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll) @ (g.HEAD_MODEL_MM / 1000.0).T).T + t
    return g.project_points(points, cam)


def test_project_points_pinhole() -> None:
    cam = CameraIntrinsics(500.0, 400.0, 320.0, 240.0)
    np.testing.assert_allclose(g.project_points(np.array([[0.1, -0.2, 2.0]]), cam), [[345.0, 200.0]])
    np.testing.assert_allclose(g.unit_depth_ray(345.0, 200.0, cam), [0.05, -0.1, 1.0])


@given(head_poses, translations, intrinsics)
def test_estimate_position_recovers_exact_translation(pose: HeadPose, t: np.ndarray, cam: CameraIntrinsics) -> None:
    xy = project_head(pose, t, cam)
    est = g.estimate_position(xy, np.ones(5), pose, cam)
    assert est is not None
    np.testing.assert_allclose(est, t, atol=1e-6)


@settings(max_examples=60)
@given(head_poses, translations, intrinsics, st.integers(0, 2**32 - 1))
def test_estimate_position_tolerates_pixel_noise(pose: HeadPose, t: np.ndarray, cam: CameraIntrinsics,
                                                 seed: int) -> None:
    xy = project_head(pose, t, cam) + np.random.default_rng(seed).normal(0.0, 0.5, (5, 2))
    est = g.estimate_position(xy, np.ones(5), pose, cam)
    assert est is not None
    # Half a pixel of noise on a face >= 15 px between the eyes: a few per cent of the depth.
    assert abs(est[2] - t[2]) < 0.08 * t[2]
    assert np.linalg.norm(est[:2] - t[:2]) < 0.03 * t[2] + 0.01


@given(head_poses, translations, intrinsics)
def test_estimate_position_ignores_zero_weight_keypoints(pose: HeadPose, t: np.ndarray,
                                                         cam: CameraIntrinsics) -> None:
    xy = project_head(pose, t, cam)
    xy[3:] += 500.0  # both ears wildly wrong, but weightless
    w = np.array([1.0, 0.7, 0.9, 0.0, 0.0])
    est = g.estimate_position(xy, w, pose, cam)
    assert est is not None
    np.testing.assert_allclose(est, t, atol=1e-6)


def test_estimate_position_needs_two_keypoints() -> None:
    cam = CameraIntrinsics(600.0, 600.0, 320.0, 240.0)
    pose = HeadPose(0.0, 0.0, 0.0)
    xy = project_head(pose, np.array([0.0, 0.0, 1.0]), cam)
    assert g.estimate_position(xy, np.array([1.0, 0, 0, 0, 0]), pose, cam) is None
    assert g.estimate_position(xy, np.zeros(5), pose, cam) is None
    nan_xy = xy.copy()
    nan_xy[1:] = np.nan
    assert g.estimate_position(nan_xy, np.ones(5), pose, cam) is None  # one finite keypoint left
    assert g.estimate_position(xy, np.array([1.0, 1.0, 0, 0, 0]), pose, cam) is not None


def test_estimate_position_rejects_bad_intrinsics_and_points_behind() -> None:
    pose = HeadPose(0.0, 0.0, 0.0)
    cam = CameraIntrinsics(600.0, 600.0, 320.0, 240.0)
    xy = project_head(pose, np.array([0.0, 0.0, 1.0]), cam)
    assert g.estimate_position(xy, np.ones(5), pose, CameraIntrinsics(0.0, 600.0, 320.0, 240.0)) is None
    assert g.estimate_position(xy, np.ones(5), pose, CameraIntrinsics(float("nan"), 600.0, 320.0, 240.0)) is None
    # A head 1 m away lies closer than a 5 m minimum depth: refused rather than returned.
    assert g.estimate_position(xy, np.ones(5), pose, cam, min_depth_m=5.0) is None
    assert g.estimate_position(xy, np.ones(5), pose, cam, min_depth_m=0.5) is not None


# --- pose relative to the line of sight ------------------------------------------------------------------

pixels = st.tuples(st.floats(-400.0, 1040.0), st.floats(-300.0, 780.0))


@given(pixels)
def test_rotation_onto_ray_maps_optical_axis_onto_the_ray(pixel: tuple[float, float]) -> None:
    cam = CameraIntrinsics(500.0, 500.0, 320.0, 240.0)
    ray = g.unit_depth_ray(*pixel, cam)
    r = g.ray_rotation(*pixel, cam)
    np.testing.assert_allclose(r @ np.array([0.0, 0.0, 1.0]), ray / np.linalg.norm(ray), atol=1e-9)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0)


@given(pixels)
def test_an_apparently_frontal_face_looks_back_along_its_ray(pixel: tuple[float, float]) -> None:
    cam = CameraIntrinsics(500.0, 500.0, 320.0, 240.0)
    pose = g.camera_pose_from_apparent(HeadPose(0.0, 0.0, 0.0), *pixel, cam)
    ray = g.unit_depth_ray(*pixel, cam)
    np.testing.assert_allclose(g.facing_direction(pose), -ray / np.linalg.norm(ray), atol=1e-7)


def test_apparent_pose_at_the_principal_point_is_the_camera_pose() -> None:
    cam = CameraIntrinsics(500.0, 500.0, 320.0, 240.0)
    pose = g.camera_pose_from_apparent(HeadPose(30.0, -10.0, 5.0), 320.0, 240.0, cam)
    assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((30.0, -10.0, 5.0))


def test_a_head_right_of_centre_facing_the_camera_has_positive_yaw() -> None:
    # It faces back toward the camera, i.e. toward the image's left: yaw > 0 by the dataset convention.
    pose = g.camera_pose_from_apparent(HeadPose(0.0, 0.0, 0.0), 570.0, 240.0,
                                       CameraIntrinsics(500.0, 500.0, 320.0, 240.0))
    assert pose.yaw == pytest.approx(np.degrees(np.arctan(250.0 / 500.0)))
    assert pose.pitch == pytest.approx(0.0, abs=1e-9)


# --- in-plane rotation (levelled heatmap frames) and batches --------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(poses, st.floats(-180.0, 180.0))
def test_turning_the_image_about_the_line_of_sight_is_composing_rz(pose, angle):
    """A centred head with pose R, seen in the image turned clockwise by `angle` about the principal point, projects
    exactly like the head with pose compose_line_of_sight_roll(R, angle)."""
    cam = CameraIntrinsics(600.0, 600.0, 320.0, 240.0)
    composed = g.compose_line_of_sight_roll(pose.as_array()[None], np.array([angle]))[0]
    centre = np.array([0.0, 0.0, 0.8])

    def project(ypr):
        pts = (g.rotation_from_ypr(*ypr) @ (g.HEAD_MODEL_MM / 1000.0).T).T + centre
        return g.project_points(pts, cam)

    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    turned = (project(pose.as_array()) - [320.0, 240.0]) @ np.array([[c, s], [-s, c]]) + [320.0, 240.0]
    np.testing.assert_allclose(project(composed), turned, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(poses, poses, st.floats(-180.0, 180.0))
def test_rotation_error_is_the_angle_between_the_two_rotations(a, b, angle):
    pa, pb = a.as_array()[None], b.as_array()[None]
    expected = (Rotation.from_matrix(g.rotation_from_ypr(*pa[0])).inv()
                * Rotation.from_matrix(g.rotation_from_ypr(*pb[0]))).magnitude()
    assert g.rotation_errors_deg(pa, pb)[0] == pytest.approx(np.degrees(expected), abs=1e-5)
    assert g.rotation_errors_deg(pa, pa)[0] == pytest.approx(0.0, abs=1e-5)
    # a pose turned about the line of sight is off by exactly the turn, whatever its Euler angles became
    turned = g.compose_line_of_sight_roll(pa, np.array([angle]))
    assert g.rotation_errors_deg(turned, pa)[0] == pytest.approx(abs(angle), abs=1e-4)


@given(st.floats(-60.0, 60.0), st.floats(-180.0, 180.0))
def test_composing_adds_roll_for_an_upright_head(roll, angle):
    composed = g.compose_line_of_sight_roll(np.array([[0.0, 0.0, roll]]), np.array([angle]))[0]
    assert abs(composed[0]) < 1e-6 and abs(composed[1]) < 1e-6
    assert abs(g.wrap_deg(composed[2] - roll - angle)) < 1e-6


@given(st.floats(-179.0, 179.0), st.floats(0.1, 10.0))
def test_heatmap_frame_rotation_reads_the_turn_of_an_affine(angle, scale):
    r = math.radians(angle)
    m = np.array([[scale * math.cos(r), -scale * math.sin(r), 5.0], [scale * math.sin(r), scale * math.cos(r), -3.0]])
    assert abs(g.wrap_deg(g.heatmap_frame_rotation_deg(m) - angle)) < 1e-9
    assert g.heatmap_frame_rotation_deg(np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])) == 0.0


@settings(max_examples=30, deadline=None)
@given(st.lists(poses, min_size=1, max_size=5), st.floats(0.0, 640.0), st.floats(0.0, 480.0))
def test_vectorised_conversions_match_the_single_ones(pose_list, u, v):
    cam = CameraIntrinsics(500.0, 520.0, 320.0, 240.0)
    ypr = np.array([p.as_array() for p in pose_list])
    uv = np.tile([u, v], (len(pose_list), 1))
    batch = g.camera_poses_from_apparent(ypr, uv, cam)
    for p, b in zip(pose_list, batch):
        assert_angles_close(g.camera_pose_from_apparent(p, u, v, cam), HeadPose(*b), 1e-6)
        assert_angles_close(g.ypr_from_rotation(g.rotation_from_ypr(*p.as_array())),
                            HeadPose(*g.ypr_from_rotations(g.rotation_from_ypr(*p.as_array())[None])[0]), 1e-9)


@given(poses, st.sampled_from(["head", "face"]))
def test_quaternion_matches_scipy_and_has_w_positive(pose: HeadPose, frame: str) -> None:
    """The plain-float composition is scipy's rotation (up to the quaternion's sign, fixed to w >= 0)."""
    r = g.rotation_from_ypr(pose.yaw, pose.pitch, pose.roll) @ (g.R_HEAD_FACE if frame == "face" else np.eye(3))
    expected = Rotation.from_matrix(r).as_quat()
    q = g.quaternion_from_ypr(pose, frame)
    assert q[3] >= 0
    np.testing.assert_allclose(q, expected if np.dot(q, expected) > 0 else -expected, atol=1e-12)
