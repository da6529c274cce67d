"""fit-geometry's math: it recovers a known keypoint model and known poses from exact projections."""

from __future__ import annotations

import numpy as np

from headpose_ros.estimator import geometry
from headpose_ros.tools.fit_geometry import apparent_poses, fit_model


def _project(model: np.ndarray, ypr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Weak-perspective projections (N, 5, 2) of ``model`` under each pose, random scale and offset."""
    rot = geometry.rotations_from_ypr(ypr)
    scale = rng.uniform(0.5, 3.0, len(ypr))
    offset = rng.uniform(0, 500, (len(ypr), 2))
    return np.einsum("nij,kj->nki", rot[:, :2, :], model) * scale[:, None, None] + offset[:, None, :]


def test_fit_model_recovers_the_model_that_made_the_keypoints() -> None:
    rng = np.random.default_rng(0)
    truth = geometry.HEAD_MODEL_MM + np.array([[0, 3, -4], [0, 0, 0], [0, 0, 0], [2, -3, 6], [-1, 2, 4]])
    truth = truth - 0.5 * (truth[1] + truth[2])
    ypr = rng.uniform(-1, 1, (400, 3)) * np.array([70.0, 40.0, 30.0])
    model, residual = fit_model(_project(truth, ypr, rng), ypr, init=geometry.HEAD_MODEL_MM)
    np.testing.assert_allclose(model, truth, atol=0.5)
    assert np.median(residual) < 1e-3


def test_apparent_poses_recover_the_poses_of_a_rigid_model() -> None:
    rng = np.random.default_rng(1)
    ypr = rng.uniform(-1, 1, (25, 3)) * np.array([60.0, 30.0, 25.0])
    found = apparent_poses(_project(geometry.HEAD_MODEL_MM, ypr, rng), geometry.HEAD_MODEL_MM)
    assert np.max(geometry.angle_abs_error(found, ypr)) < 0.5
