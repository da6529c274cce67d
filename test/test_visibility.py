"""Hidden keypoints (estimator/visibility.py): the far ear of a turned head falls below keypoint_threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headpose_ros.estimator.types import LEFT_EAR, RIGHT_EAR, HeadPose
from headpose_ros.estimator.visibility import keypoint_visibility, visible_confidence


@pytest.mark.parametrize("yaw", [0.0, 15.0, -30.0, 35.0])
def test_a_face_up_to_35_degrees_shows_all_five(yaw: float) -> None:
    assert np.all(keypoint_visibility(HeadPose(yaw, 0.0, 0.0)) == 1.0)


@pytest.mark.parametrize("yaw, hidden, seen", [
    (56.0, RIGHT_EAR, LEFT_EAR), (80.0, RIGHT_EAR, LEFT_EAR),
    (-60.0, LEFT_EAR, RIGHT_EAR), (-90.0, LEFT_EAR, RIGHT_EAR),
])
def test_beyond_55_degrees_of_predicted_yaw_the_far_ear_is_hidden(yaw: float, hidden: int, seen: int) -> None:
    # yaw > 0 turns the face toward the image's left (the subject's right): the right ear turns away
    conf = visible_confidence(np.full(5, 0.9), HeadPose(yaw, 0.0, 0.0))
    assert conf[hidden] < 0.3
    assert conf[seen] == pytest.approx(0.9)
    assert np.all(np.delete(conf, [RIGHT_EAR, LEFT_EAR]) == pytest.approx(0.9))


@settings(deadline=None)  # no time limit: a loaded shared CPU once took 286 ms for one example (first call)
@given(st.floats(0.0, 90.0), st.floats(0.0, 90.0), st.floats(-30.0, 30.0), st.floats(-60.0, 60.0))
def test_the_far_ear_fades_monotonically_with_yaw(a: float, b: float, pitch: float, roll: float) -> None:
    lo, hi = sorted((a, b))
    assert keypoint_visibility(HeadPose(hi, pitch, roll))[RIGHT_EAR] <= \
        keypoint_visibility(HeadPose(lo, pitch, roll))[RIGHT_EAR] + 1e-9
    mirrored = keypoint_visibility(HeadPose(-hi, pitch, -roll))
    assert mirrored[LEFT_EAR] == pytest.approx(keypoint_visibility(HeadPose(hi, pitch, roll))[RIGHT_EAR], abs=1e-6)


class _FixedRegressor:
    """Stands in for the CNN: predicts one pose for every face (a profile-like head)."""

    heatmap_kind = "rendered"

    def __init__(self, ypr: tuple[float, float, float]):
        from pathlib import Path

        self.ypr = np.array(ypr, dtype=np.float32)
        self.weights_path, self.device = Path("fixed.weights.h5"), "cpu"

    def predict(self, maps: np.ndarray) -> np.ndarray:
        return np.repeat(self.ypr[None], len(maps), axis=0)


@pytest.mark.parametrize("mirrored", [False, True])
def test_the_pipeline_reports_the_far_ear_below_threshold(mirrored: bool) -> None:
    pytest.importorskip("mediapipe")
    skimage_data = pytest.importorskip("skimage.data")
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    img = np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])
    if mirrored:
        img = np.ascontiguousarray(img[:, ::-1])
    yaw = -70.0 if mirrored else 70.0
    results = {}
    for hidden in (True, False):
        est = HeadPoseEstimator(EstimatorConfig(hidden_keypoints=hidden), regressor=_FixedRegressor((yaw, 0, 0)))
        results[hidden] = est.process(img).faces[0]
        est.close()
    far, near = (LEFT_EAR, RIGHT_EAR) if mirrored else (RIGHT_EAR, LEFT_EAR)
    conf = results[True].keypoints.confidence
    assert conf[far] < 0.3 <= conf[near]
    assert results[False].keypoints.confidence[far] >= 0.7  # the mesh alone scores every keypoint alike
