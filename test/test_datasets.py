"""Dataset loaders on tiny fixture files written here (never on the research data in shared/)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io

from headpose_ros.estimator import geometry
from headpose_ros.tools import datasets
from headpose_ros.tools.datasets import DatasetError, load_dataset, spread_limit, within_range


def write_png(path, shape=(20, 20, 3), value=128):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))


# --- AFLW2000 ------------------------------------------------------------------------------------------------

def write_aflw(folder, name, pitch_yaw_roll_rad, centre=(30.0, 40.0)):
    write_png(folder / f"{name}.jpg", (64, 64, 3))
    pts = np.zeros((3, 68))
    pts[0], pts[1] = centre[0], centre[1]
    scipy.io.savemat(str(folder / f"{name}.mat"),
                     {"Pose_Para": np.array([[*pitch_yaw_roll_rad, 100.0, 100.0, 0.0, 1.0]]), "pt3d_68": pts})


def test_aflw2000_angles_and_face_location(tmp_path):
    write_aflw(tmp_path, "image00002", (0.1, -0.4, 0.2), centre=(31.0, 42.0))
    write_aflw(tmp_path, "image00004", (-0.3, 1.2, 0.0))
    write_png(tmp_path / "image00009.jpg")  # no .mat: skipped and counted
    ds = load_dataset("aflw2000", tmp_path)
    assert [s.name for s in ds] == ["image00002.jpg", "image00004.jpg"]
    assert ds.total_found == 3 and ds.skipped_counts() == {"no .mat label": 1}
    s = ds.samples[0]
    # Pose_Para = pitch, yaw, roll radians -> (yaw, pitch, roll) degrees
    np.testing.assert_allclose(s.ypr, [math.degrees(-0.4), math.degrees(0.1), math.degrees(0.2)])
    expected = geometry.ypr_from_aflw_pose_para(np.array([0.1, -0.4, 0.2])).as_array()
    np.testing.assert_allclose(s.ypr, expected)
    assert s.face_xy == pytest.approx((31.0, 42.0))
    assert s.load_image().shape == (64, 64, 3)
    np.testing.assert_allclose(ds.ypr[1], [math.degrees(1.2), math.degrees(-0.3), 0.0])


def test_aflw2000_errors(tmp_path):
    with pytest.raises(DatasetError):
        load_dataset("aflw2000", tmp_path / "missing")
    with pytest.raises(DatasetError):
        load_dataset("aflw2000", tmp_path)  # no images
    write_aflw(tmp_path, "image00002", (0.0, 0.0, 0.0))
    with pytest.raises(DatasetError):
        load_dataset("aflw2000", tmp_path, sequences=["01"])
    (tmp_path / "image00003.jpg").write_bytes(b"")
    (tmp_path / "image00003.mat").write_bytes(b"not a mat file")
    write_png(tmp_path / "image00005.jpg")
    (tmp_path / "image00005.mat").write_bytes(b"not a mat file either")
    ds = load_dataset("aflw2000", tmp_path)
    assert len(ds) == 1 and ds.skipped_counts() == {"empty file": 1, "unreadable .mat": 1}


# --- BIWI crops ----------------------------------------------------------------------------------------------

def write_biwi_crops(root):
    rows = ["image,yaw_deg,pitch_deg,roll_deg"]
    for seq in ("01", "07", "12"):
        for frame in range(3):
            name = f"{seq}/frame_{frame:05d}_rgb.png"
            path = root / "crops" / name
            if seq == "07" and frame == 1:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")  # the original data has empty crops
            else:
                write_png(path)
            rows.append(f"{name},{int(seq) + frame},{-frame},{0.5 * frame}")
    rows.append("12/frame_00099_rgb.png,1,2,3")  # listed but missing
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_biwi_crops_skips_and_counts_empty_files(tmp_path):
    write_biwi_crops(tmp_path)
    ds = load_dataset("biwi-crops", tmp_path)
    assert ds.total_found == 10
    assert len(ds) == 8
    assert ds.skipped_counts() == {"empty file": 1, "missing file": 1}
    assert ("07/frame_00001_rgb.png", "empty file") in ds.skipped
    s = next(s for s in ds if s.name == "12/frame_00002_rgb.png")
    np.testing.assert_allclose(s.ypr, [14.0, -2.0, 1.0])
    assert s.sequence == "12" and s.image_path.is_file() and s.face_xy is None
    for sample in ds:  # every kept crop can be read
        assert sample.load_image().shape == (20, 20, 3)


def test_biwi_crops_sequences_and_limit(tmp_path):
    write_biwi_crops(tmp_path)
    ds = load_dataset("biwi-crops", tmp_path, sequences=["7,12"])
    assert sorted({s.sequence for s in ds}) == ["07", "12"] and len(ds) == 5
    assert len(load_dataset("biwi-crops", tmp_path, sequences=["7"])) == 2
    assert len(load_dataset("biwi-crops", tmp_path, sequences=["10-12"])) == 3
    limited = load_dataset("biwi-crops", tmp_path, limit=3)
    assert len(limited) == 3
    assert {s.sequence for s in limited} == {"01", "07", "12"}  # spread over the set, not the first three
    # the same data by the labels file or the crops folder
    assert len(load_dataset("biwi-crops", tmp_path / "labels.csv")) == 8
    assert len(load_dataset("biwi-crops", tmp_path / "crops")) == 8


def test_biwi_crops_bad_labels(tmp_path):
    (tmp_path / "crops").mkdir()
    (tmp_path / "labels.csv").write_text("image,yaw\n01/a.png,3\n")
    with pytest.raises(DatasetError, match="columns"):
        load_dataset("biwi-crops", tmp_path)
    (tmp_path / "labels.csv").write_text("image,yaw_deg,pitch_deg,roll_deg\n01/a.png,x,1,2\n")
    assert load_dataset("biwi-crops", tmp_path).skipped_counts() == {"bad label": 1}


# --- BIWI raw frames -----------------------------------------------------------------------------------------

RGB_CAL = "517.679 0 320 \n0 517.679 240.5 \n0 0 1 \n\n0 0 0 0 \n\n1 0 0 \n0 1 0 \n0 0 1 \n\n10 0 0 \n\n640 480\n"


def write_biwi_frame(folder, index, rotation, centre_mm):
    write_png(folder / f"frame_{index:05d}_rgb.png", (48, 64, 3))
    rows = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in rotation)
    (folder / f"frame_{index:05d}_pose.txt").write_text(rows + "\n\n" + " ".join(map(str, centre_mm)) + "\n")


def test_biwi_frames(tmp_path):
    # Pose file of the README's frame 00019: expected (yaw, pitch, roll) = (10.81, -0.37, -7.17)
    rot = np.array([[0.97456, 0.122613, 0.187612], [-0.123613, 0.99231, -0.00640205],
                    [-0.186954, -0.0169521, 0.982222]])
    seq = tmp_path / "12"
    seq.mkdir()
    (seq / "rgb.cal").write_text(RGB_CAL)
    write_biwi_frame(seq, 19, rot, (42.27, -30.35, 905.84))
    write_biwi_frame(seq, 20, np.eye(3), (0.0, 0.0, 1000.0))
    (seq / "frame_00021_pose.txt").write_text("1 0 0\n0 1 0\n0 0 1\n\n0 0 900\n")  # image missing
    ds = load_dataset("biwi-frames", tmp_path)
    assert len(ds) == 2 and ds.skipped_counts() == {"missing file": 1}
    s = ds.samples[0]
    np.testing.assert_allclose(s.ypr, [10.81, -0.37, -7.17], atol=0.01)
    assert s.sequence == "12"
    assert s.intrinsics.fx == pytest.approx(517.679) and s.intrinsics.cy == pytest.approx(240.5)
    # head centre (10 mm shifted by the rgb.cal translation) projected through the intrinsics
    u = 517.679 * (42.27 + 10.0) / 905.84 + 320.0
    v = 517.679 * -30.35 / 905.84 + 240.5
    assert s.face_xy == pytest.approx((u, v))
    np.testing.assert_allclose(ds.samples[1].ypr, [0.0, 0.0, 0.0], atol=1e-9)
    assert len(load_dataset("biwi-frames", tmp_path, sequences=["11"])) == 0


def test_biwi_frames_without_calibration_and_bad_pose(tmp_path):
    write_biwi_frame(tmp_path, 1, np.eye(3), (0.0, 0.0, 900.0))
    write_png(tmp_path / "frame_00002_rgb.png")
    (tmp_path / "frame_00002_pose.txt").write_text("1 0 0\n")
    ds = load_dataset("biwi-frames", tmp_path)
    assert len(ds) == 1 and ds.skipped_counts() == {"bad pose file": 1}
    assert ds.samples[0].intrinsics is None and ds.samples[0].face_xy is None and ds.samples[0].sequence is None


# --- OpenPose heatmap arrays ---------------------------------------------------------------------------------

def write_npz(path, n=6):
    rng = np.random.default_rng(0)
    heatmaps = rng.integers(0, 256, (n, 96, 96, 5)).astype(np.uint8)
    names = np.array([f"{seq:02d}/frame_{i:05d}_rgb.png" for i, seq in enumerate([1, 1, 2, 2, 13, 13][:n])])
    ypr = rng.uniform(-60, 60, (n, 3)).astype(np.float32)
    np.savez(path, heatmaps=heatmaps, images=names, ypr_deg=ypr)
    return heatmaps, names, ypr


def test_openpose_npz(tmp_path):
    heatmaps, names, ypr = write_npz(tmp_path / "openpose_heatmaps.npz")
    ds = load_dataset("openpose-npz", tmp_path)  # the folder holding openpose_heatmaps.npz
    assert len(ds) == 6 and ds.names == list(names)
    np.testing.assert_array_equal(ds.heatmaps, heatmaps)
    np.testing.assert_allclose(ds.ypr, ypr.astype(np.float64))
    held_out = load_dataset("openpose-npz", tmp_path / "openpose_heatmaps.npz", sequences=["13"])
    assert held_out.names == list(names[4:])
    np.testing.assert_array_equal(held_out.heatmaps, heatmaps[4:])
    assert all(s.heatmaps is not None and s.image_path is None for s in held_out)
    np.testing.assert_array_equal(held_out.samples[1].heatmaps, heatmaps[5])
    as_float = datasets.heatmaps_to_float(held_out.heatmaps)
    assert as_float.dtype == np.float32 and as_float.max() <= 1.0
    np.testing.assert_allclose(as_float * 255.0, heatmaps[4:].astype(np.float32), atol=1e-3)
    sub = held_out.subset([False, True])
    assert sub.names == [names[5]]
    np.testing.assert_array_equal(sub.samples[0].heatmaps, heatmaps[5])


def test_openpose_npz_errors(tmp_path):
    with pytest.raises(DatasetError):
        load_dataset("openpose-npz", tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", heatmaps=np.zeros((2, 10, 10, 5), np.uint8), ypr_deg=np.zeros((2, 3)))
    with pytest.raises(DatasetError, match="96"):
        load_dataset("openpose-npz", tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", heatmaps=np.zeros((2, 96, 96, 5), np.uint8), ypr_deg=np.zeros((3, 3)))
    with pytest.raises(DatasetError, match="disagree"):
        load_dataset("openpose-npz", tmp_path / "short.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError):
        load_dataset("openpose-npz", tmp_path / "junk.npz")
    with pytest.raises(DatasetError, match="format"):
        load_dataset("coco", tmp_path)


# --- helpers -------------------------------------------------------------------------------------------------

def test_spread_limit_and_range():
    assert spread_limit(10, None).tolist() == list(range(10))
    assert spread_limit(10, 20).tolist() == list(range(10))
    assert spread_limit(10, 3).tolist() == [0, 4, 9]  # (0, 4.5, 9) rounded half to even
    assert spread_limit(10, 0).tolist() == []
    mask = within_range(np.array([[10, 20, 30], [99, -99, 0], [100, 0, 0], [0, 0, -99.5]]))
    assert mask.tolist() == [True, True, False, False]


def test_every_within_range_counts_over_all_samples_and_keeps_the_benchmark_range() -> None:
    from pathlib import Path

    yaws = (0.0, 120.0, 10.0, 20.0, 100.0, 30.0, 40.0)
    data = datasets.Dataset("aflw2000", Path("."), [datasets.Sample(f"s{i}", np.array([y, 0.0, 0.0]))
                                                    for i, y in enumerate(yaws)])
    assert [s.name for s in datasets.every_within_range(data)] == ["s0", "s2", "s3", "s5", "s6"]
    assert [s.name for s in datasets.every_within_range(data, 2)] == ["s0", "s2", "s6"]  # s4 is beyond 99 deg
    assert [s.name for s in datasets.every_within_range(data, 2, offset=1)] == ["s3", "s5"]  # s1 is beyond 99 deg
