"""Video mode (`process(..., video=True)`): faces followed by the face mesh, the detector only when needed."""

from __future__ import annotations

import numpy as np
import pytest

from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator.types import FaceBox
from headpose_ros.estimator.video import VideoState, box_of, relation

pytest.importorskip("mediapipe", reason="video mode follows faces with the face mesh")


@pytest.fixture(scope="module")
def estimator():
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    est = HeadPoseEstimator(EstimatorConfig(device="cpu"), video_redetect_every=5)
    yield est
    est.close()


def _frames(n_faces: int, count: int = 6):
    from headpose_ros.tools.bench import make_frames

    return make_frames(n_faces, count, seed=3)


@pytest.mark.parametrize("n_faces", [1, 4])
def test_video_mode_follows_faces_and_agrees_with_single_images(estimator, n_faces):
    frames = _frames(n_faces)
    estimator.video.reset()
    modes = []
    for frame in frames:
        video = estimator.process(frame, video=True)
        modes.append(estimator.video.last_mode)
        single = estimator.process(frame)
        assert len(video.faces) == len(single.faces) == n_faces
        for face in single.faces:  # each face found alone is found in video mode, with nearly the same pose
            near = min(video.faces, key=lambda f: np.hypot(*(np.subtract(f.box.center, face.box.center))))
            assert np.hypot(*np.subtract(near.box.center, face.box.center)) < 0.25 * face.box.width
            assert near.box.iou(face.box) > 0.6  # the detector's box habits are kept while following
            assert np.all(np.abs(near.pose.as_array() - face.pose.as_array()) < 6.0), (near.pose, face.pose)
    assert modes[0] == "detect" and modes[1:5] == ["track"] * 4 and modes[5] == "detect"  # redetect_every = 5
    tracked = estimator.process(frames[1], video=True)
    assert tracked.stages_ms["detect"] == 0.0


def test_a_lost_face_runs_the_detector_on_the_same_frame(estimator):
    frames = _frames(1, 2)
    estimator.video.reset()
    estimator.process(frames[0], video=True)
    empty = np.full_like(frames[0], 120)
    result = estimator.process(empty, video=True)  # the face is gone: the mesh loses it, the detector finds none
    assert estimator.video.last_mode == "detect" and result.faces == [] and estimator.video.landmarks == []
    estimator.process(frames[1], video=True)
    assert estimator.video.last_mode == "detect" and len(estimator.video.landmarks) == 1


def test_single_images_do_not_touch_the_video_state(estimator):
    frames = _frames(1, 2)
    estimator.video.reset()
    estimator.process(frames[0])
    assert estimator.video.last_mode is None and estimator.video.landmarks == []


def test_video_state_validates_and_boxes_clip():
    with pytest.raises(ConfigError):
        VideoState(redetect_every=0)
    with pytest.raises(ConfigError):
        VideoState(min_presence=1.5)
    box = box_of(np.array([[-5.0, 10.0], [50.0, 700.0]]), 0.9, 640, 480)
    assert (box.x0, box.y0, box.x1, box.y1, box.score) == (0.0, 10.0, 50.0, 480.0, 0.9)
    mesh = np.array([[100.0, 100.0], [200.0, 220.0]])
    detector_box = FaceBox(90.0, 60.0, 230.0, 230.0, 0.8)
    again = box_of(mesh + 7.0, 0.8, 640, 480, relation(mesh, detector_box))  # the mesh moved by 7 px
    np.testing.assert_allclose([again.x0, again.y0, again.x1, again.y1], [97.0, 67.0, 237.0, 237.0])
