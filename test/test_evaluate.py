"""The evaluation metrics on constructed predictions: MAE, the +-99 deg filter, subsets, faces not found."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from headpose_ros.estimator import geometry
from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.types import FaceBox, FaceResult, HeadPose, Keypoints
from headpose_ros.tools import evaluate
from headpose_ros.tools.datasets import Dataset, Sample
from headpose_ros.tools.evaluate import Prediction, format_summary, pick_face, summarize
from tools_fakes import BrightBlobDetector, CentreDetector, ConstantRegressor, LayoutKeypoints


def P(name, gt, pred, seq=None, faces=None):
    return Prediction(name, np.array(gt, float), None if pred is None else np.array(pred, float), seq,
                      (1 if pred is not None else 0) if faces is None else faces)


def test_mae_filter_and_subsets():
    preds = [
        P("a", [10, 0, 0], [12, -1, 3], "01"),  # errors 2, 1, 3
        P("b", [60, 10, -5], [50, 14, -5], "01"),  # errors 10, 4, 0; |yaw| > 45
        P("c", [-30, 5, 5], None, "02"),  # not detected
        P("d", [120, 0, 0], [0, 0, 0], "02"),  # outside +-99: excluded, its error never counts
        P("e", [0, 0, -99], [0, 0, 170], "02", faces=1),  # wrapped roll error: |(170 + 99 + 180) % 360 - 180| = 91
        P("f", [-50, 0, 0], None, "02", faces=2),  # only other faces were found
    ]
    s = summarize(preds)
    assert s["n"] == 5 and s["detected"] == 3 and s["excluded_out_of_range"] == 1
    assert s["detection_rate"] == pytest.approx(0.6)
    assert s["not_detected"] == ["c", "f"] and s["wrong_face_only"] == 1
    # MAEs are rounded to 0.001 deg
    assert s["mae"]["yaw"] == pytest.approx(12 / 3, abs=1e-3)
    assert s["mae"]["pitch"] == pytest.approx(5 / 3, abs=1e-3)
    assert s["mae"]["roll"] == pytest.approx(94 / 3, abs=1e-3)
    assert s["mae"]["mean"] == pytest.approx((12 + 5 + 94) / 9, abs=1e-3)
    low, high = s["subsets"]["abs_yaw_le_45"], s["subsets"]["abs_yaw_gt_45"]
    assert (low["n"], low["detected"], high["n"], high["detected"]) == (3, 2, 2, 1)
    assert low["mae"]["yaw"] == pytest.approx(1.0) and low["mae"]["roll"] == pytest.approx(47.0)
    assert high["mae"] == {"yaw": 10.0, "pitch": 4.0, "roll": 0.0, "mean": pytest.approx(14 / 3, abs=1e-3)}
    assert s["per_sequence"]["01"]["detected"] == 2 and s["per_sequence"]["02"]["n"] == 3
    table = format_summary({**s, "max_abs_deg": 99})
    assert "|yaw| > 45" in table and "sequence 02" in table


def test_range_is_configurable_and_inclusive():
    preds = [P("a", [99, 0, 0], [99, 0, 0]), P("b", [0, -99.0, 0], [0, -98, 0]), P("c", [0, 0, 99.01], [0, 0, 99])]
    assert summarize(preds)["n"] == 2
    assert summarize(preds, max_abs_deg=120)["n"] == 3
    assert summarize(preds, max_abs_deg=50)["n"] == 0


def test_nothing_detected_and_empty():
    s = summarize([P("a", [0, 0, 0], None), P("b", [60, 0, 0], None)])
    assert s["n"] == 2 and s["detected"] == 0 and s["mae"] is None and s["detection_rate"] == 0.0
    assert s["subsets"]["abs_yaw_gt_45"] == {"n": 1, "detected": 0, "detection_rate": 0.0, "mae": None,
                                             "rotation_error_deg": None}
    e = summarize([])
    assert e["n"] == 0 and e["mae"] is None and e["subsets"]["abs_yaw_le_45"]["n"] == 0
    json.dumps(s), json.dumps(e)  # JSON-ready
    assert "-" in format_summary({**s, "max_abs_deg": 99})


def face(x0, y0, x1, y1, yaw=0.0):
    return FaceResult(FaceBox(x0, y0, x1, y1, 0.9), Keypoints(np.zeros((5, 2)), np.ones(5)), HeadPose(yaw, 0, 0),
                      np.array([0.0, 0.0, 1.0]), True)


def test_pick_face():
    big, small, far = face(0, 0, 100, 100, 1), face(200, 200, 240, 240, 2), face(400, 0, 420, 20, 3)
    assert pick_face([], None) is None
    assert pick_face([small, big], None) is big  # no location: the largest
    assert pick_face([big, small], (220, 220)) is small  # the face holding the labelled point
    assert pick_face([big, small], (245, 245)) is small  # within the 1.5x enlarged box
    assert pick_face([big, small, far], (300, 300)) is None  # only other faces
    a, b = face(0, 0, 100, 100, 1), face(40, 0, 140, 100, 2)  # both hold the point: nearest centre
    assert pick_face([a, b], (85, 50)) is b


def estimator_with(detector, ypr=(20.0, -10.0, 5.0)):
    return HeadPoseEstimator(detector=detector, keypoint_source=LayoutKeypoints(), regressor=ConstantRegressor(ypr))


def write_png(path, value):
    import cv2

    assert cv2.imwrite(str(path), np.full((64, 64, 3), value, np.uint8))


def test_evaluate_images_counts_misses(tmp_path):
    write_png(tmp_path / "face.png", 255)  # the bright-blob detector finds a face
    write_png(tmp_path / "dark.png", 0)  # no face
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG junk")
    samples = [Sample("face.png", np.array([25.0, -10.0, 0.0]), tmp_path / "face.png", sequence="01"),
               Sample("dark.png", np.array([0.0, 0.0, 0.0]), tmp_path / "dark.png"),
               Sample("corrupt.png", np.array([0.0, 0.0, 0.0]), tmp_path / "corrupt.png"),
               Sample("elsewhere.png", np.array([0.0, 0.0, 0.0]), tmp_path / "face.png", face_xy=(500.0, 500.0))]
    estimator = estimator_with(BrightBlobDetector())
    preds = evaluate.evaluate_images(Dataset("aflw2000", tmp_path, samples), estimator)
    assert [p.detected for p in preds] == [True, False, False, False]
    assert [p.note for p in preds] == ["", "no face", "unreadable image", "only other faces"]
    # the scored pose is the estimator's camera-frame pose of that face (the regressor's (20, -10, 5) turned by
    # the ray through the face)
    import cv2

    expected = estimator.process(cv2.imread(str(tmp_path / "face.png"))).faces[0].pose.as_array()
    np.testing.assert_allclose(preds[0].pred, expected)
    assert abs(expected[0] - 20.0) < 10 and abs(expected[2] - 5.0) < 10
    s = summarize(preds)
    assert s["n"] == 4 and s["detected"] == 1 and s["wrong_face_only"] == 1
    err = np.abs(expected - np.array([25.0, -10.0, 0.0]))  # only the detected sample is scored
    assert s["mae"] == {"yaw": pytest.approx(err[0], abs=1e-3), "pitch": pytest.approx(err[1], abs=1e-3),
                        "roll": pytest.approx(err[2], abs=1e-3), "mean": pytest.approx(err.mean(), abs=1e-3)}


def test_evaluate_images_pad_shifts_face_location(tmp_path):
    write_png(tmp_path / "crop.png", 90)
    sample = Sample("crop.png", np.zeros(3), tmp_path / "crop.png", face_xy=(32.0, 32.0))
    preds = evaluate.evaluate_images(Dataset("x", tmp_path, [sample]), estimator_with(CentreDetector()), pad=0.5)
    assert preds[0].detected  # the centre box of the padded image still holds the shifted point


def test_evaluate_images_turn_moves_the_face_and_turns_the_label(tmp_path):
    """--turn: the labelled face's location turns with the image (a box elsewhere is not it), the label is the
    dataset's turned about the line of sight, and the range rule reads the dataset's own label."""
    import cv2

    img = np.zeros((60, 140, 3), np.uint8)
    img[5:40, 90:125] = 255  # the bright 'face', upper right
    assert cv2.imwrite(str(tmp_path / "wide.png"), img)
    sample = Sample("wide.png", np.array([0.0, 0.0, 80.0]), tmp_path / "wide.png", face_xy=(107.0, 22.0))
    ds = Dataset("x", tmp_path, [sample])
    for turn in (90.0, -60.0, 180.0):
        pred = evaluate.evaluate_images(ds, estimator_with(BrightBlobDetector()), turn=turn)[0]
        assert pred.detected, turn  # found where the turned label says
        np.testing.assert_allclose(pred.upright, [0.0, 0.0, 80.0])
        assert abs(geometry.wrap_deg(pred.gt[2] - 80.0 - turn)) < 1e-6 and np.allclose(pred.gt[:2], 0.0, atol=1e-6)
    # the turned label's roll of 170 deg lies outside +-99, the dataset's 80 deg inside: the sample is scored
    assert summarize([pred])["n"] == 1 and summarize([pred])["excluded_out_of_range"] == 0
    # the face keeps its place in a turn of 0; the turned blob does not hold a point of the dark corner
    unmoved = Sample("wide.png", np.zeros(3), tmp_path / "wide.png", face_xy=(107.0, 22.0))
    assert evaluate.evaluate_images(Dataset("x", tmp_path, [unmoved]), estimator_with(BrightBlobDetector()),
                                    turn=0.0)[0].detected
    elsewhere = Sample("wide.png", np.zeros(3), tmp_path / "wide.png", face_xy=(15.0, 50.0))
    assert not evaluate.evaluate_images(Dataset("x", tmp_path, [elsewhere]), estimator_with(BrightBlobDetector()),
                                        turn=90.0)[0].detected


@pytest.mark.parametrize("angle", [0.0, 30.0, -60.0, 90.0, 180.0])
def test_turn_image_keeps_every_pixel_where_its_map_says(angle):
    from headpose_ros.tools.scenes import turn_image

    img = np.full((60, 140, 3), 50, np.uint8)
    corners = [(2, 2), (137, 2), (2, 57), (137, 57)]
    for x, y in corners:
        img[y - 2:y + 3, x - 2:x + 3] = 255
    turned, m = turn_image(img, angle)
    for x, y in corners:  # each marker's centre lands inside the canvas, still bright
        u, v = m @ np.array([x + 0.5, y + 0.5, 1.0])
        assert 0 <= u < turned.shape[1] and 0 <= v < turned.shape[0]
        assert turned[int(v), int(u)].min() > 200, (angle, x, y)
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    assert abs(turned.shape[1] - (140 * c + 60 * s)) <= 1 and abs(turned.shape[0] - (140 * s + 60 * c)) <= 1
    # clockwise on screen: a point right of the centre moves down
    assert not 0 < angle < 180 or (m @ np.array([120.0, 30.0, 1.0]))[1] > (m @ np.array([70.0, 30.0, 1.0]))[1] + 10
    assert turn_image(img, angle, expand=False)[0].shape == img.shape


def test_turn_refuses_images_with_intrinsics(tmp_path):
    from headpose_ros.estimator.errors import ConfigError
    from headpose_ros.estimator.types import CameraIntrinsics

    write_png(tmp_path / "frame.png", 255)
    sample = Sample("frame.png", np.zeros(3), tmp_path / "frame.png",
                    intrinsics=CameraIntrinsics(500.0, 500.0, 32.0, 32.0))
    with pytest.raises(ConfigError, match="intrinsics"):
        evaluate.evaluate_images(Dataset("x", tmp_path, [sample]), estimator_with(BrightBlobDetector()), turn=90.0)


def test_rotation_error_and_turns_table():
    """Each group carries the median and mean rotation error; the turns table compares each turn's median with
    turn 0's."""
    preds = [P("a", [0, 0, 0], [0, 0, 10]), P("b", [0, 0, 0], [0, 0, 30]), P("c", [0, 0, 0], None)]
    s = summarize(preds)
    assert s["rotation_error_deg"] == {"median": pytest.approx(20.0), "mean": pytest.approx(20.0)}
    assert summarize(preds[2:])["rotation_error_deg"] is None
    upright = summarize([P("a", [0, 0, 0], [0, 0, 4])])
    table = evaluate.format_turns([0.0, 90.0], [upright, s]).splitlines()
    assert table[1].split()[:2] == ["0", "1"] and table[2].split()[-1] == "16.00"  # 20 - 4


def test_evaluate_heatmaps_batches():
    class Echo:
        """Returns each map's mean times 100 as yaw, to check the uint8 -> [0, 1] scaling and batching."""

        def predict(self, maps):
            assert maps.dtype == np.float32 and maps.max() <= 1.0
            return np.stack([maps.mean(axis=(1, 2, 3)) * 100, np.zeros(len(maps)), np.zeros(len(maps))], 1)

    values = [0, 51, 255]
    maps = np.stack([np.full((96, 96, 5), v, np.uint8) for v in values])
    samples = [Sample(f"{i}", np.array([v / 2.55, 0, 0]), heatmaps=m) for i, (v, m) in enumerate(zip(values, maps))]
    ds = Dataset("openpose-npz", None, samples, heatmaps=maps)
    preds = evaluate.evaluate_heatmaps(ds, Echo(), batch_size=2)
    np.testing.assert_allclose([p.pred[0] for p in preds], [0.0, 20.0, 100.0], atol=1e-4)
    assert summarize(preds)["mae"]["yaw"] == pytest.approx(0.0, abs=1e-4)


def test_eval_command_json(tmp_path, monkeypatch, capsys):
    """The eval command on a tiny AFLW-style folder with stand-in backends and a throw-away model."""
    import scipy.io

    from tools_fakes import make_model_file, register_fake_backends

    register_fake_backends(monkeypatch)
    weights = make_model_file(tmp_path / "model")
    data = tmp_path / "aflw"
    data.mkdir()
    for i, (value, pose) in enumerate([(255, (0.1, 0.2, 0.0)), (0, (0.0, -0.5, 0.1)), (255, (0.0, 1.9, 0.0))]):
        write_png(data / f"image{i:05d}.jpg", value)
        scipy.io.savemat(str(data / f"image{i:05d}.mat"), {"Pose_Para": np.array([[*pose, 0, 0, 0, 1]])})
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--format", "aflw2000", str(data), "--detector", "bright", "--keypoints",
                              "layout", "--model", str(weights), "--device", "cpu", "--json",
                              str(tmp_path / "m.json"), "--per-sample", str(tmp_path / "p.csv")])
    assert args.func(args) == 0
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["n"] == 2 and out["detected"] == 1 and out["excluded_out_of_range"] == 1  # yaw 1.9 rad > 99 deg
    assert out["not_detected"] == ["image00001.jpg"]
    assert set(out["mae"]) == {"yaw", "pitch", "roll", "mean"}
    assert set(out["subsets"]) == {"abs_yaw_le_45", "abs_yaw_gt_45"}
    assert out["config"]["detector"] == "bright"
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[2].endswith("no face")
    printed = capsys.readouterr().out
    assert "all (+-99 deg)" in printed and "image00001.jpg" in printed


def test_eval_command_turns(tmp_path, monkeypatch, capsys):
    """--turn 0 90: one summary per turn in the JSON, a turn_deg column in the CSV, the turns side by side."""
    import scipy.io

    from tools_fakes import make_model_file, register_fake_backends

    register_fake_backends(monkeypatch)
    weights = make_model_file(tmp_path / "model")
    data = tmp_path / "aflw"
    data.mkdir()
    for i, pose in enumerate([(0.1, 0.2, 0.0), (0.0, -0.3, 0.1)]):
        write_png(data / f"image{i:05d}.jpg", 255)
        scipy.io.savemat(str(data / f"image{i:05d}.mat"), {"Pose_Para": np.array([[*pose, 0, 0, 0, 1]])})
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--format", "aflw2000", str(data), "--detector", "bright", "--keypoints",
                              "layout", "--model", str(weights), "--device", "cpu", "--turn", "0", "90", "--json",
                              str(tmp_path / "m.json"), "--per-sample", str(tmp_path / "p.csv")])
    assert args.func(args) == 0
    out = json.loads((tmp_path / "m.json").read_text())
    assert [t["turn_deg"] for t in out["turns"]] == [0.0, 90.0] and all(t["n"] == 2 for t in out["turns"])
    assert "mae" not in out and out["config"]["detector"] == "bright"
    rows = [r.split(",") for r in (tmp_path / "p.csv").read_text().splitlines()]
    assert rows[0][2] == "turn_deg" and [r[2] for r in rows[1:]] == ["0", "0", "90", "90"]
    printed = capsys.readouterr().out
    assert "turned 90 deg clockwise:" in printed and "- turn 0" in printed


def test_turn_is_refused_for_stored_heatmaps(tmp_path):
    from headpose_ros.estimator.errors import ConfigError

    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--format", "openpose-npz", str(tmp_path), "--turn", "90"])
    with pytest.raises(ConfigError, match="--turn"):
        args.func(args)


def test_part_splits_sorted_samples_into_contiguous_parts():
    """--part I/N: the parts are contiguous, disjoint and together cover every sample once."""
    assert evaluate.parse_part(None) is None and evaluate.parse_part("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(ValueError):
            evaluate.parse_part(bad)
    for count in (0, 1, 7, 300):
        masks = [evaluate.part_mask(count, (i, 3)) for i in (1, 2, 3)]
        assert np.array_equal(np.sum(masks, axis=0), np.ones(count, int))
        for m in masks:
            kept = np.flatnonzero(m)
            assert len(kept) == 0 or np.array_equal(kept, np.arange(kept[0], kept[-1] + 1))
    assert np.flatnonzero(evaluate.part_mask(300, (1, 2))).tolist() == list(range(150))
    assert evaluate.part_mask(5, None).all()


def test_eval_command_part(tmp_path, monkeypatch, capsys):
    """--part 2/2 scores only the second half of the sorted images; a bad --part is a configuration error."""
    import scipy.io

    from headpose_ros.estimator.errors import ConfigError
    from tools_fakes import make_model_file, register_fake_backends

    register_fake_backends(monkeypatch)
    weights = make_model_file(tmp_path / "model")
    data = tmp_path / "aflw"
    data.mkdir()
    for i in range(4):
        write_png(data / f"image{i:05d}.jpg", 255)
        scipy.io.savemat(str(data / f"image{i:05d}.mat"), {"Pose_Para": np.array([[0.0, 0.1 * i, 0, 0, 0, 0, 1]])})
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    common = ["eval", "--format", "aflw2000", str(data), "--detector", "bright", "--keypoints", "layout",
              "--model", str(weights), "--device", "cpu", "--per-sample", str(tmp_path / "p.csv")]
    args = parser.parse_args(common + ["--part", "2/2", "--json", str(tmp_path / "m.json")])
    assert args.func(args) == 0
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["n"] == 2 and out["part"] == "2/2"
    names = [row.split(",")[0] for row in (tmp_path / "p.csv").read_text().splitlines()[1:]]
    assert names == ["image00002.jpg", "image00003.jpg"]
    with pytest.raises(ConfigError):
        bad = parser.parse_args(common + ["--part", "3/2"])
        bad.func(bad)
