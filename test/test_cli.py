"""The command line: argument parsing, configuration from flags and YAML, and `image` / `video` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headpose_ros.estimator.errors import ConfigError
from headpose_ros.tools import cli
from headpose_ros.tools.common import (config_from_args, config_from_flag_string, estimator_settings_from_yaml,
                                       parse_intrinsics)
from tools_fakes import make_model_file, register_fake_backends

FACE_KEYS = {"image", "face", "box", "keypoints", "yaw", "pitch", "roll", "score", "position", "position_is_ray"}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained model of the paper's architecture (the CLI's plumbing does not depend on its accuracy)."""
    return make_model_file(tmp_path_factory.mktemp("model"))


def write_png(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- parsing -------------------------------------------------------------------------------------------------

def test_parse_commands():
    parser = cli.build_parser()
    a = parser.parse_args(["image", "a.png", "b.png", "--out", "d", "--detector", "dlib_hog", "--device", "cpu"])
    assert a.command == "image" and a.paths == ["a.png", "b.png"] and a.out == "d" and a.func.__name__ == "run_image"
    v = parser.parse_args(["video", "0", "--max-frames", "5", "--out", "x.mp4"])
    assert v.source == "0" and v.max_frames == 5 and v.func.__name__ == "run_video"
    e = parser.parse_args(["eval", "--format", "biwi-crops", "p", "--sequences", "09", "10", "--limit", "5"])
    assert e.format == "biwi-crops" and e.sequences == ["09", "10"] and e.limit == 5 and e.max_angle == 99.0
    b = parser.parse_args(["bench", "--configs", "hog=--detector dlib_hog", "--frames", "3"])
    assert b.configs == ["hog=--detector dlib_hog"] and b.frames == 3
    for bad in (["eval", "p"], ["eval", "--format", "coco", "p"], ["image"], ["image", "a.png", "--device", "tpu"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_config_from_flags_and_yaml(tmp_path):
    parser = cli.build_parser()
    args = parser.parse_args(["image", "a.png", "--model", "m.weights.h5", "--keypoint-threshold", "0.4",
                              "--detector-option", "models=full", "--detector-option", "min_score=0.2"])
    cfg = config_from_args(args)
    assert cfg.model == "m.weights.h5" and cfg.keypoint_threshold == 0.4 and cfg.detector == "tiled"
    assert cfg.detector_options == {"models": "full", "min_score": 0.2}

    plain = tmp_path / "plain.yaml"
    plain.write_text("detector: dlib_hog\nmax_faces: 3\n")
    args = parser.parse_args(["image", "a.png", "--config", str(plain), "--max-faces", "5"])
    cfg = config_from_args(args)
    assert cfg.detector == "dlib_hog" and cfg.max_faces == 5  # the flag overrides the file

    section = tmp_path / "section.yaml"
    section.write_text("estimator:\n  keypoints: mediapipe_pose\nother: 1\n")
    assert estimator_settings_from_yaml(section) == {"keypoints": "mediapipe_pose"}
    ros = tmp_path / "ros.yaml"
    ros.write_text("headpose_node:\n  ros__parameters:\n    device: cpu\n    min_face_score: 0.7\n"
                   "    max_rate: 5.0\n    detector_options: '{models: full}'\n")
    settings = estimator_settings_from_yaml(ros)  # read as the node reads its parameters file
    assert settings["device"] == "cpu" and settings["min_face_score"] == 0.7
    assert settings["detector_options"] == {"models": "full"} and "max_rate" not in settings
    shipped = estimator_settings_from_yaml(Path(__file__).resolve().parents[1] / "config" / "headpose.yaml")
    assert shipped["detector"] == "tiled" and isinstance(shipped["detector_options"], dict)

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("detectr: dlib_hog\n")
    with pytest.raises(ConfigError, match="detectr"):
        config_from_args(parser.parse_args(["image", "a.png", "--config", str(unknown)]))
    with pytest.raises(ConfigError, match="does not exist"):
        config_from_args(parser.parse_args(["image", "a.png", "--config", str(tmp_path / "none.yaml")]))
    with pytest.raises(ConfigError):
        config_from_args(parser.parse_args(["image", "a.png", "--min-face-score", "2"]))
    with pytest.raises(ConfigError):
        config_from_args(parser.parse_args(["image", "a.png", "--detector-option", "novalue"]))


def test_config_from_flag_string(tmp_path):
    cfg = config_from_flag_string("--detector dlib_cnn --device cpu", {"model": "x.weights.h5"})
    assert cfg.detector == "dlib_cnn" and cfg.device == "cpu" and cfg.model == "x.weights.h5"
    y = tmp_path / "c.yaml"
    y.write_text("detector: dlib_hog\n")
    assert config_from_flag_string(str(y)).detector == "dlib_hog"
    with pytest.raises(ConfigError):
        config_from_flag_string("--detector dlib_cnn --bogus 3")


def test_parse_intrinsics():
    cam = parse_intrinsics("500, 501,320,240.5")
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500, 501, 320, 240.5)
    assert parse_intrinsics(None) is None
    for bad in ("1,2,3", "a,b,c,d", "-5,5,1,1", "nan,1,1,1"):
        with pytest.raises(ConfigError):
            parse_intrinsics(bad)


# --- image and video end to end --------------------------------------------------------------------------

def test_image_end_to_end_real_backends(tmp_path, model, capsys):
    """The astronaut portrait through mediapipe + face_mesh + the regressor, via `headpose-ros image`."""
    pytest.importorskip("mediapipe", reason="the default backends need mediapipe")
    skimage_data = pytest.importorskip("skimage.data", reason="the astronaut portrait ships with scikit-image")
    image = write_png(tmp_path / "in" / "astronaut.png", skimage_data.astronaut()[:, :, ::-1].copy())
    out = tmp_path / "out"
    code = cli.main(["image", str(image), "--out", str(out), "--json", str(tmp_path / "r.json"),
                     "--model", str(model), "--device", "cpu"])
    assert code == 0
    records = json_lines(capsys.readouterr().out)
    assert len(records) == 1 and set(records[0]) == FACE_KEYS
    rec = records[0]
    assert rec["image"] == str(image) and rec["face"] == 0
    x0, y0, x1, y1 = rec["box"]
    assert 150 < (x0 + x1) / 2 < 300 and 80 < (y0 + y1) / 2 < 200  # her face, in the upper middle
    assert rec["keypoints"]["right_eye"][0] < rec["keypoints"]["left_eye"][0]
    assert all(np.isfinite([rec["yaw"], rec["pitch"], rec["roll"]]))
    import cv2

    annotated = cv2.imread(str(out / "astronaut.png"))
    assert annotated.shape == (512, 512, 3)
    assert np.any(annotated != cv2.imread(str(image)))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"][0]["faces"][0]["box"] == rec["box"]
    assert set(report["images"][0]["stages_ms"]) >= {"detect", "keypoints", "regress", "total"}


def test_image_bad_files_and_no_face(tmp_path, model, monkeypatch, capsys):
    register_fake_backends(monkeypatch)
    face = write_png(tmp_path / "face.png", np.full((64, 64, 3), 255, np.uint8))
    dark = write_png(tmp_path / "dark.png", np.zeros((64, 64, 3), np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    grey16 = write_png(tmp_path / "grey16.png", np.full((64, 64), 65535, np.uint16))
    code = cli.main(["image", str(face), str(dark), str(broken), str(empty), str(grey16), "--detector", "bright",
                     "--keypoints", "layout", "--model", str(model), "--device", "cpu", "--out",
                     str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1  # some inputs could not be read
    records = json_lines(captured.out)
    assert [r["image"] for r in records] == [str(face), str(grey16)]  # 16-bit grey read and scaled
    assert "broken.png" in captured.err and "empty.png" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dark.png", "face.png", "grey16.png"]
    # a folder is expanded to its images
    code = cli.main(["image", str(tmp_path / "out"), "--detector", "bright", "--keypoints", "layout", "--model",
                     str(model), "--device", "cpu"])
    assert code == 0 and len(json_lines(capsys.readouterr().out)) == 2


def test_image_errors(tmp_path, model, monkeypatch, capsys):
    register_fake_backends(monkeypatch)
    face = write_png(tmp_path / "face.png", np.full((64, 64, 3), 255, np.uint8))
    common = ["--detector", "bright", "--keypoints", "layout", "--device", "cpu"]
    assert cli.main(["image", str(face), "--out", str(tmp_path), "--model", str(model), *common]) == 2
    assert "overwrite" in capsys.readouterr().err
    missing_model = tmp_path / "nothing.weights.h5"
    assert cli.main(["image", str(face), "--model", str(missing_model), *common]) == 2
    assert str(missing_model) in capsys.readouterr().err
    assert cli.main(["image", str(tmp_path / "nope.png"), "--model", str(model), *common]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_video_from_folder_and_file(tmp_path, model, monkeypatch, capsys):
    import cv2

    register_fake_backends(monkeypatch)
    folder = tmp_path / "frames"
    for i in range(4):
        image = np.zeros((96, 128, 3), np.uint8)
        if i % 2 == 0:
            image[20:70, 30:80] = 255  # a 'face' for the bright-blob detector
        write_png(folder / f"f{i:03d}.png", image)
    common = ["--detector", "bright", "--keypoints", "layout", "--model", str(model), "--device", "cpu"]
    video = tmp_path / "annotated.avi"
    assert cli.main(["video", str(folder), "--out", str(video), "--json", str(tmp_path / "v.json"), *common]) == 0
    records = json_lines(capsys.readouterr().out)
    assert [r["frame"] for r in records] == [0, 2]
    assert records[0]["image"].endswith("f000.png") and FACE_KEYS | {"frame"} >= set(records[0])
    summary = json.loads((tmp_path / "v.json").read_text())
    assert summary["frames"] == 4 and summary["faces"] == 2

    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == 4  # every frame written, annotated
    assert cli.main(["video", str(video), "--max-frames", "3", "--out", str(tmp_path / "frames_out"), *common]) == 0
    records = json_lines(capsys.readouterr().out)
    assert [r["frame"] for r in records] == [0, 2] and "image" not in records[0]
    assert len(list((tmp_path / "frames_out").iterdir())) == 3


def test_video_bad_sources(tmp_path, model, monkeypatch, capsys):
    register_fake_backends(monkeypatch)
    common = ["--detector", "bright", "--keypoints", "layout", "--model", str(model), "--device", "cpu"]
    assert cli.main(["video", str(tmp_path / "missing.mp4"), *common]) == 2
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    assert cli.main(["video", str(tmp_path / "junk.mp4"), *common]) == 2
    (tmp_path / "emptydir").mkdir()
    assert cli.main(["video", str(tmp_path / "emptydir"), *common]) == 2
    assert "headpose-ros video: error" in capsys.readouterr().err
