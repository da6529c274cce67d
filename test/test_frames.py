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
    assert frames.face_frame(3) == "face_3"
    assert frames.gaze_frame(3) == "gaze_3"
    assert frames.face_frame(12, "cam1_") == "face_cam1_12"
    assert frames.gaze_frame(12, "cam1_") == "gaze_cam1_12"
    assert frames.face_id(5, "left") == "left5"


@pytest.mark.parametrize("prefix", ["/cam", "cam/", "a b", "é", "cam-1"])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(ValueError, match="tf_prefix"):
        frames.face_frame(1, prefix)


def test_face_transform_parent_child_and_translation():
    tf = frames.face_transform("cam_optical", 4, HeadPose(0, 0, 0), np.array([0.1, 0.2, 1.5]))
    assert (tf.parent, tf.child) == ("cam_optical", "face_4")
    np.testing.assert_allclose(tf.translation, [0.1, 0.2, 1.5])
    gaze = frames.gaze_transform(4)
    assert (gaze.parent, gaze.child) == ("face_4", "gaze_4")
    np.testing.assert_allclose(gaze.translation, 0.0)


def test_gaze_axes_are_optical_relative_to_face():
    """Gaze z = face x (the gaze follows the head), gaze x = subject's right = -face y, gaze y = down = -face z."""
    r = Rotation.from_quat(frames.gaze_transform(1).rotation).as_matrix()  # gaze axes in the face frame
    np.testing.assert_allclose(r[:, 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(r[:, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(-89, 89), st.floats(-80, 80), st.floats(-90, 90))
def test_face_x_is_the_facing_direction_and_frames_are_right_handed(yaw, pitch, roll):
    pose = HeadPose(yaw, pitch, roll)
    face, gaze = frames.head_transforms("cam", 1, pose, np.zeros(3))
    r_face = Rotation.from_quat(face.rotation).as_matrix()
    np.testing.assert_allclose(r_face[:, 0], geometry.facing_direction(pose), atol=1e-9)
    assert np.linalg.det(r_face) == pytest.approx(1.0)
    r_gaze = r_face @ Rotation.from_quat(gaze.rotation).as_matrix()
    np.testing.assert_allclose(r_gaze[:, 2], r_face[:, 0], atol=1e-9)
    assert np.linalg.det(r_gaze) == pytest.approx(1.0)
