"""One-euro filtering of orientation (on the rotation group) and position."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headpose_ros.estimator import geometry
from headpose_ros.estimator.errors import ConfigError
from headpose_ros.estimator.smoothing import (OneEuroParams, OneEuroRotation, OneEuroVector, PoseSmoother,
                                              smoothing_factor)
from headpose_ros.estimator.types import HeadPose


def test_smoothing_factor_limits():
    assert 0 < smoothing_factor(1 / 30, 1.0) < 1
    assert smoothing_factor(1 / 30, 1e6) == pytest.approx(1.0, abs=1e-4)
    assert smoothing_factor(1 / 30, 1.0) < smoothing_factor(1 / 30, 5.0)


def test_vector_filter_reduces_jitter_at_rest():
    rng = np.random.default_rng(1)
    f = OneEuroVector(OneEuroParams(min_cutoff=1.0, beta=0.0))
    raw = np.array([1.0, 2.0, 3.0]) + rng.normal(0, 0.05, (300, 3))
    out = np.array([f(i / 30, x) for i, x in enumerate(raw)])
    assert out[100:].std(axis=0).max() < 0.5 * raw[100:].std(axis=0).min()
    np.testing.assert_allclose(out[100:].mean(axis=0), [1, 2, 3], atol=0.02)


def test_speed_term_reduces_lag():
    step = [np.zeros(1)] * 10 + [np.ones(1)] * 10
    slow, fast = OneEuroVector(OneEuroParams(1.0, 0.0)), OneEuroVector(OneEuroParams(1.0, 50.0))
    out_slow = [slow(i / 30, x)[0] for i, x in enumerate(step)]
    out_fast = [fast(i / 30, x)[0] for i, x in enumerate(step)]
    assert out_fast[12] > out_slow[12] + 0.2


def test_time_that_does_not_increase_resets():
    f = OneEuroVector(OneEuroParams())
    f(1.0, np.zeros(2))
    f(1.1, np.zeros(2))
    np.testing.assert_array_equal(f(0.5, np.ones(2)), np.ones(2))  # bag looped: take the measurement


def test_rotation_filter_stays_between_and_converges():
    f = OneEuroRotation(OneEuroParams(min_cutoff=1.0, beta=0.0))
    q0 = geometry.quaternion_from_ypr(HeadPose(0, 0, 0))
    q1 = geometry.quaternion_from_ypr(HeadPose(40, 0, 0))
    f(0.0, q0)
    first = f(1 / 30, q1)
    angle = geometry.quaternion_angle_deg(q0, first)
    assert 0 < angle < 40 and geometry.quaternion_angle_deg(first, q1) == pytest.approx(40 - angle, abs=1e-6)
    for i in range(2, 400):
        out = f(i / 30, q1)
    assert geometry.quaternion_angle_deg(out, q1) < 0.1


def test_rotation_filter_ignores_quaternion_sign():
    f = OneEuroRotation(OneEuroParams(min_cutoff=1.0, beta=0.0))
    q = geometry.quaternion_from_ypr(HeadPose(10, 5, 0))
    f(0.0, q)
    out = f(1 / 30, -q)  # the same rotation
    assert geometry.quaternion_angle_deg(out, q) < 1e-6


def test_pose_smoother_per_track_and_wrap_free():
    s = PoseSmoother(OneEuroParams(min_cutoff=1.0, beta=0.0))
    s.smooth(1, 0.0, HeadPose(0, 0, 179), np.zeros(3))
    pose, _ = s.smooth(1, 1 / 30, HeadPose(0, 0, -179), np.zeros(3))  # 2 degrees apart across the wrap
    assert abs(geometry.wrap_deg(pose.roll - 180)) < 2
    other, _ = s.smooth(2, 1 / 30, HeadPose(30, 0, 0), np.ones(3))  # a new track starts at its measurement
    assert other.yaw == pytest.approx(30)
    assert len(s) == 2
    s.forget([1])
    assert len(s) == 1


def test_position_filter_restarts_when_calibration_appears():
    s = PoseSmoother(OneEuroParams(min_cutoff=0.01, beta=0.0))
    s.smooth(1, 0.0, HeadPose(0, 0, 0), np.array([0.0, 0.0, 1.0]), position_is_ray=True)
    _, pos = s.smooth(1, 0.1, HeadPose(0, 0, 0), np.array([0.5, 0.0, 3.0]), position_is_ray=False)
    np.testing.assert_allclose(pos, [0.5, 0.0, 3.0])


@pytest.mark.parametrize("kwargs", [{"min_cutoff": 0.0}, {"beta": -1.0}, {"d_cutoff": "x"}])
def test_bad_params_are_refused(kwargs):
    with pytest.raises(ConfigError):
        OneEuroParams(**kwargs)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-80, 80), st.floats(-60, 60), st.floats(-60, 60)), min_size=2, max_size=20))
def test_filtered_rotation_never_leaves_the_measurements_hull(angles):
    f = OneEuroRotation(OneEuroParams(min_cutoff=2.0, beta=0.5))
    qs = [geometry.quaternion_from_ypr(HeadPose(*a)) for a in angles]
    for i, q in enumerate(qs):
        out = f(i / 30, q)
        assert abs(np.linalg.norm(out) - 1) < 1e-9
        assert min(geometry.quaternion_angle_deg(out, p) for p in qs[: i + 1]) <= max(
            geometry.quaternion_angle_deg(a, b) for a in qs[: i + 1] for b in qs[: i + 1]) + 1e-6
