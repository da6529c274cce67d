"""End to end on a real face: the public-domain astronaut portrait (NASA, bundled with scikit-image) through the
full default pipeline (default detector, keypoint source and shipped model).

Eileen Collins faces the camera almost frontally, so the pose must be near zero; her mirror image must flip
the signs of yaw and roll and keep pitch.
"""

from __future__ import annotations

import numpy as np
import pytest

from headpose_ros.estimator.regressor import resolve_model_path
from headpose_ros.estimator.types import LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE

DEFAULT_WEIGHTS = resolve_model_path("default")


def test_default_model_ships_with_the_package() -> None:
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.with_name("default.json").is_file()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="the astronaut portrait ships with scikit-image")
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR


@pytest.fixture(scope="module")
def estimator():
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    est = HeadPoseEstimator(EstimatorConfig(device="cpu"))  # the default configuration, on the CPU
    yield est
    est.close()


def only_face(estimator, image):
    result = estimator.process(image)
    assert len(result.faces) == 1, f"expected her face only, found {len(result.faces)}"
    return result.faces[0]


def test_astronaut_face_keypoints_and_pose(estimator, astronaut):
    face = only_face(estimator, astronaut)
    box = face.box
    assert 150 < box.center[0] < 300 and 60 < box.center[1] < 200 and 60 < box.width < 200
    xy, conf = face.keypoints.xy, face.keypoints.confidence
    threshold = estimator.config.keypoint_threshold
    assert conf[[NOSE, RIGHT_EYE, LEFT_EYE]].min() >= threshold
    for k in (NOSE, RIGHT_EYE, LEFT_EYE):  # the central points lie inside the detector's box
        assert box.x0 <= xy[k, 0] <= box.x1 and box.y0 <= xy[k, 1] <= box.y1, f"keypoint {k} outside the box"
    margin = 0.3 * box.width  # "ears" sit on the face outline, near the box's sides
    for k in (RIGHT_EAR, LEFT_EAR):
        assert box.x0 - margin <= xy[k, 0] <= box.x1 + margin and box.y0 - margin <= xy[k, 1] <= box.y1 + margin
    # plausible order: her right eye and ear on the image's left, nose between the eyes and below them
    assert xy[RIGHT_EAR, 0] < xy[RIGHT_EYE, 0] < xy[NOSE, 0] < xy[LEFT_EYE, 0] < xy[LEFT_EAR, 0]
    assert xy[NOSE, 1] > max(xy[RIGHT_EYE, 1], xy[LEFT_EYE, 1])
    pose = face.pose
    assert abs(pose.yaw) < 30 and abs(pose.pitch) < 30 and abs(pose.roll) < 20, pose


def test_mirror_flips_yaw_and_roll(estimator, astronaut):
    pose = only_face(estimator, astronaut).pose
    mirrored = only_face(estimator, np.ascontiguousarray(astronaut[:, ::-1])).pose
    # A mirror image negates yaw and roll and keeps pitch; allow the estimator's own asymmetry.
    tolerance = 5.0
    assert abs(mirrored.yaw + pose.yaw) < tolerance, (pose, mirrored)
    assert abs(mirrored.roll + pose.roll) < tolerance, (pose, mirrored)
    assert abs(mirrored.pitch - pose.pitch) < tolerance, (pose, mirrored)
    for a, b in ((pose.yaw, mirrored.yaw), (pose.roll, mirrored.roll)):
        if abs(a) > tolerance:  # clearly non-zero: the signs must be opposite
            assert np.sign(a) == -np.sign(b), (pose, mirrored)
