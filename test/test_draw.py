"""Annotation drawing: box, keypoints (faded below threshold), 3D axes in the right directions, label."""

from __future__ import annotations

import numpy as np
import pytest

from headpose_ros.estimator import geometry
from headpose_ros.estimator.draw import KEYPOINT_COLORS, axis_endpoints, draw_result, faded
from headpose_ros.estimator.errors import ImageError
from headpose_ros.estimator.types import CameraIntrinsics, FaceBox, FaceResult, FrameResult, HeadPose, Keypoints

W, H = 640, 480
CAM = CameraIntrinsics.guess(W, H)


def make_face(yaw=0.0, pitch=0.0, roll=0.0, confidence=(0.9, 0.9, 0.9, 0.9, 0.9), metric=False) -> FaceResult:
    box = FaceBox(270, 190, 370, 290, 0.95)
    xy = np.array([[320, 255], [300, 225], [340, 225], [272, 240], [368, 240]], float)
    if metric:
        position = np.array([0.0, 0.0, 0.8])
    else:
        position = geometry.unit_depth_ray(320.0, 225.0, CAM)
    return FaceResult(box, Keypoints(xy, np.array(confidence)), HeadPose(yaw, pitch, roll), position, not metric)


def frame(*faces) -> FrameResult:
    return FrameResult(list(faces), (W, H), {})


def test_copy_leaves_input_alone_and_draws():
    image = np.full((H, W, 3), 60, np.uint8)
    before = image.copy()
    out = draw_result(image, frame(make_face()))
    np.testing.assert_array_equal(image, before)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    changed = np.any(out != before, axis=2)
    assert changed[190:291, 270:371].any()  # the box and keypoints
    assert not changed[400:, :200].any()  # far from the face nothing changes
    np.testing.assert_array_equal(draw_result(image, frame()), before)  # no face: an unchanged copy


def test_in_place():
    image = np.full((H, W, 3), 60, np.uint8)
    out = draw_result(image, frame(make_face()), copy=False)
    assert out is image and np.any(image != 60)
    for bad in (np.zeros((H, W), np.uint8), np.zeros((H, W, 3), np.float32), np.zeros((H, W, 3), np.uint8)[:, ::2]):
        with pytest.raises(ImageError):
            draw_result(bad, frame(make_face()), copy=False)


@pytest.mark.parametrize("image", [np.zeros((H, W), np.uint8), np.zeros((H, W, 3), np.uint16),
                                   np.zeros((H, W, 4), np.uint8), np.zeros((H, W, 3), np.float32)])
def test_any_input_with_copy(image):
    out = draw_result(image, frame(make_face()))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8 and out.any()


def test_keypoint_colours_and_fading():
    image = np.zeros((H, W, 3), np.uint8)
    face = make_face(confidence=(0.9, 0.9, 0.1, 0.9, 0.9))  # left eye below threshold
    out = draw_result(image, frame(face), axes=None, label=False, keypoint_threshold=0.3)
    nose, right_eye, left_eye = (320, 255), (300, 225), (340, 225)
    assert tuple(int(v) for v in out[nose[1], nose[0]]) == KEYPOINT_COLORS[0]
    assert tuple(int(v) for v in out[right_eye[1], right_eye[0]]) == KEYPOINT_COLORS[1]
    assert tuple(int(v) for v in out[left_eye[1], left_eye[0]]) == (0, 0, 0)  # a hollow ring, not a dot
    ring = out[left_eye[1] - 8:left_eye[1] + 9, left_eye[0] - 8:left_eye[0] + 9].reshape(-1, 3)
    colours = {tuple(int(v) for v in px) for px in ring}
    assert faded(KEYPOINT_COLORS[2]) in colours and KEYPOINT_COLORS[2] not in colours


def test_axis_directions_face_frame():
    """REP-155 face axes: x out of the face, y to the subject's left, z to the top of the head."""
    o, x, y, z = axis_endpoints(make_face(), CAM, "face")
    assert abs(x[0] - o[0]) < 3 and abs(x[1] - o[1]) < 3  # frontal: x points at the camera (perspective)
    assert y[0] > o[0] + 10 and abs(y[1] - o[1]) < 1  # subject's left is the image's right
    assert z[1] < o[1] - 10 and abs(z[0] - o[0]) < 1  # top of the head is up
    o, x, _, _ = axis_endpoints(make_face(yaw=30), CAM, "face")
    assert x[0] < o[0] - 10  # yaw > 0: the face turns to the image's left
    o, x, _, _ = axis_endpoints(make_face(pitch=20), CAM, "face")
    assert x[1] < o[1] - 10  # pitch > 0: looks up
    o, _, y, _ = axis_endpoints(make_face(roll=20), CAM, "face")
    assert y[1] > o[1] + 5  # roll > 0: clockwise on screen, the subject's left side goes down


def test_axis_directions_head_frame():
    o, x, y, z = axis_endpoints(make_face(), CAM, "head")
    assert x[0] > o[0] + 10  # subject's left
    assert y[1] > o[1] + 10  # chin: down
    assert abs(z[0] - o[0]) < 3 and abs(z[1] - o[1]) < 3  # back of the head: away from the camera
    with pytest.raises(ValueError):
        axis_endpoints(make_face(), CAM, "gaze")


def test_axes_anchor_and_scale():
    ray = axis_endpoints(make_face(), CAM, "face")
    np.testing.assert_allclose(ray[0], [320.0, 225.0], atol=1e-6)  # origin on the point between the eyes
    length = np.linalg.norm(ray[2] - ray[0])
    assert 0.4 * 100 < length < 1.0 * 100  # about 2/3 of the 100 px box: an uncalibrated face at a plausible depth
    metric = axis_endpoints(make_face(metric=True), CAM, "face")
    np.testing.assert_allclose(metric[0], [CAM.cx, CAM.cy], atol=1e-6)
    assert np.linalg.norm(metric[2] - metric[0]) == pytest.approx(CAM.fx * 0.1 / 0.8, rel=1e-6)


def test_degenerate_faces_do_not_crash():
    image = np.zeros((H, W, 3), np.uint8)
    nan_pose = make_face(yaw=float("nan"))
    assert axis_endpoints(nan_pose, CAM) is None
    behind = make_face(metric=True)
    behind.position = np.array([0.0, 0.0, -1.0])
    assert axis_endpoints(behind, CAM) is None
    outside = FaceResult(FaceBox(-500, -500, -400, -400, 0.5), Keypoints(np.full((5, 2), -450.0), np.ones(5)),
                         HeadPose(0, 0, 0), np.array([0.0, 0.0, 1.0]), True)
    zero = FaceResult(FaceBox(10, 10, 10, 10, 0.5), Keypoints(np.full((5, 2), np.nan), np.zeros(5)),
                      HeadPose(0, 0, 0), np.array([np.nan, 0, 1.0]), True)
    edge = FaceResult(FaceBox(600, 0, 640, 30, 0.5), Keypoints(np.full((5, 2), 620.0), np.ones(5)),
                      HeadPose(80, -70, 170), geometry.unit_depth_ray(620, 15, CAM), True)
    out = draw_result(image, frame(nan_pose, behind, outside, zero, edge))
    assert out.shape == image.shape


def test_label_text_present():
    image = np.zeros((H, W, 3), np.uint8)
    with_label = draw_result(image, frame(make_face()), axes=None)
    without = draw_result(image, frame(make_face()), axes=None, label=False)
    assert np.any(with_label[150:190] != without[150:190])  # the label sits above the box


def test_uncalibrated_pose_is_drawn_as_seen_along_its_ray():
    """Without intrinsics the pose is relative to the line of sight: a frontal face looks into the camera wherever
    it is in the image; a calibrated (camera-frame) frontal pose off-centre is drawn looking along the optical
    axis, which from there is seen turned away."""
    corner = geometry.unit_depth_ray(80.0, 60.0, CAM)
    face = FaceResult(FaceBox(30, 10, 130, 110, 0.9), Keypoints(np.full((5, 2), 80.0), np.ones(5)),
                      HeadPose(0.0, 0.0, 0.0), corner, True)
    o, x, y, z = axis_endpoints(face, CAM, "face")
    assert np.linalg.norm(x - o) < 1e-6  # x out of the face points back along the ray: at the viewer
    assert y[0] > o[0] + 10 and z[1] < o[1] - 10  # subject's left to the right, top of the head up
    o_cam, x_cam, _, _ = axis_endpoints(face, CAM, "face", line_of_sight=False)
    np.testing.assert_allclose(o_cam, o, atol=1e-6)
    assert np.linalg.norm(x_cam - o_cam) > 5  # the same angles read as camera-frame angles: turned away
    from headpose_ros.estimator.draw import FACE_WIDTH_M

    same_depth = corner * CAM.fx * FACE_WIDTH_M / face.box.width  # where the drawing places the uncalibrated face
    metric = FaceResult(face.box, face.keypoints, face.pose, same_depth, False)
    np.testing.assert_allclose(axis_endpoints(metric, CAM, "face")[1], x_cam, atol=1e-6)  # default: the flag


def test_legend_says_what_the_angles_mean():
    from headpose_ros.estimator.draw import LEGEND_CAMERA_FRAME, LEGEND_LINE_OF_SIGHT

    image = np.zeros((H, W, 3), np.uint8)
    uncalibrated = draw_result(image, frame(make_face()))
    calibrated = draw_result(image, frame(make_face(metric=True)), intrinsics=CAM)
    no_legend = draw_result(image, frame(make_face()), legend=False)
    assert uncalibrated[:20, :300].any() and not no_legend[:20, :300].any()
    assert np.any(uncalibrated[:20, :300] != calibrated[:20, :300])  # two different texts
    assert "line of sight" in LEGEND_LINE_OF_SIGHT and "camera" in LEGEND_CAMERA_FRAME
    assert not draw_result(image, frame()).any()  # no face, no legend
