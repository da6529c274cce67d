"""The face-quality check (estimator/quality.py): faces pass, helmets, patches, animals and textures do not.

Scenes come from :mod:`headpose_ros.tools.scenes` (public images bundled with scikit-image and matplotlib);
no development data. Seed 5 of the negative scenes was used neither to fit nor to validate the check.
"""

from __future__ import annotations

import numpy as np
import pytest

from headpose_ros.estimator.config import EstimatorConfig
from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator.quality import SCORE_CAP, quality_from

pytest.importorskip("skimage.data", reason="the scenes are made from scikit-image's bundled images")


def test_quality_falls_with_mirror_disagreement_and_rises_with_presence_and_score() -> None:
    mirrors = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    q = [quality_from(m, 0.5, 0.75) for m in mirrors]
    assert all(a > b for a, b in zip(q, q[1:]))
    assert quality_from(0.03, 0.9, 0.7) > quality_from(0.03, 0.1, 0.7)
    assert quality_from(0.03, 0.5, 0.7) > quality_from(0.03, 0.5, 0.6)
    assert all(0.0 < v < 1.0 for v in q)


def test_a_confident_detector_alone_cannot_pass_a_non_face() -> None:
    # the detector's score counts only up to SCORE_CAP: 0.8 and 1.0 give the same quality
    assert quality_from(0.1, 0.0, 1.0) == quality_from(0.1, 0.0, SCORE_CAP)
    assert quality_from(0.1, 0.0, 1.0) < 0.5  # inconsistent mesh, no presence: rejected at any score
    assert quality_from(0.01, 1.0, 0.75) > 0.9  # a consistent, present face passes


def test_a_small_face_also_needs_the_mesh_presence() -> None:
    # a blurred 40 px crop gives a mirror-consistent mean face whatever it shows: presence decides
    assert quality_from(0.01, 0.1, 0.75, width_px=120.0) > 0.9
    assert quality_from(0.01, 0.1, 0.75, width_px=40.0) < 0.5
    assert quality_from(0.01, 0.99, 0.75, width_px=40.0) > 0.9


def test_config_validates_min_face_quality() -> None:
    assert EstimatorConfig(min_face_quality=0.0).min_face_quality == 0.0
    for bad in (-0.1, 1.5, "high", True):
        with pytest.raises(ConfigError, match="min_face_quality"):
            EstimatorConfig(min_face_quality=bad)
    with pytest.raises(ConfigError, match="hidden_keypoints"):
        EstimatorConfig(hidden_keypoints="yes")


@pytest.fixture(scope="module")
def estimators():
    pytest.importorskip("mediapipe")
    pytest.importorskip("tensorflow")
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    checked = HeadPoseEstimator(EstimatorConfig())
    unchecked = HeadPoseEstimator(EstimatorConfig(min_face_quality=0.0), regressor=checked.regressor)
    yield checked, unchecked
    checked.close()
    unchecked.close()


def _patch_scene() -> np.ndarray:
    """The astronaut's mission patch alone, 60x60 px: BlazeFace calls it a face (score about 0.59)."""
    import cv2
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[320:440, 110:230, ::-1])
    return cv2.resize(img, None, fx=0.5, fy=0.5)


def test_the_mission_patch_is_no_face(estimators) -> None:
    checked, unchecked = estimators
    patch = _patch_scene()
    assert len(unchecked.process(patch).faces) == 1  # without the check: a false face with a pose
    assert checked.process(patch).faces == []


def test_real_faces_pass_the_check(estimators) -> None:
    from headpose_ros.tools import scenes

    checked, _ = estimators
    rng = np.random.default_rng(3)
    found = 0
    sources = scenes.face_sources()
    for source in sources:
        img, truth = scenes.face_scene(source, 150.0, (640, 480), rng)
        found += any(f.box.iou(truth) > 0.3 for f in checked.process(img).faces)
    assert found == len(sources)


def test_frames_without_faces_give_at_most_two_false_faces_per_hundred(estimators) -> None:
    from headpose_ros.tools import scenes

    checked, unchecked = estimators
    frames = list(scenes.negative_scenes(seed=5, size=(640, 480), per_source=2))
    false_checked = sum(len(checked.process(img).faces) for _, img in frames)
    false_unchecked = sum(len(unchecked.process(img).faces) for _, img in frames)
    assert len(frames) >= 80
    assert false_unchecked >= 6  # the detector does fire on these frames
    assert false_checked / len(frames) <= 0.02
