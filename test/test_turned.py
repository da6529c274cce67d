"""The turned-face companion: the ``default`` card names ``turned``, whose angles are blended in for faces whose
heatmaps look turned beyond 27 deg of yaw (regressor.turned_weights of regressor.heatmap_apparent_yaws_deg), and
for faces with a keypoint not drawn beyond 20 deg of the default model's own reading; each model runs only on the
faces whose angles need it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headpose_ros.estimator.errors import ModelFileError
from headpose_ros.estimator.keypoints.face_mesh import levelled_heatmaps
from headpose_ros.estimator import geometry
from headpose_ros.estimator.regressor import MODELS_DIR, HeadPoseRegressor, heatmap_apparent_yaws_deg, turned_weights
from headpose_ros.tools.synth import PROFILES, generate
from tools_fakes import copy_default_model


@given(st.floats(-180, 180), st.floats(-180, 180), st.floats(0, 90), st.one_of(st.just(0.0), st.floats(1e-3, 90)))
def test_turned_weight_ramps_from_lo_to_hi_in_either_direction(a: float, b: float, lo: float, width: float) -> None:
    ramp = (lo, lo + width)
    wa, wa_mirrored, wb = turned_weights(np.array([a, -a, b]), ramp)
    assert 0.0 <= wa <= 1.0 and wa == wa_mirrored  # a head turned either way alike
    if abs(a) <= lo and width > 0:
        assert wa == 0.0
    if abs(a) >= lo + width:
        assert wa == 1.0
    if abs(a) <= abs(b):
        assert wa <= wb  # never less of the companion for a face read further turned


def test_the_default_model_blends_its_turned_companion_into_turned_faces_only() -> None:
    card = json.loads((MODELS_DIR / "default.json").read_text())
    assert card["turned"] == {"model": "turned", "blend_yaw_deg": [20.0, 30.0], "blend_apparent_deg": [27.0, 37.0]}
    heads = generate(160, 11, PROFILES["face_mesh"])
    maps, _ = levelled_heatmaps(heads.xy, heads.confidence, 0.3, 15.0)
    undrawn = np.flatnonzero(np.abs(heads.ypr[:, 0]) > 50)[:2].tolist() + np.flatnonzero(
        np.abs(heads.ypr[:, 0]) < 10)[:2].tolist()
    maps[undrawn, :, :, 3] = 0.0  # faces without their right ear drawn: weighed by the default's own reading
    alone = HeadPoseRegressor("default", "cpu", companion=False)
    turned = HeadPoseRegressor("turned", "cpu")
    both = HeadPoseRegressor("default", "cpu")
    assert alone.turned is None and turned.turned is None and both.turned is not None
    assert alone.companion_rule() == "none"
    assert both.companion_rule() == ("27-37 deg of the heatmaps' apparent yaw (a keypoint not drawn: 20-30 deg of "
                                     "this model's yaw)")
    first, other = alone.predict(maps), turned.predict(maps)
    ran: dict[str, int] = {"default": 0, "turned": 0}

    def counted(name: str, run):
        def wrapper(batch: np.ndarray) -> np.ndarray:
            ran[name] += batch.shape[0]
            return run(batch)
        return wrapper

    both._run, both.turned._run = counted("default", both._run), counted("turned", both.turned._run)
    blended = both.predict(maps)
    looks = np.abs(heatmap_apparent_yaws_deg(maps))
    known = np.isfinite(looks)
    assert np.flatnonzero(~known).tolist() == sorted(undrawn)
    w = np.where(known, turned_weights(np.nan_to_num(looks), (27.0, 37.0)), turned_weights(first[:, 0], (20.0, 30.0)))
    assert set(w[~known]) == {0.0, 1.0}  # the fallback seen both ways
    assert (w == 0).sum() > 20 and (w == 1).sum() > 20 and ((w > 0) & (w < 1)).sum() > 3  # every branch seen
    np.testing.assert_allclose(blended, (1 - w[:, None]) * first + w[:, None] * other, atol=1e-4)
    assert np.abs(other - first)[w == 1].max() > 1.0  # the companion is another model, so the test can fail
    # Each model ran on the faces that need it and no others: the default not on faces turned past the ramp.
    assert ran == {"default": int((~known | (w < 1)).sum()), "turned": int((w > 0).sum())}
    assert (known & (w == 1)).sum() > 10  # faces that ran the companion alone


def test_the_heatmaps_apparent_yaw_is_the_keypoints_in_the_heatmap_frame() -> None:
    """Peaks on the 96-px grid: within a few degrees of the fit to the exact keypoints in the heatmap frame."""
    heads = generate(300, 12, PROFILES["face_mesh"])
    maps, frames = levelled_heatmaps(heads.xy, heads.confidence, 0.3, 15.0)
    exact = np.einsum("nab,nkb->nka", frames[:, :, :2], heads.xy) + frames[:, None, :, 2]
    diff = np.abs(heatmap_apparent_yaws_deg(maps) - geometry.apparent_yaws_deg(exact))
    assert np.median(diff) < 1.5 and np.percentile(diff, 95) < 6.0


@pytest.mark.parametrize("entry, message", [
    ({"model": "no_such_model", "blend_yaw_deg": [20, 30]}, "does not exist"),
    ({"model": "turned", "blend_yaw_deg": [30, 20]}, "blend_yaw_deg"),
    ({"model": "turned"}, "bad 'turned' entry"),
    ({"model": "turned", "blend_yaw_deg": [20, 30], "blend_apparent_deg": [37, 27]}, "blend_apparent_deg"),
    ({"model": "turned", "blend_yaw_deg": [20, 30], "blend_apparent_deg": [27]}, "blend_apparent_deg"),
    ({"model": "turned", "blend_yaw_deg": [20, 30], "blend_apparent_deg": "far"}, "bad 'turned' entry"),
    ({"model": "openpose", "blend_yaw_deg": [20, 30]}, "heatmaps"),
])
def test_a_bad_turned_entry_in_a_card_is_refused_by_name(tmp_path: Path, entry: dict, message: str) -> None:
    copy_default_model(tmp_path, turned=entry)
    with pytest.raises(ModelFileError, match=message):
        HeadPoseRegressor(str(tmp_path / "m.tflite"), "cpu")


def test_a_card_without_the_apparent_ramp_blends_by_the_models_own_reading(tmp_path: Path) -> None:
    copy_default_model(tmp_path, turned={"model": "turned", "blend_yaw_deg": [20, 30]})
    regressor = HeadPoseRegressor(str(tmp_path / "m.tflite"), "cpu")
    assert regressor.blend_apparent_deg is None and regressor.companion_rule() == "20-30 deg of this model's yaw"
    heads = generate(60, 13, PROFILES["face_mesh"])
    maps, _ = levelled_heatmaps(heads.xy, heads.confidence, 0.3, 15.0)
    first = HeadPoseRegressor(str(tmp_path / "m.tflite"), "cpu", companion=False).predict(maps)
    w = turned_weights(first[:, 0], (20.0, 30.0))
    assert (w == 0).any() and (w == 1).any()
    other = HeadPoseRegressor("turned", "cpu").predict(maps)
    np.testing.assert_allclose(regressor.predict(maps), (1 - w[:, None]) * first + w[:, None] * other, atol=1e-4)
