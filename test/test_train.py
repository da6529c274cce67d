"""The synthetic generator and the train command: determinism, labels, the source profile and the card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headpose_ros.estimator import geometry
from headpose_ros.estimator.regressor import HeadPoseRegressor, ModelCard, card_path
from headpose_ros.tools import cli
from headpose_ros.tools.synth import POSE_RANGE_DEG, PROFILES, generate, tilt_share


def test_generator_is_deterministic_and_in_range() -> None:
    a, b = generate(300, 7, PROFILES["face_mesh"]), generate(300, 7, PROFILES["face_mesh"])
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.ypr, b.ypr)
    assert not np.array_equal(a.xy, generate(300, 8, PROFILES["face_mesh"]).xy)
    assert np.all(np.abs(a.ypr) <= np.array(POSE_RANGE_DEG))
    assert np.all(np.isfinite(a.xy)) and a.heatmaps(np.arange(5), 0.3).shape == (5, 96, 96, 5)


def test_generated_keypoints_follow_the_sign_conventions() -> None:
    s = generate(2000, 0, PROFILES["face_mesh"])
    nose_x = s.xy[:, 0, 0] - s.xy[:, [1, 2], 0].mean(axis=1)  # nose relative to the eyes' midpoint, pixels
    turned = (np.abs(s.ypr[:, 0]) > 20) & (np.abs(s.ypr[:, 2]) < 20)
    # yaw > 0 turns the face to the image's left: the nose moves left of the eyes.
    assert np.mean(np.sign(nose_x[turned]) == -np.sign(s.ypr[turned, 0])) > 0.97
    # roll > 0 is clockwise on screen: the subject's left eye (image right) is lower (larger y).
    tilted = (np.abs(s.ypr[:, 2]) > 15) & (np.abs(s.ypr[:, 0]) < 45)
    eye_dy = s.xy[tilted, 2, 1] - s.xy[tilted, 1, 1]
    assert np.mean(np.sign(eye_dy) == np.sign(s.ypr[tilted, 2])) > 0.97


def test_face_mesh_profile_places_every_keypoint_but_pose_profile_hides_turned_ears() -> None:
    mesh = generate(1000, 1, PROFILES["face_mesh"])
    assert np.all(mesh.confidence > 0)
    pose = generate(3000, 1, PROFILES["mediapipe_pose"])
    right_ear_away = pose.ypr[:, 0] > 70  # the face turns to the subject's right: the right ear turns away
    assert np.mean(pose.confidence[right_ear_away, 3] < 0.3) > 0.9
    assert np.mean(pose.confidence[np.abs(pose.ypr[:, 0]) < 10, 3] > 0.3) > 0.75


def test_face_mesh_profile_saturates_yaw_beyond_the_knee() -> None:
    s = generate(4000, 2, PROFILES["face_mesh"])
    apparent = np.degrees(np.arcsin(np.clip(
        (s.xy[:, 0, 0] - s.xy[:, [1, 2], 0].mean(1)) / np.linalg.norm(s.xy[:, 2] - s.xy[:, 1], axis=1), -1, 1)))
    far = np.abs(s.ypr[:, 0]) > 75
    mid = (np.abs(s.ypr[:, 0]) > 50) & (np.abs(s.ypr[:, 0]) < 55)
    # nose offset keeps growing until the knee, then barely: |far| faces look only a little more turned than |mid|.
    assert np.abs(apparent[far]).mean() - np.abs(apparent[mid]).mean() < 10


def _train(tmp_path: Path, name: str) -> Path:
    assert cli.main(["train", "--name", name, "--out", str(tmp_path), "--synthetic", "96", "--epochs", "1",
                     "--batch-size", "32", "--seed", "3"]) == 0
    return tmp_path / f"{name}.weights.h5"


def test_train_writes_loadable_weights_and_card_and_reproduces_them(tmp_path: Path) -> None:
    first, second = _train(tmp_path, "a"), _train(tmp_path, "b")
    assert first.read_bytes() != b"" and first.stat().st_size > 1_000_000
    card = ModelCard.load(card_path(first))
    assert card.heatmap_kind == "rendered" and card.keypoint_source == "face_mesh"
    assert json.loads(card_path(first).read_text())["training"]["seed"] == 3
    reg_a, reg_b = HeadPoseRegressor(str(first), "cpu"), HeadPoseRegressor(str(second), "cpu")
    maps = generate(8, 11, PROFILES["face_mesh"]).heatmaps(np.arange(8), 0.3)
    np.testing.assert_array_equal(reg_a.predict(maps), reg_b.predict(maps))  # same seed, same weights
    assert np.all(np.abs(reg_a.predict(maps)) <= 120.0)


def test_train_pitch_gain_reaches_the_generator_and_the_card(tmp_path: Path, monkeypatch) -> None:
    from headpose_ros.tools import train

    seen, real = [], train.generate
    monkeypatch.setattr(train, "generate", lambda n, seed, profile, **kw: seen.append(profile.pitch_gain) or real(
        n, seed, profile, **kw))
    assert cli.main(["train", "--name", "g", "--out", str(tmp_path), "--synthetic", "64", "--epochs", "1",
                     "--batch-size", "32", "--pitch-gain", "0.6", "0.8"]) == 0
    assert seen == [(0.6, 0.8)]
    data = json.loads(card_path(tmp_path / "g.weights.h5").read_text())["training"]["data"]
    assert data == ["synthetic:64 (face_mesh profile, pitch gain 0.6-0.8, seed 0)"]


def test_tilt_turns_each_head_about_its_line_of_sight_in_keypoints_and_labels() -> None:
    """``tilt_deg``: the same heads, their keypoints turned in the image by the drawn tilt (about the head's
    image point; exact on the optical axis, nearly so 25 deg off it), their labels the turned pose."""
    plain, tilted = generate(3000, 4, PROFILES["face_mesh"]), generate(3000, 4, PROFILES["face_mesh"], tilt_deg=45)
    np.testing.assert_array_equal(plain.xy, generate(3000, 4, PROFILES["face_mesh"], tilt_deg=0.0).xy)
    tilt = np.random.default_rng([4, 1]).uniform(-45, 45, 3000) * tilt_share(plain.ypr[:, 0])
    kept = np.any(tilted.ypr != plain.ypr, axis=1)
    assert kept.mean() > 0.9 and np.all(np.abs(tilted.ypr) <= 99.0)
    assert np.abs(tilt[np.abs(plain.ypr[:, 0]) < 10]).max() < 0.7  # frontal faces tilt by their roll alone
    np.testing.assert_allclose(geometry.rotation_errors_deg(
        tilted.ypr[kept], geometry.compose_line_of_sight_roll(plain.ypr[kept], tilt[kept])), 0.0, atol=1e-3)
    np.testing.assert_array_equal(tilted.ypr[~kept], plain.ypr[~kept])  # those would leave +-99 deg
    # The image turn of each kept head (least-squares 2D rotation, keypoints centred) is its tilt, clockwise.
    a = plain.xy[kept] - plain.xy[kept].mean(axis=1, keepdims=True)
    b = tilted.xy[kept] - tilted.xy[kept].mean(axis=1, keepdims=True)
    turn = np.degrees(np.arctan2((a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).sum(1), (a * b).sum((1, 2))))
    assert np.median(np.abs(turn - tilt[kept])) < 1.0
    profiles = kept & (np.abs(plain.ypr[:, 0]) > 70)  # profiles tilt in the image too, which Euler draws cannot
    assert np.corrcoef(turn[profiles[kept]], tilt[profiles])[0, 1] > 0.95 and np.abs(tilt[profiles]).max() > 25


def test_train_tilt_reaches_the_generator_and_the_card(tmp_path: Path, monkeypatch) -> None:
    from headpose_ros.tools import train

    seen, real = [], train.generate
    monkeypatch.setattr(train, "generate", lambda n, seed, profile, **kw: seen.append(kw) or real(
        n, seed, profile, **kw))
    assert cli.main(["train", "--name", "t", "--out", str(tmp_path), "--synthetic", "64", "--epochs", "1",
                     "--batch-size", "32", "--tilt", "20", "--level", "15", "--min-yaw", "12"]) == 0
    assert seen == [{"tilt_deg": 20.0, "level_deg": 15.0, "min_yaw_deg": 12.0}]
    data = json.loads(card_path(tmp_path / "t.weights.h5").read_text())["training"]["data"]
    assert data == ["synthetic:64 (face_mesh profile, tilt +-20 deg x (1 - cos yaw), levelled beyond 15 deg, "
                    "|yaw| from 12 deg, seed 0)"]


def test_min_yaw_draws_the_same_heads_turned_by_at_least_that_much() -> None:
    plain, turned = generate(400, 7, PROFILES["face_mesh"]), generate(400, 7, PROFILES["face_mesh"], min_yaw_deg=20.0)
    assert np.abs(turned.ypr[:, 0]).min() >= 20.0 and np.abs(turned.ypr[:, 0]).max() <= 90.0
    assert np.abs(plain.ypr[:, 0]).min() < 5.0  # the option changes the draw
    np.testing.assert_array_equal(np.sign(turned.ypr[:, 0]), np.sign(plain.ypr[:, 0]))
    np.testing.assert_array_equal(turned.ypr[:, 1:], plain.ypr[:, 1:])
    order = np.argsort(np.abs(plain.ypr[:, 0]))
    assert np.all(np.diff(np.abs(turned.ypr[order, 0])) >= 0)  # magnitudes mapped in order


def test_level_draws_the_heads_as_the_face_mesh_source_levels_them_and_turns_the_labels_with_them() -> None:
    """``level_deg``: the same heads, their keypoints what ``levelled_heatmaps`` draws at inference (same
    heatmaps), their labels the pose the levelled frame shows: turned back as the pipeline turns it, the
    camera's pose."""
    from headpose_ros.estimator.keypoints.face_mesh import levelled_heatmaps

    plain, level = generate(600, 5, PROFILES["face_mesh"]), generate(600, 5, PROFILES["face_mesh"], level_deg=15.0)
    maps, frames = levelled_heatmaps(plain.xy, plain.confidence, 0.3, 15.0)
    np.testing.assert_allclose(level.heatmaps(np.arange(600), 0.3), maps, atol=1e-6)
    back = geometry.compose_line_of_sight_roll(level.ypr, -geometry.heatmap_frame_rotation_deg(frames))
    np.testing.assert_allclose(geometry.rotation_errors_deg(back, plain.ypr), 0.0, atol=1e-4)
    tilt = np.degrees(np.abs(geometry.eye_angle(level.xy[:, 1], level.xy[:, 2])))
    before = np.degrees(np.abs(geometry.eye_angle(plain.xy[:, 1], plain.xy[:, 2])))
    assert tilt.max() < 15.0 + 1e-6 and (before > 30).mean() > 0.2  # generated heads tilt; levelled ones do not
    untouched = before <= 15.0
    np.testing.assert_allclose(level.xy[untouched], plain.xy[untouched], atol=1e-9)
    np.testing.assert_allclose(level.ypr[untouched], plain.ypr[untouched], atol=1e-9)


@pytest.mark.parametrize("bad", [["--synthetic", "0"], ["--pitch-gain", "0.9", "0.5"], ["--pitch-gain", "0", "1"],
                                 ["--tilt", "-5"], ["--tilt", "120"], ["--level", "-1"], ["--level", "91"],
                                 ["--min-yaw", "-1"], ["--min-yaw", "90"]])
def test_train_refuses_nothing_to_train_on_and_bad_pitch_gains(tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(tmp_path), *bad])


def test_geometry_head_model_is_symmetric_and_eyes_63mm_apart() -> None:
    m = geometry.HEAD_MODEL_MM
    assert np.linalg.norm(m[2] - m[1]) == pytest.approx(63.0)
    np.testing.assert_allclose(m[[2, 4], 0], -m[[1, 3], 0])


def test_train_fine_tunes_on_labelled_images_through_the_pipeline(tmp_path: Path) -> None:
    """``--data aflw2000:DIR --init default``: images go through the detector and keypoint source."""
    import cv2
    import scipy.io

    data = pytest.importorskip("skimage.data", reason="the astronaut portrait ships with scikit-image")
    folder = tmp_path / "aflw"
    folder.mkdir()
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for i, flip in enumerate((False, True, False)):
        cv2.imwrite(str(folder / f"image{i:05d}.jpg"), image[:, ::-1] if flip else image)
        roll = np.radians(-3.0 if flip else 3.0)  # Pose_Para: pitch, yaw, roll in radians
        label = {"Pose_Para": np.array([[0.0, 0.0, roll, 0, 0, 0, 0]]), "pt3d_68": np.zeros((3, 68))}
        scipy.io.savemat(folder / f"image{i:05d}.mat", label)
    out = tmp_path / "models"
    assert cli.main(["train", "--name", "ft", "--out", str(out), "--synthetic", "0", "--data", f"aflw2000:{folder}",
                     "--init", "default", "--epochs", "1", "--batch-size", "2"]) == 0
    card = json.loads((out / "ft.json").read_text())
    assert card["heatmap_kind"] == "rendered" and "aflw2000:" in card["training"]["data"][0]
    assert "(3 samples)" in card["training"]["data"][0]  # all three faces were found and used
    assert HeadPoseRegressor(str(out / "ft.weights.h5"), "cpu").predict(np.zeros((1, 96, 96, 5))).shape == (1, 3)
