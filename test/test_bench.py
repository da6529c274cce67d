"""The benchmark's own input frames and report structure (no speed is asserted: figures live in `bench` only)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from headpose_ros.tools import bench
from tools_fakes import make_model_file, register_fake_backends


def test_frames_are_deterministic_and_sized():
    for count in bench.FACE_COUNTS:
        a, b = bench.make_frames(count, 3, seed=1), bench.make_frames(count, 3, seed=1)
        assert len(a) == 3 and all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in a)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not np.array_equal(a[0], a[1])  # jittered variants


def test_default_detector_finds_the_pasted_faces():
    """The figures must describe frames whose faces are found: mediapipe on the bench's own frames."""
    pytest.importorskip("mediapipe", reason="the default detector needs mediapipe")
    from headpose_ros.estimator.detectors import DETECTORS

    detector = DETECTORS.create("mediapipe")
    try:
        for count, least in ((1, 1), (4, 4), (16, 12)):
            found = [len(detector.detect(f)) for f in bench.make_frames(count, 4)]
            assert min(found) >= least and max(found) <= count, (count, found)
    finally:
        detector.close()


def test_bench_command_with_stand_in_backends(tmp_path, monkeypatch, capsys):
    register_fake_backends(monkeypatch)
    weights = make_model_file(tmp_path / "model")
    parser = argparse.ArgumentParser()
    bench.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--frames", "2", "--repeats", "2", "--detector", "centre", "--keypoints",
                              "layout", "--model", str(weights), "--json", str(tmp_path / "b.json"),
                              "--configs", "twice=--keypoint-threshold 0.5", "broken=--detector nonexistent"])
    assert args.func(args) == 1  # one configuration could not be measured: reported, the others measured
    out = json.loads((tmp_path / "b.json").read_text())
    assert set(out["fps"]) == {"default", "twice"} and set(out["errors"]) == {"broken"}
    assert set(out["fps"]["default"]) == {"1", "4", "16"}
    assert out["config"]["default"]["device"] == "cpu" and out["config"]["twice"]["keypoint_threshold"] == 0.5
    stages = out["stages_ms"]["default"]["1"]
    assert set(stages) == {"detect", "keypoints", "regress", "total", "heatmaps"}
    assert all(set(v) == {"median", "p95"} for v in stages.values())
    # the centre detector finds one face whatever the frame holds: the report says so
    assert out["faces_found"]["default"]["16"] == {"expected": 16, "min": 1, "median": 1.0, "max": 1}
    assert set(out["regress_ms_per_face"]["default"]) == {"1", "4", "16"}
    assert set(out["regress_ms_by_apparent_yaw"]["default"]) == {"all"}  # a model without a companion
    assert out["peak_rss_mb"]["default"] > 0 and out["first_frame_ms"]["default"] > 0
    assert "cpu_count" in out["machine"] and "versions" in out["machine"]
    printed = capsys.readouterr().out
    assert "fewer faces found than placed" in printed and "[broken] not measured" in printed


def test_regression_time_by_apparent_yaw_has_a_band_each_side_of_the_companions_ramp():
    from headpose_ros.estimator.regressor import HeadPoseRegressor

    regressor = HeadPoseRegressor("default", "cpu")
    lo, hi = regressor.blend_apparent_deg
    by_yaw = bench.regress_ms_by_apparent_yaw(regressor, 0.3, repeats=1, per_band=3)
    assert list(by_yaw) == [f"0-{lo:g}", f"{lo:g}-{hi:g} (both models)", f"{hi:g}-180"]
    assert all(ms > 0 for ms in by_yaw.values())
    alone = bench.regress_ms_by_apparent_yaw(HeadPoseRegressor("default", "cpu", companion=False), 0.3, 1, 3)
    assert list(alone) == ["all"]
