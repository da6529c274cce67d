"""TF naming and the REP-155 face and gaze axes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from headpose_ros.estimator import geometry
from headpose_ros.estimator.types import HeadPose
from headpose_ros.ros import frames


def test_names_follow_rep155_with_an_id_prefix():
    assert frames.face_frame("abcde") == "face_abcde"
    assert frames.gaze_frame("abcde") == "gaze_abcde"
    assert frames.face_frame("xyzzy", "cam1_") == "face_cam1_xyzzy"
    assert frames.gaze_frame("xyzzy", "cam1_") == "gaze_cam1_xyzzy"
    assert frames.face_id("qwert", "left") == "leftqwert"


@pytest.mark.parametrize("prefix", ["/cam", "cam/", "a b", "é", "cam-1", "1cam", "_cam", "cam__", "cam__1"])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(ValueError, match="tf_prefix"):
        frames.face_frame("abcde", prefix)


@pytest.mark.parametrize("token", ["3", "1abc", "", "ab-c", "ab__c", "abc_", 7])
def test_ids_that_are_not_ros_name_tokens_are_refused(token):
    """A topic name token may not start with a digit (the old integer ids): /humans/faces/3/roi is invalid."""
    with pytest.raises(ValueError, match="valid ROS name token"):
        frames.face_frame(token)


def test_face_transform_parent_child_and_translation():
    tf = frames.face_transform("cam_optical", "abcde", HeadPose(0, 0, 0), np.array([0.1, 0.2, 1.5]))
    assert (tf.parent, tf.child) == ("cam_optical", "face_abcde")
    np.testing.assert_allclose(tf.translation, [0.1, 0.2, 1.5])
    gaze = frames.gaze_transform("abcde")
    assert (gaze.parent, gaze.child) == ("face_abcde", "gaze_abcde")
    np.testing.assert_allclose(gaze.translation, 0.0)


def test_gaze_axes_are_optical_relative_to_face():
    """Gaze z = face x (the gaze follows the head), gaze x = subject's right = -face y, gaze y = down = -face z."""
    r = Rotation.from_quat(frames.gaze_transform("abcde").rotation).as_matrix()  # gaze axes in the face frame
    np.testing.assert_allclose(r[:, 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(r[:, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(-89, 89), st.floats(-80, 80), st.floats(-90, 90))
def test_face_x_is_the_facing_direction_and_frames_are_right_handed(yaw, pitch, roll):
    pose = HeadPose(yaw, pitch, roll)
    face, gaze = frames.head_transforms("cam", "abcde", pose, np.zeros(3))
    r_face = Rotation.from_quat(face.rotation).as_matrix()
    np.testing.assert_allclose(r_face[:, 0], geometry.facing_direction(pose), atol=1e-9)
    assert np.linalg.det(r_face) == pytest.approx(1.0)
    r_gaze = r_face @ Rotation.from_quat(gaze.rotation).as_matrix()
    np.testing.assert_allclose(r_gaze[:, 2], r_face[:, 0], atol=1e-9)
    assert np.linalg.det(r_gaze) == pytest.approx(1.0)


# --- REP-155 "Face and Gaze Frames", each sentence against the frames of an upright head facing the camera ---
# Optical frame of the camera (the image's frame): x to the image right, y down, z forward (into the scene).
# A head facing the camera, upright: its face points to optical -z, its scalp to optical -y (image up), the
# subject's left is the image right (+x), the subject's right the image left (-x).
FRONTAL = HeadPose(0.0, 0.0, 0.0)


def _frontal_axes():
    face, gaze = frames.head_transforms("cam_optical", "abcde", FRONTAL, np.array([0.02, -0.01, 1.3]))
    r_face = Rotation.from_quat(face.rotation).as_matrix()
    return face, gaze, r_face, r_face @ Rotation.from_quat(gaze.rotation).as_matrix()


def test_rep155_face_frame_is_named_face_id_and_parented_to_the_sensor_frame():
    """'publish the head 6D pose as a TF frame named face_<faceID>' - 'the parent of this frame is the sensor
    frame used to estimate the face pose'."""
    face, gaze, _, _ = _frontal_axes()
    assert face.child == "face_abcde" and face.parent == "cam_optical"


def test_rep155_face_origin_is_the_position_given_between_the_eyes():
    """'The origin of the frame must be the sellion ... approximated to the mid point of line connecting the two
    eyes': the translation is the head position, which the estimator computes between the eyes."""
    face, gaze, _, _ = _frontal_axes()
    np.testing.assert_allclose(face.translation, [0.02, -0.01, 1.3])


def test_rep155_face_x_points_out_of_the_face():
    """'The x axis is expected to point forward (ie, out of the face)': toward the camera for a frontal head."""
    _, _, r_face, _ = _frontal_axes()
    np.testing.assert_allclose(r_face[:, 0], [0, 0, -1], atol=1e-12)


def test_rep155_face_z_points_toward_the_scalp():
    """'the z axis is expected to point toward the scalp (ie, up when the person is standing vertically)'."""
    _, _, r_face, _ = _frontal_axes()
    np.testing.assert_allclose(r_face[:, 2], [0, -1, 0], atol=1e-12)  # image up
    np.testing.assert_allclose(r_face[:, 1], [1, 0, 0], atol=1e-12)  # y: the subject's left (REP-103)


def test_rep155_gaze_frame_is_collocated_with_the_face_frame():
    """'a gaze_<faceID> frame, collocated with the face_<faceID> frame'."""
    face, gaze, _, _ = _frontal_axes()
    assert gaze.child == "gaze_abcde" and gaze.parent == face.child
    np.testing.assert_allclose(gaze.translation, 0.0)


def test_rep155_gaze_z_along_the_gaze_x_right_y_down():
    """'its z axis aligned with the estimated gaze vector, x right, and y down ('optical frame' convention)';
    'If gaze is not estimated beyond general head orientation, the gaze_<faceID>'s z axis will be colinear with
    the face_<faceID>'s x axis'. Right and down as the subject sees them: for a frontal head, the subject's
    right is the image left."""
    _, _, r_face, r_gaze = _frontal_axes()
    np.testing.assert_allclose(r_gaze[:, 2], r_face[:, 0], atol=1e-12)  # along the face's x: toward the camera
    np.testing.assert_allclose(r_gaze[:, 0], [-1, 0, 0], atol=1e-12)  # subject's right: image left
    np.testing.assert_allclose(r_gaze[:, 1], [0, 1, 0], atol=1e-12)  # down: image down for an upright head
