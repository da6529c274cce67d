"""The command line's error handling, help and version: every input problem is one line on stderr and an exit
status (1: some inputs skipped, the others processed; 2: nothing could be done), never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from headpose_ros import __version__
from headpose_ros.tools import cli
from tools_fakes import make_model_file, register_fake_backends

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("model"))


@pytest.fixture
def common(model, monkeypatch) -> list[str]:
    """Flags for the stand-in backends: a bright blob is a 'face'."""
    register_fake_backends(monkeypatch)
    return ["--detector", "bright", "--keypoints", "layout", "--model", str(model), "--device", "cpu"]


def write_png(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def face_image(path: Path) -> Path:
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:70, 30:80] = 255
    return write_png(path, image)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_errors(err: str) -> None:
    assert "Traceback" not in err


# --- image --------------------------------------------------------------------------------------------------

def test_image_processes_the_good_file_and_reports_the_missing_one(tmp_path, common, capsys):
    good = face_image(tmp_path / "a.png")
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    code = cli.main(["image", str(good), str(missing), "--out", str(out), "--json", str(tmp_path / "r.json"),
                     *common])
    captured = capsys.readouterr()
    assert code == 1
    assert [r["image"] for r in json_lines(captured.out)] == [str(good)]
    assert f"{missing} does not exist" in captured.err and "1 input could not be read" in captured.err
    assert [p.name for p in out.iterdir()] == ["a.png"]
    report = json.loads((tmp_path / "r.json").read_text())["images"]
    assert {r["image"] for r in report} == {str(good), str(missing)}
    assert_one_line_errors(captured.err)
    # the missing file first: same result
    assert cli.main(["image", str(missing), str(good), *common]) == 1
    assert len(json_lines(capsys.readouterr().out)) == 1


def test_image_empty_and_unreadable_folders(tmp_path, common, capsys, monkeypatch):
    good = face_image(tmp_path / "in" / "a.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    locked = tmp_path / "locked"
    locked.mkdir()
    face_image(locked / "b.png")
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == locked:  # a folder this user may not list (chmod does not stop root, so it is simulated)
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code = cli.main(["image", str(empty), str(locked), str(tmp_path / "in"), *common])
    captured = capsys.readouterr()
    assert code == 1
    assert [r["image"] for r in json_lines(captured.out)] == [str(good)]
    assert f"folder {empty} holds no image files" in captured.err
    assert f"folder {locked} cannot be read (Permission denied)" in captured.err
    assert_one_line_errors(captured.err)
    # nothing to process at all: exit 2, and the model is never loaded
    assert cli.main(["image", str(empty), "--model", str(tmp_path / "no.weights.h5"), *common[:4]]) == 2
    err = capsys.readouterr().err
    assert "holds no image files" in err and "no image file to process" in err and "no.weights.h5" not in err


def test_image_bad_outputs_fail_before_anything_runs(tmp_path, common, capsys):
    good = face_image(tmp_path / "a.png")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    never = ["--model", str(tmp_path / "no.weights.h5"), *common[:4]]  # a missing model: must not be reached
    assert cli.main(["image", str(good), "--out", str(a_file), *never]) == 2
    assert "a file is in the way" in capsys.readouterr().err
    assert cli.main(["image", str(good), "--json", str(a_file / "r.json"), *never]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["image", str(good), "--json", str(tmp_path), *never]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a file" in err
    assert_one_line_errors(err)


@pytest.mark.parametrize("content, message", [
    ("detector: [\n", "cannot be read as YAML"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("detectr: dlib_hog\n", "detectr"),
    ("headpose_node:\n  ros__parameters:\n    max_faces: 'x'\n", "max_faces"),
    (None, "does not exist"),
    ("folder", "cannot be read"),
])
def test_bad_config_file(tmp_path, common, capsys, content, message):
    good = face_image(tmp_path / "a.png")
    config = tmp_path / "c.yaml"
    if content == "folder":
        config.mkdir()
    elif content is not None:
        config.write_text(content)
    assert cli.main(["image", str(good), "--config", str(config), *common]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("headpose-ros image: error: ") and message in captured.err
    assert_one_line_errors(captured.err)


# --- video --------------------------------------------------------------------------------------------------

def test_video_of_a_file_that_is_not_a_video_writes_nothing(tmp_path, common, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    for out in (tmp_path / "out.mp4", tmp_path / "frames"):
        assert cli.main(["video", str(text), "--out", str(out), "--json", str(tmp_path / "s.json"), *common]) == 2
        captured = capsys.readouterr()
        assert f"cannot open video source {text}: not a video OpenCV can decode" in captured.err
        assert captured.out == "" and not out.exists() and not (tmp_path / "s.json").exists()
        assert_one_line_errors(captured.err)


def test_video_that_opens_but_has_no_frame_is_an_error(tmp_path, common, capsys):
    """A container OpenCV opens but that holds no frame used to exit 0 having written nothing."""
    import cv2

    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()
    capture = cv2.VideoCapture(str(empty))
    opens, reads = capture.isOpened(), capture.read()[0]
    capture.release()
    if not opens or reads:
        pytest.skip("this OpenCV build does not open a frameless AVI (the case this test covers)")
    out = tmp_path / "out.mp4"
    assert cli.main(["video", str(empty), "--out", str(out), *common]) == 2
    captured = capsys.readouterr()
    assert f"video source {empty} gave no frame" in captured.err and "nothing was written" in captured.err
    assert not out.exists() and captured.out == ""
    assert_one_line_errors(captured.err)


def test_video_folder_with_unreadable_images(tmp_path, common, capsys):
    folder = tmp_path / "frames"
    face_image(folder / "f000.png")
    (folder / "f001.png").write_bytes(b"not a png")
    face_image(folder / "f002.png")
    assert cli.main(["video", str(folder), "--out", str(tmp_path / "annotated"), *common]) == 1
    captured = capsys.readouterr()
    assert [r["frame"] for r in json_lines(captured.out)] == [0, 2]
    assert "f001.png" in captured.err and "1 image could not be read" in captured.err
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["f000.png", "f002.png"]
    # only unreadable images: no frame at all
    (folder / "f000.png").write_bytes(b"")
    (folder / "f002.png").write_bytes(b"x")
    assert cli.main(["video", str(folder), *common]) == 2
    assert "gave no frame" in capsys.readouterr().err


def test_video_bad_output_fails_before_the_source_is_opened(tmp_path, common, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert cli.main(["video", "0", "--out", str(a_file), *common]) == 2  # camera 0 is never opened
    assert "a file is in the way" in capsys.readouterr().err


# --- version and help ---------------------------------------------------------------------------------------

def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"headpose-ros {__version__}"
    package_xml = (ROOT / "package.xml").read_text()
    assert f"<version>{__version__}</version>" in package_xml
    assert f'version="{__version__}"' in (ROOT / "setup.py").read_text()


def all_help_texts() -> dict[str, str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {"": parser.format_help(), **{name: p.format_help() for name, p in sub.choices.items()}}


def test_help_is_plain_text():
    texts = all_help_texts()
    assert set(texts) >= {"", "image", "video", "eval", "bench", "train", "bag", "soak", "fit-geometry"}
    for name, text in texts.items():
        assert not re.search(r"``|:(meth|func|class|mod|attr|data|exc):`", text), (name, text)
    assert cli.plain_text("see :meth:`FaceResult.to_json` and ``--max-angle``") == \
        "see FaceResult.to_json and --max-angle"


def test_help_says_what_the_pose_means():
    texts = all_help_texts()
    for name in ("", "image", "video"):
        flat = " ".join(texts[name].split())
        assert "the pose is in the camera's optical frame" in flat
        assert "the pose is the one relative to the line of sight" in flat
        assert "no guessed focal length is used to turn it" in flat
        assert "unit-depth ray" in flat


def test_verbose_after_the_command(tmp_path):
    parser = cli.build_parser()
    assert parser.parse_args(["image", "a.png", "-v"]).verbose is True
    assert parser.parse_args(["-v", "image", "a.png"]).verbose is True
    assert parser.parse_args(["image", "a.png"]).verbose is False
