"""Turned faces' ears moved toward the detector's ear tragions (face_mesh ``tragion_ears``), the keypoints' apparent
yaw that decides it (``geometry.apparent_yaws_deg``) and the detector's keypoints followed with the mesh in video
mode (``VideoState.followed_keypoints``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator import geometry
from headpose_ros.estimator.types import LEFT_EAR, NOSE, RIGHT_EAR, FaceBox
from headpose_ros.estimator.video import VideoState, moved

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _similarity(points: np.ndarray, turn_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(np.radians(turn_deg)), np.sin(np.radians(turn_deg))
    return scale * points @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


@settings(deadline=None, max_examples=50)
@given(st.floats(-180, 180), st.floats(0.2, 5.0), st.floats(-500, 500), st.floats(-500, 500), st.integers(0, 10**6))
def test_moved_follows_any_similarity_exactly(turn: float, scale: float, dx: float, dy: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    before, points = rng.uniform(0, 400, (30, 2)), rng.uniform(-100, 500, (6, 2))
    after = _similarity(before, turn, scale, (dx, dy))
    np.testing.assert_allclose(moved(points, before, after), _similarity(points, turn, scale, (dx, dy)), atol=1e-6)


def test_moved_is_the_least_squares_fit_when_the_mesh_also_changes_shape() -> None:
    rng = np.random.default_rng(1)
    before = rng.uniform(0, 100, (40, 2))
    after = _similarity(before, 20.0, 1.5, (10, -5)) + rng.normal(0, 2.0, before.shape)
    got = moved(before, before, after)
    residual = np.sum((got - after) ** 2)
    for nudge in ([1.0, 0.0], [0.0, 1.0]):  # any other similarity fits worse (a shift, or a bit more scale)
        assert residual < np.sum((got + nudge - after) ** 2)
    assert residual < np.sum((moved(before, before, after * 1.0) * 1.01 - after) ** 2)


def test_video_state_moves_the_detectors_keypoints_with_the_mesh() -> None:
    rng = np.random.default_rng(2)
    mesh = rng.uniform(100, 200, (468, 2))
    kps = rng.uniform(100, 200, (6, 2))
    state = VideoState()
    state.detected([mesh, mesh + 300], [FaceBox(100, 100, 200, 200, 0.9, keypoints=kps), FaceBox(400, 400, 500, 500)])
    first = state.followed_keypoints()
    np.testing.assert_allclose(first[0], kps, atol=1e-9)
    assert first[1] is None  # that box had no detector keypoints
    state.tracked([_similarity(mesh, 30.0, 1.2, (5, 7)), mesh + 310])
    np.testing.assert_allclose(state.followed_keypoints()[0], _similarity(kps, 30.0, 1.2, (5, 7)), atol=1e-6)
    state.reset()
    assert state.followed_keypoints() == []


@settings(deadline=None, max_examples=60)
@given(st.floats(-88, 88), st.floats(-60, 60), st.floats(-45, 45), st.floats(0.1, 10.0), st.floats(-900, 900))
def test_apparent_yaw_is_exact_for_keypoints_placed_as_the_model(yaw: float, pitch: float, roll: float, scale: float,
                                                                 shift: float) -> None:
    r = geometry.rotations_from_ypr(np.array([[yaw, pitch, roll]]))[0]
    xy = scale * (geometry.HEAD_MODEL_MM @ r.T)[:, :2] + shift
    assert geometry.apparent_yaws_deg(xy[None])[0] == pytest.approx(yaw, abs=1e-6)
    mirrored = xy[[0, 2, 1, 4, 3]] * [-1.0, 1.0]  # the face seen in a mirror: left and right swap
    assert geometry.apparent_yaws_deg(mirrored[None])[0] == pytest.approx(-yaw, abs=1e-6)


def _mesh_face(yaw: float) -> np.ndarray:
    """A (1, 468, 2) mesh whose five keypoint landmarks sit where ``geometry.HEAD_MODEL_MM`` turned by ``yaw`` deg
    projects them (2 px per mm), with forehead and chin 90 mm apart."""
    from headpose_ros.estimator.keypoints.face_mesh import CHIN, FOREHEAD, LANDMARKS

    r = geometry.rotations_from_ypr(np.array([[yaw, 0.0, 0.0]]))[0]
    where = 2.0 * (geometry.HEAD_MODEL_MM @ r.T)[:, :2] + 200.0
    points = np.full((1, 468, 2), 200.0)
    for idx, xy in zip(LANDMARKS, where):
        points[0, list(idx)] = xy
    points[0, FOREHEAD], points[0, CHIN] = (200, 110), (200, 290)
    return points


@pytest.fixture(scope="module")
def source():
    pytest.importorskip("mediapipe")
    from headpose_ros.estimator.keypoints.face_mesh import FaceMeshKeypoints

    src = FaceMeshKeypoints(nose_raise=0.0, ear_raise=0.0)  # the keypoints exactly where the mesh puts them
    yield src
    src.mesh_model.close()


TRAGIONS = np.array([[140, 190], [260, 190], [200, 250], [200, 280], [60, 240], [340, 240]], dtype=float)


@pytest.mark.parametrize("yaw, weight", [(0.0, 0.0), (-19.9, 0.0), (27.5, 0.25), (-27.5, 0.25), (35.0, 0.5),
                                         (-70.0, 0.5)])
def test_a_turned_faces_ears_move_toward_the_tragions_by_the_ramp(source, yaw: float, weight: float) -> None:
    points, presence = _mesh_face(yaw), np.array([1.0])
    plain = source.keypoints_from_mesh(points, presence)[0]
    face = source.keypoints_from_mesh(points, presence, [TRAGIONS])[0]
    ears = plain.keypoints.xy[[RIGHT_EAR, LEFT_EAR]]
    np.testing.assert_allclose(face.keypoints.xy[[RIGHT_EAR, LEFT_EAR]], ears + weight * (TRAGIONS[4:6] - ears),
                               atol=1e-9)
    np.testing.assert_array_equal(face.keypoints.xy[:RIGHT_EAR], plain.keypoints.xy[:RIGHT_EAR])
    np.testing.assert_array_equal(face.keypoints.confidence, plain.keypoints.confidence)
    # the heatmaps are drawn from the moved ears, in the frame they carry: each channel peaks at its keypoint
    hm = face.to_heatmap[:, :2] @ face.keypoints.xy.T + face.to_heatmap[:, 2:]
    for k in (NOSE, RIGHT_EAR, LEFT_EAR):
        peak = np.unravel_index(np.argmax(face.heatmaps[..., k]), face.heatmaps.shape[:2])
        assert np.hypot(peak[1] + 0.5 - hm[0, k], peak[0] + 0.5 - hm[1, k]) <= 1.0
    assert np.array_equal(face.heatmaps, plain.heatmaps) == (weight == 0.0)


def test_ears_stay_without_the_detectors_tragions_or_when_turned_off(source) -> None:
    from headpose_ros.estimator.keypoints.face_mesh import FaceMeshKeypoints

    points, presence = np.repeat(_mesh_face(60.0), 3, axis=0), np.ones(3)
    missing = TRAGIONS.copy()
    missing[5] = np.nan
    plain = source.keypoints_from_mesh(points, presence)
    faces = source.keypoints_from_mesh(points, presence, [None, missing, TRAGIONS])
    for k in (0, 1):  # no detector keypoints (dlib, tiles), or a missing tragion
        np.testing.assert_array_equal(faces[k].keypoints.xy, plain[k].keypoints.xy)
    assert not np.allclose(faces[2].keypoints.xy, plain[2].keypoints.xy)
    off = FaceMeshKeypoints(tragion_ears=[], nose_raise=0.0, ear_raise=0.0)
    try:
        np.testing.assert_array_equal(off.keypoints_from_mesh(points, presence, [TRAGIONS] * 3)[2].keypoints.xy,
                                      plain[2].keypoints.xy)
    finally:
        off.mesh_model.close()
    for bad in ([20, 35], [35, 20, 0.5], [20, 35, 1.5], [-1, 35, 0.5], [20, 95, 0.5], "x", [20, "a", 0.5]):
        with pytest.raises(ConfigError, match="tragion_ears"):
            FaceMeshKeypoints(tragion_ears=bad)


def _estimator(**face_mesh):
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    return HeadPoseEstimator(EstimatorConfig(device="cpu", detector="mediapipe", keypoint_options=face_mesh),
                             video_redetect_every=3)


def _frame() -> np.ndarray:
    import cv2

    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[90:390, 170:470] = cv2.resize(cv2.imread(str(ASTRONAUT)), (300, 300))
    return frame


@pytest.mark.parametrize("video", [False, True])
def test_the_pipeline_gives_the_face_mesh_the_detectors_tragions_on_every_frame(video: bool) -> None:
    pytest.importorskip("mediapipe")
    frame = _frame()
    always, off = _estimator(tragion_ears=[0, 0, 0.5]), _estimator(tragion_ears=[])  # any face: half-way
    tragions = None
    try:
        for n in range(4):  # video: detect, track, track, detect
            face, base = always.process(frame, video=video).faces[0], off.process(frame, video=video).faces[0]
            assert always.video.last_mode == (("detect" if n % 3 == 0 else "track") if video else None)
            ears = [RIGHT_EAR, LEFT_EAR]
            np.testing.assert_allclose(face.keypoints.xy[:RIGHT_EAR], base.keypoints.xy[:RIGHT_EAR])
            if not video or n % 3 == 0:  # the detector's own tragions: exactly half-way
                np.testing.assert_allclose(face.keypoints.xy[ears],
                                           0.5 * (base.keypoints.xy[ears] + face.box.keypoints[4:6]), atol=1e-6)
            else:  # tracked: the tragions of the detection, moved with the mesh (a still frame: where they were)
                assert face.box.keypoints is None
                np.testing.assert_allclose(face.keypoints.xy[ears], 0.5 * (base.keypoints.xy[ears] + tragions),
                                           atol=0.5)
            tragions = face.box.keypoints[4:6] if face.box.keypoints is not None else tragions
            assert not np.allclose(face.heatmaps, base.heatmaps)
    finally:
        always.close()
        off.close()


def test_the_quality_check_sees_the_meshs_own_ears(source) -> None:
    from headpose_ros.estimator.quality import profile_of, profile_of_face

    points, presence = _mesh_face(40.0), np.array([1.0])
    plain = source.keypoints_from_mesh(points, presence)[0]
    face = source.keypoints_from_mesh(points, presence, [TRAGIONS])[0]
    assert profile_of(face.keypoints.xy) != pytest.approx(profile_of(plain.keypoints.xy), abs=0.01)
    assert profile_of_face(face) == pytest.approx(profile_of(plain.keypoints.xy), abs=1e-12)
    face.landmarks = None  # a source without a mesh: its own keypoints
    assert profile_of_face(face) == profile_of(face.keypoints.xy)
