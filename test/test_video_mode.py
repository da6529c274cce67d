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


def _rolled_astronaut_frame(angle: float) -> np.ndarray:
    """The shipped astronaut portrait turned ``angle`` deg clockwise, pasted on the right half of a 640x480 frame."""
    import cv2
    from pathlib import Path

    img = cv2.imread(str(Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"))
    face = cv2.resize(img[20:320, 70:370], (240, 240))
    turned = cv2.warpAffine(face, cv2.getRotationMatrix2D((120, 120), -angle, 1.0), (240, 240),
                            borderValue=(128, 128, 128))
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[120:360, 360:600] = turned
    return frame


def test_stream_search_covers_every_quarter_turn_in_three_steps():
    from headpose_ros.estimator.detectors.mediapipe_face import MediaPipeFaceDetector

    # the full-range model alone in the turned passes: only the half turn sees the face (the short-range model,
    # also in them by default, reads it at a quarter turn too, with its keypoints a quarter off)
    detector = MediaPipeFaceDetector(turn_models="full")
    frame = _rolled_astronaut_frame(180.0)  # upside down: the upright models do not see it
    default = MediaPipeFaceDetector()
    try:
        assert detector.detect(frame), "the full search finds the face"
        found = [bool(detector.detect_stream(frame, step)) for step in range(3)]
        assert found == [False, True, False], found  # step 1 searches the half turn
        assert found == [bool(detector.detect_stream(frame, step)) for step in range(3, 6)]  # it cycles
        assert default.detect_stream(frame, 1) and not default.detect_stream(frame, 0)
        upright_only = MediaPipeFaceDetector(turns=1)
        plain = _frames(1, 1)[0]
        assert [b.score for b in upright_only.detect_stream(plain, 0)] == [b.score for b in upright_only.detect(plain)]
    finally:
        detector.close()
        default.close()


def test_periodic_detection_searches_in_steps_and_trusts_followed_faces(estimator, monkeypatch):
    frames = _frames(1, 6)
    estimator.video.reset()
    calls, checked = [], []
    detector = estimator.detector
    monkeypatch.setattr(detector, "detect", lambda img, _d=detector.detect: calls.append("full") or _d(img))
    monkeypatch.setattr(detector, "detect_stream",
                        lambda img, step, _s=detector.detect_stream: calls.append(step) or _s(img, step))
    estimator.process(frames[0])  # single image: builds the quality check
    monkeypatch.setattr(estimator.quality, "assess",
                        lambda img, faces, scores, unsure=None, _a=estimator.quality.assess:
                        checked.append(len(faces)) or _a(img, faces, scores, unsure))
    calls.clear(), checked.clear()
    for i in range(16):  # redetect_every = 5: a full detection, then periodic ones at frames 5, 10, 15
        result = estimator.process(frames[i % 6], video=True)
        assert len(result.faces) == 1
    assert calls == ["full", 0, 1, 2]
    assert checked == [1]  # only the first detection checks the face; the followed face is trusted after
    estimator.process(_rolled_astronaut_frame(180.0), video=True)  # the followed face is gone: a full search
    assert calls[-1] == "full" and estimator.video.last_mode == "detect"
    for _ in range(2):  # no face in view: a detector without detect_idle searches every such frame in full
        estimator.process(np.full_like(frames[0], 120), video=True)
        assert calls[-1] == "full" and estimator.video.idle()
    assert calls[-3:] == ["full"] * 3
