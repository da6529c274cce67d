"""fit-geometry's math: it recovers a known keypoint model and known poses from exact projections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headpose_ros.estimator import geometry
from headpose_ros.tools import cli, fit_geometry
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


def test_each_dataset_takes_its_own_part_or_sequences(tmp_path: Path, monkeypatch) -> None:
    """``--data FORMAT:PATH part=I/N`` / ``sequences=SS``: fit on tuning parts, as ``eval --part`` and
    ``--sequences`` choose them; the fit itself runs on what the (stubbed) datasets give."""
    rng = np.random.default_rng(2)
    seen = []

    def collect(fmt, path, limit, sequences, args, part=None):
        seen.append((fmt, path, sequences, part))
        ypr = rng.uniform(-1, 1, (60, 3)) * np.array([70.0, 40.0, 30.0])
        return _project(geometry.HEAD_MODEL_MM, ypr, rng), ypr

    monkeypatch.setattr(fit_geometry, "collect", collect)
    out = tmp_path / "fit.json"
    assert cli.main(["fit-geometry", "--data", "aflw2000:A", "part=1/2", "--data", "biwi-crops:B",
                     "sequences=01-09", "--data", "biwi-crops:C", "--sequences", "10", "--json", str(out)]) == 0
    assert seen == [("aflw2000", "A", None, (1, 2)), ("biwi-crops", "B", ["01-09"], None),
                    ("biwi-crops", "C", ["10"], None)]
    fit = json.loads(out.read_text())
    assert fit["faces"] == 180
    np.testing.assert_allclose(fit["model_mm"], geometry.HEAD_MODEL_MM, atol=0.1)


@pytest.mark.parametrize("select", ["part=3/2", "part=x", "limit=5"])
def test_a_bad_selection_is_a_configuration_error(select: str, monkeypatch) -> None:
    monkeypatch.setattr(fit_geometry, "collect", lambda *a, **k: pytest.fail("nothing may run"))
    assert cli.main(["fit-geometry", "--data", "aflw2000:A", select]) == 2
