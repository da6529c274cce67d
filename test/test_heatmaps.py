"""Tests of headpose_ros.estimator.heatmaps: the one function that turns keypoints into the regressor's input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from headpose_ros.estimator import heatmaps as hm
from headpose_ros.estimator.types import HEATMAP_SIZE, LEFT_EYE, NUM_KEYPOINTS, RIGHT_EYE, Keypoints

THRESHOLD = 0.3
#: A frontal face's five keypoints (nose, right eye, left eye, right ear, left ear) in image pixels.
FRONTAL = np.array([[100.0, 120.0], [80.0, 100.0], [120.0, 100.0], [55.0, 110.0], [145.0, 110.0]])


def face_like(draw_offset: np.ndarray, scale: float, angle_deg: float, jitter: np.ndarray) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    rot = np.array([[c, -s], [s, c]])
    base = (FRONTAL - FRONTAL.mean(0) + jitter) * scale
    return base @ rot.T + draw_offset


faces = st.builds(
    face_like,
    st.tuples(st.floats(-500, 1500), st.floats(-500, 1500)).map(np.array),
    st.floats(0.3, 8.0),
    st.floats(-60, 60),
    st.lists(st.floats(-8, 8), min_size=10, max_size=10).map(lambda v: np.array(v).reshape(5, 2)),
)
confidences = st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5).map(np.array)


def peak_positions(maps: np.ndarray) -> np.ndarray:
    """(5, 2) heatmap coordinates (corner convention) of each channel's maximum pixel."""
    flat = maps.reshape(-1, NUM_KEYPOINTS)
    idx = flat.argmax(0)
    return np.stack([idx % HEATMAP_SIZE + 0.5, idx // HEATMAP_SIZE + 0.5], axis=1)


@given(faces, confidences)
def test_peaks_sit_on_the_keypoints_with_confidence_as_amplitude(xy: np.ndarray, conf: np.ndarray) -> None:
    maps, frames = hm.keypoints_to_heatmaps(xy[None], conf[None], THRESHOLD)
    assert maps.shape == (1, HEATMAP_SIZE, HEATMAP_SIZE, NUM_KEYPOINTS) and maps.dtype == np.float32
    assert frames.shape == (1, 2, 3)
    xy_hm = hm.apply_frames(frames, xy[None])[0]
    for k in range(NUM_KEYPOINTS):
        channel = maps[0, :, :, k]
        if conf[k] < THRESHOLD:
            assert not channel.any()  # a missing keypoint leaves its channel empty
            continue
        x, y = xy_hm[k]
        assert 0.2 * HEATMAP_SIZE - 1e-6 <= x <= 0.8 * HEATMAP_SIZE + 1e-6  # visible keypoints span the middle 60 %
        assert 0.2 * HEATMAP_SIZE - 1e-6 <= y <= 0.8 * HEATMAP_SIZE + 1e-6
        assert np.all(np.abs(peak_positions(maps[0])[k] - (x, y)) <= 0.5 + 1e-6)
        # The sampled maximum is the confidence, less at most half a pixel of Gaussian fall-off on each axis.
        falloff = math.exp(-0.5 * (0.5**2 + 0.5**2) / hm.SIGMA**2)
        assert conf[k] * falloff - 1e-6 <= channel.max() <= conf[k] + 1e-6


def test_amplitude_equals_confidence_at_a_pixel_centre() -> None:
    xy_hm = np.array([[48.5, 60.5], [38.5, 40.5], [58.5, 40.5], [20.5, 45.5], [76.5, 45.5]])
    conf = np.array([1.0, 0.8, 0.55, 0.31, 0.0])
    maps = hm.render_heatmaps(xy_hm[None], conf[None], THRESHOLD)[0]
    np.testing.assert_allclose(maps.reshape(-1, 5).max(0), [1.0, 0.8, 0.55, 0.31, 0.0], atol=1e-6)
    assert maps[60, 48, 0] == pytest.approx(1.0)
    assert maps[40, 38, 1] == pytest.approx(0.8)
    assert np.all(maps >= 0) and np.all(maps <= 1)


def test_confidence_below_threshold_empties_only_that_channel() -> None:
    conf = np.array([0.9, 0.9, 0.9, 0.29, 0.9])
    maps, _ = hm.keypoints_to_heatmaps(FRONTAL[None], conf[None], THRESHOLD)
    assert not maps[0, :, :, 3].any()
    assert all(maps[0, :, :, k].max() > 0.8 for k in (0, 1, 2, 4))


def test_visible_keypoints_span_the_documented_fraction() -> None:
    conf = np.ones(5)
    _, frames = hm.keypoints_to_heatmaps(FRONTAL[None], conf[None], THRESHOLD)
    xy_hm = hm.apply_frames(frames, FRONTAL[None])[0]
    lo, hi = xy_hm.min(0), xy_hm.max(0)
    assert max(hi - lo) == pytest.approx(hm.SPAN * HEATMAP_SIZE)
    np.testing.assert_allclose(0.5 * (lo + hi), [HEATMAP_SIZE / 2] * 2)


def test_missing_keypoints_do_not_shape_the_frame() -> None:
    conf = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    far = FRONTAL.copy()
    far[3:] = [[-4000.0, 9000.0], [7000.0, -3000.0]]  # meaningless positions of missing ears
    _, f_near = hm.keypoints_to_heatmaps(FRONTAL[None], conf[None], THRESHOLD)
    maps_far, f_far = hm.keypoints_to_heatmaps(far[None], conf[None], THRESHOLD)
    np.testing.assert_allclose(f_near, f_far)
    assert not maps_far[0, :, :, 3:].any()


@settings(max_examples=60)
@given(faces, confidences, st.floats(0.2, 5.0), st.tuples(st.floats(-2000, 2000), st.floats(-2000, 2000)))
def test_frame_is_invariant_to_translation_and_scale(
        xy: np.ndarray, conf: np.ndarray, scale: float, shift: tuple[float, float]) -> None:
    vis = conf >= THRESHOLD
    extent = np.ptp(xy[vis] if vis.any() else xy, axis=0).max()
    # Below MIN_EXTENT_PX the frame's scale is clamped on purpose (one visible point: clamped alike in both).
    assume(vis.sum() == 1 or min(extent, extent * scale) >= 1.01 * hm.MIN_EXTENT_PX)
    moved = xy * scale + np.array(shift)
    a, _ = hm.keypoints_to_heatmaps(xy[None], conf[None], THRESHOLD)
    b, _ = hm.keypoints_to_heatmaps(moved[None], conf[None], THRESHOLD)
    np.testing.assert_allclose(a, b, atol=2e-4)


@given(faces, st.floats(-80.0, 80.0))
def test_roll_is_preserved(xy: np.ndarray, angle: float) -> None:
    conf = np.ones(5)
    centre = xy.mean(0)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rolled = (xy - centre) @ np.array([[c, -s], [s, c]]).T + centre
    _, frames = hm.keypoints_to_heatmaps(rolled[None], conf[None], THRESHOLD)
    xy_hm = hm.apply_frames(frames, rolled[None])[0]
    eye_img = rolled[LEFT_EYE] - rolled[RIGHT_EYE]
    eye_hm = xy_hm[LEFT_EYE] - xy_hm[RIGHT_EYE]
    # An axis-aligned, isotropic frame: the eye line keeps its direction on the heatmap.
    assert math.atan2(eye_hm[1], eye_hm[0]) == pytest.approx(math.atan2(eye_img[1], eye_img[0]), abs=1e-9)
    np.testing.assert_allclose(frames[0, :, :2], frames[0, 0, 0] * np.eye(2), atol=1e-12)


def test_rolled_faces_give_different_heatmaps() -> None:
    conf = np.ones(5)
    centre = FRONTAL.mean(0)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    rolled = (FRONTAL - centre) @ np.array([[c, -s], [s, c]]).T + centre
    upright, _ = hm.keypoints_to_heatmaps(FRONTAL[None], conf[None], THRESHOLD)
    tilted, frames = hm.keypoints_to_heatmaps(rolled[None], conf[None], THRESHOLD)
    assert np.abs(upright - tilted).max() > 0.5
    peaks = peak_positions(tilted[0])
    assert peaks[LEFT_EYE, 1] > peaks[RIGHT_EYE, 1] + 5  # clockwise roll: the subject's left eye lower


@pytest.mark.parametrize("conf", [np.ones(5), np.zeros(5), np.array([1.0, 0, 0, 0, 0])])
def test_degenerate_keypoints_do_not_crash(conf: np.ndarray) -> None:
    same = np.tile([[321.0, 123.0]], (5, 1))
    maps, frames = hm.keypoints_to_heatmaps(same[None], conf[None], THRESHOLD)
    assert np.all(np.isfinite(maps)) and np.all(np.isfinite(frames))
    assert maps.shape == (1, HEATMAP_SIZE, HEATMAP_SIZE, 5)
    if conf.max() >= THRESHOLD:
        centre = hm.apply_frames(frames, same[None])[0, 0]
        np.testing.assert_allclose(centre, [HEATMAP_SIZE / 2] * 2)


def test_no_visible_keypoint_gives_empty_maps_and_a_finite_frame() -> None:
    maps, frames = hm.keypoints_to_heatmaps(FRONTAL[None], np.zeros((1, 5)), THRESHOLD)
    assert not maps.any()
    assert np.all(np.isfinite(frames))


def test_missing_keypoint_with_nan_position_leaves_an_empty_channel() -> None:
    """Keypoints documents a missing keypoint's xy as meaningless; NaN is such a value and must not leak."""
    xy = FRONTAL.copy()
    xy[4] = np.nan
    conf = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    maps, frames = hm.keypoints_to_heatmaps(xy[None], conf[None], THRESHOLD)
    assert np.all(np.isfinite(frames))
    assert np.all(np.isfinite(maps)), "a NaN position of a missing keypoint turned its channel into NaN"
    assert not maps[0, :, :, 4].any()


def test_batch_matches_single_faces() -> None:
    rng = np.random.default_rng(3)
    xy = FRONTAL[None] + rng.normal(0, 5, (4, 5, 2)) + rng.uniform(0, 300, (4, 1, 2))
    conf = rng.uniform(0, 1, (4, 5))
    batch, frames = hm.keypoints_to_heatmaps(xy, conf, THRESHOLD)
    for i in range(4):
        one = hm.face_keypoints(Keypoints(xy[i], conf[i]), THRESHOLD)
        np.testing.assert_allclose(one.heatmaps, batch[i], atol=1e-6)
        np.testing.assert_allclose(one.to_heatmap, frames[i])
        assert one.heatmaps.shape == (HEATMAP_SIZE, HEATMAP_SIZE, 5)
