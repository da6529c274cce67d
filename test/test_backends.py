"""The dlib detectors, the mediapipe_pose keypoint source and the openpose keypoint source (with a fake pyopenpose).

Real-image checks use the public-domain astronaut portrait bundled with scikit-image (512x512 RGB). Its eye region
below was read off the image by eye (subject's right eye centre near (203, 101), left eye near (246, 104)).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import types
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headpose_ros.estimator.detectors import DETECTORS
from headpose_ros.estimator.errors import BackendUnavailableError, ConfigError, ModelFileError
from headpose_ros.estimator.keypoints import KEYPOINT_SOURCES
from headpose_ros.estimator.types import (HEATMAP_SIZE, LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE, FaceBox,
                                          FaceKeypoints)

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the astronaut test portrait")

#: (x0, y0, x1, y1) of the astronaut's two eyes, image pixels.
EYES = (190.0, 92.0, 258.0, 112.0)
#: A generous hand-drawn box around the astronaut's face (forehead to chin, ear to ear).
FACE_BOX = FaceBox(163.0, 60.0, 268.0, 175.0, 1.0)


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])


def grey_frame() -> np.ndarray:
    return np.full((480, 640, 3), 128, np.uint8)


def contains(box: FaceBox, region: tuple[float, float, float, float]) -> bool:
    return box.x0 <= region[0] and box.y0 <= region[1] and box.x1 >= region[2] and box.y1 >= region[3]


# === dlib detectors ==============================================================================================

dlib_face = pytest.importorskip("headpose_ros.estimator.detectors.dlib_face")


def needs_dlib() -> Any:
    return pytest.importorskip("dlib", reason="dlib (pip install dlib-bin) is a dependency of the dlib backends")


@pytest.fixture(scope="module")
def cnn() -> Any:
    needs_dlib()
    return DETECTORS.create("dlib_cnn")


@pytest.fixture(scope="module")
def cnn_on_astronaut(cnn: Any, astronaut_bgr: np.ndarray) -> list[FaceBox]:
    return cnn.detect(astronaut_bgr)


def test_dlib_cnn_finds_the_astronaut(cnn_on_astronaut: list[FaceBox]) -> None:
    assert len(cnn_on_astronaut) == 1
    box = cnn_on_astronaut[0]
    assert contains(box, EYES)
    assert 0.5 < box.score <= 1.0
    assert 60 < box.width < 160 and 60 < box.height < 160


def test_dlib_cnn_takes_bgr_and_gives_dlib_rgb_boxes(cnn: Any, cnn_on_astronaut: list[FaceBox],
                                                     astronaut_bgr: np.ndarray) -> None:
    raw = cnn._net(np.ascontiguousarray(astronaut_bgr[:, :, ::-1]), 0)  # dlib on the RGB image it expects
    assert len(raw) == 1
    r = raw[0].rect
    box = cnn_on_astronaut[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
    assert box.score == pytest.approx(dlib_face.margin_to_score(raw[0].confidence, dlib_face.MMOD_SCORE_SCALE))


def test_dlib_cnn_finds_nothing_in_a_grey_frame(cnn: Any) -> None:
    assert cnn.detect(grey_frame()) == []


def test_dlib_cnn_logs_its_device(caplog: pytest.LogCaptureFixture) -> None:
    dlib = needs_dlib()
    with caplog.at_level(logging.INFO, logger=dlib_face.__name__):
        detector = dlib_face.DlibCnnFaceDetector()
    expected = "GPU" if dlib.DLIB_USE_CUDA else "CPU"
    assert any(expected in rec.getMessage() for rec in caplog.records)
    assert detector.uses_cuda == bool(dlib.DLIB_USE_CUDA)


@pytest.mark.parametrize("upsample", [0, 1])
def test_dlib_hog_finds_the_astronaut(astronaut_bgr: np.ndarray, upsample: int) -> None:
    needs_dlib()
    boxes = [b for b in DETECTORS.create("dlib_hog", upsample=upsample).detect(astronaut_bgr) if b.score >= 0.5]
    best = boxes[0]
    assert contains(best, EYES)
    assert best.score > 0.8
    if upsample == 0:  # the default: exactly one face at dlib's own threshold
        assert len(boxes) == 1


def test_dlib_hog_finds_nothing_in_a_grey_frame() -> None:
    needs_dlib()
    assert DETECTORS.create("dlib_hog").detect(grey_frame()) == []
    assert DETECTORS.create("dlib_hog", min_score=0.05).detect(grey_frame()) == []


def test_dlib_hog_scores_are_dlib_margins_through_the_logistic(astronaut_bgr: np.ndarray) -> None:
    dlib = needs_dlib()
    rects, margins, _ = dlib.get_frontal_face_detector().run(np.ascontiguousarray(astronaut_bgr[:, :, ::-1]), 0, 0.0)
    boxes = DETECTORS.create("dlib_hog", upsample=0, min_score=0.5).detect(astronaut_bgr)
    assert len(boxes) == len(rects) >= 1
    got = sorted((b.x0, b.y0, round(b.score, 9)) for b in boxes)
    want = sorted((r.left(), r.top(), round(dlib_face.margin_to_score(m, dlib_face.HOG_SCORE_SCALE), 9))
                  for r, m in zip(rects, margins))
    assert got == want


def test_dlib_hog_lower_min_score_returns_weaker_candidates(astronaut_bgr: np.ndarray) -> None:
    needs_dlib()
    strict = DETECTORS.create("dlib_hog", min_score=0.5).detect(astronaut_bgr)
    loose = DETECTORS.create("dlib_hog", min_score=0.1).detect(astronaut_bgr)
    assert len(loose) > len(strict)
    assert all(b.score >= 0.1 for b in loose) and all(b.score >= 0.5 for b in strict)
    assert [b.score for b in loose] == sorted((b.score for b in loose), reverse=True)


def test_dlib_detectors_accept_grey_images(astronaut_bgr: np.ndarray) -> None:
    needs_dlib()
    grey = astronaut_bgr.mean(axis=2).astype(np.uint8)
    boxes = DETECTORS.create("dlib_hog").detect(grey)
    assert boxes and contains(boxes[0], EYES)


def test_to_rgb_swaps_channels() -> None:
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30
    rgb = dlib_face._to_rgb(bgr)
    assert rgb.flags.c_contiguous and tuple(rgb[1, 2]) == (30, 20, 10)


@given(st.floats(-50.0, 50.0), st.sampled_from([dlib_face.MMOD_SCORE_SCALE, dlib_face.HOG_SCORE_SCALE]))
def test_margin_score_mapping(margin: float, scale: float) -> None:
    s = dlib_face.margin_to_score(margin, scale)
    assert 0.0 <= s <= 1.0
    if abs(margin) > 1e-9:
        assert (s > 0.5) == (margin > 0)
    assert dlib_face.margin_to_score(margin + 0.1, scale) >= s
    if 1e-5 < s < 1 - 1e-5:
        assert dlib_face.score_to_margin(s, scale) == pytest.approx(margin, abs=1e-6)


def test_margin_score_anchors() -> None:
    assert dlib_face.margin_to_score(0.0, 0.35) == 0.5
    assert dlib_face.margin_to_score(-1e6, 0.35) == 0.0  # no overflow
    assert dlib_face.margin_to_score(1e6, 0.35) == 1.0
    # A typical clear face (margin about 1.06 for MMOD, 1.3 for HOG) scores about 0.95.
    assert 0.93 < dlib_face.margin_to_score(1.06, dlib_face.MMOD_SCORE_SCALE) < 0.97
    assert 0.93 < dlib_face.margin_to_score(1.3, dlib_face.HOG_SCORE_SCALE) < 0.97


@pytest.mark.parametrize("upsample", [-1, 5, 1.5, True, "1"])
def test_dlib_rejects_bad_upsample(upsample: object) -> None:
    needs_dlib()
    with pytest.raises(ConfigError, match="upsample"):
        dlib_face.DlibHogFaceDetector(upsample=upsample)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="upsample"):
        dlib_face.DlibCnnFaceDetector(upsample=upsample)  # type: ignore[arg-type]


@pytest.mark.parametrize("min_score", [0.0, 1.0, -0.2, "high", True])
def test_dlib_hog_rejects_bad_min_score(min_score: object) -> None:
    needs_dlib()
    with pytest.raises(ConfigError, match="min_score"):
        dlib_face.DlibHogFaceDetector(min_score=min_score)  # type: ignore[arg-type]


def test_unknown_dlib_option_is_a_config_error() -> None:
    needs_dlib()
    with pytest.raises(ConfigError, match="dlib_hog"):
        DETECTORS.create("dlib_hog", pyramid=2)


def test_missing_dlib_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    for cls in (dlib_face.DlibCnnFaceDetector, dlib_face.DlibHogFaceDetector):
        with pytest.raises(BackendUnavailableError, match="dlib-bin"):
            cls()


def _find_spec_without(monkeypatch: pytest.MonkeyPatch, replacement: Callable[[], Any]) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        return replacement() if name == "face_recognition_models" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


def test_missing_face_recognition_models_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_dlib()
    _find_spec_without(monkeypatch, lambda: None)
    with pytest.raises(BackendUnavailableError, match="pip install face_recognition_models"):
        dlib_face.DlibCnnFaceDetector()


def test_missing_mmod_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    needs_dlib()
    _find_spec_without(monkeypatch, lambda: types.SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    with pytest.raises(BackendUnavailableError, match="mmod_human_face_detector.dat"):
        dlib_face.DlibCnnFaceDetector()


def test_mmod_path_is_found_without_importing_the_package() -> None:
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models is not installed")
    sys.modules.pop("face_recognition_models", None)
    path = dlib_face.mmod_model_path()
    assert path.name == "mmod_human_face_detector.dat" and path.is_file()
    assert "face_recognition_models" not in sys.modules  # its __init__ needs pkg_resources


def test_model_path_override_missing_and_corrupt(tmp_path: Path) -> None:
    needs_dlib()
    missing = tmp_path / "nope.dat"
    with pytest.raises(BackendUnavailableError, match="nope.dat"):
        dlib_face.DlibCnnFaceDetector(model_path=str(missing))
    corrupt = tmp_path / "corrupt.dat"
    corrupt.write_bytes(b"not a dlib network" * 10)
    with pytest.raises(ModelFileError, match="corrupt.dat"):
        dlib_face.DlibCnnFaceDetector(model_path=str(corrupt))


# === mediapipe_pose ==============================================================================================

@pytest.fixture(scope="module")
def pose_source() -> Any:
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.21 is a dependency of mediapipe_pose")
    source = KEYPOINT_SOURCES.create("mediapipe_pose")
    yield source
    source.close()


def test_mediapipe_pose_on_the_astronaut(pose_source: Any, astronaut_bgr: np.ndarray) -> None:
    assert pose_source.heatmap_kind == "rendered"
    (found,) = pose_source.locate(astronaut_bgr, [FACE_BOX])
    assert isinstance(found, FaceKeypoints)
    xy, conf = found.keypoints.xy, found.keypoints.confidence
    x0, y0, x1, y1 = EYES
    for eye in (RIGHT_EYE, LEFT_EYE):
        assert x0 <= xy[eye, 0] <= x1 and y0 <= xy[eye, 1] <= y1
    assert xy[RIGHT_EYE, 0] < xy[LEFT_EYE, 0]  # the subject's right eye is on the image's left
    assert xy[RIGHT_EAR, 0] < xy[RIGHT_EYE, 0] and xy[LEFT_EAR, 0] > xy[LEFT_EYE, 0]
    assert xy[RIGHT_EYE, 0] < xy[NOSE, 0] < xy[LEFT_EYE, 0] and xy[NOSE, 1] > y1  # the nose below the eyes
    assert np.all((conf >= 0) & (conf <= 1)) and conf[[NOSE, RIGHT_EYE, LEFT_EYE]].min() > 0.5
    maps = found.heatmaps
    assert maps.shape == (HEATMAP_SIZE, HEATMAP_SIZE, 5) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    # The heatmap frame maps each keypoint onto its channel's peak.
    xy_hm = xy @ found.to_heatmap[:, :2].T + found.to_heatmap[:, 2]
    for k in range(5):
        if conf[k] >= pose_source.threshold:
            i, j = np.unravel_index(np.argmax(maps[:, :, k]), maps.shape[:2])
            assert abs(j + 0.5 - xy_hm[k, 0]) <= 1.0 and abs(i + 0.5 - xy_hm[k, 1]) <= 1.0


def test_mediapipe_pose_finds_no_one_in_grey(pose_source: Any, astronaut_bgr: np.ndarray) -> None:
    canvas = np.full((512, 1024, 3), 128, np.uint8)
    canvas[:, :512] = astronaut_bgr
    grey_box = FaceBox(700.0, 150.0, 800.0, 250.0, 1.0)
    found = pose_source.locate(canvas, [grey_box, FACE_BOX])
    assert len(found) == 2
    assert found[0] is None
    assert found[1] is not None and found[1].keypoints.xy[RIGHT_EYE, 0] < found[1].keypoints.xy[LEFT_EYE, 0]
    assert pose_source.locate(canvas, []) == []


def test_mediapipe_pose_keypoints_follow_the_face(pose_source: Any, astronaut_bgr: np.ndarray) -> None:
    """Moving the face (and its box) by whole pixels moves the keypoints by exactly as much; scaling scales them."""
    (base,) = pose_source.locate(astronaut_bgr, [FACE_BOX])
    dx, dy = 300, 170
    canvas = np.zeros((512 + dy, 512 + dx, 3), np.uint8)
    canvas[dy:, dx:] = astronaut_bgr
    moved_box = FaceBox(FACE_BOX.x0 + dx, FACE_BOX.y0 + dy, FACE_BOX.x1 + dx, FACE_BOX.y1 + dy)
    (moved,) = pose_source.locate(canvas, [moved_box])
    assert base is not None and moved is not None
    np.testing.assert_allclose(moved.keypoints.xy, base.keypoints.xy + [dx, dy], atol=1e-3)
    big = cv2.resize(astronaut_bgr, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    big_box = FaceBox(FACE_BOX.x0 * 2, FACE_BOX.y0 * 2, FACE_BOX.x1 * 2, FACE_BOX.y1 * 2)
    (scaled,) = pose_source.locate(big, [big_box])
    assert scaled is not None
    np.testing.assert_allclose(scaled.keypoints.xy[:3], 2 * base.keypoints.xy[:3], atol=6.0)


def test_mediapipe_pose_crop_keeps_pixel_positions(pose_source: Any) -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[120, 210] = (255, 255, 255)  # pixel (x=210, y=120), centre (210.5, 120.5)
    box = FaceBox(180.0, 90.0, 260.0, 170.0)
    crop, m = pose_source.crop(image, box, 2.0)
    assert crop.shape == (pose_source.crop_px, pose_source.crop_px, 3)
    u, v = m @ [210.5, 120.5, 1.0]
    i, j = np.unravel_index(np.argmax(crop[:, :, 0]), crop.shape[:2])
    assert abs(j + 0.5 - u) <= 1.0 and abs(i + 0.5 - v) <= 1.0
    # Outside the image the crop is black.
    corner = pose_source.crop(np.full((300, 400, 3), 200, np.uint8), FaceBox(0.0, 0.0, 60.0, 60.0), 2.0)[0]
    assert corner[0, 0].max() == 0 and corner[-1, -1].min() == 200


@pytest.mark.parametrize("options", [{"model_complexity": 3}, {"crop_scales": []}, {"crop_scales": [0.5]},
                                     {"crop_px": 10}, {"threshold": 1.5}, {"crop_shift": "down"},
                                     {"min_detection_confidence": -1}])
def test_mediapipe_pose_rejects_bad_options(options: dict[str, Any]) -> None:
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.21 is a dependency of mediapipe_pose")
    with pytest.raises(ConfigError):
        KEYPOINT_SOURCES.create("mediapipe_pose", **options)


def test_mediapipe_pose_unbundled_model_is_explained() -> None:
    mp_pose = pytest.importorskip("headpose_ros.estimator.keypoints.mediapipe_pose")
    heavy = mp_pose._mediapipe_dir() / "modules" / "pose_landmark" / "pose_landmark_heavy.tflite"
    if heavy.is_file():
        pytest.skip("the heavy pose model was downloaded into this mediapipe install")
    with pytest.raises(BackendUnavailableError, match="model_complexity 1"):
        mp_pose.MediaPipePoseKeypoints(model_complexity=2)


# === openpose (fake pyopenpose) ===================================================================================

openpose_mod = pytest.importorskip("headpose_ros.estimator.keypoints.openpose")
cv2 = pytest.importorskip("cv2", reason="OpenCV comes with mediapipe")

#: OpenPose's channels of nose, right eye, left eye, right ear, left ear, written out independently of the module.
EXPECTED_CHANNELS = {"COCO": [0, 14, 15, 16, 17], "BODY_25": [0, 15, 16, 17, 18]}
EXPECTED_PARTS = {"COCO": 18, "BODY_25": 25}


def blob_uv(c: int) -> tuple[float, float]:
    """Where the fake puts part channel c, as a fraction of the (square) input crop: all distinct."""
    return 0.1 + 0.8 * ((c * 7) % 26) / 25.0, 0.1 + 0.8 * ((c * 11) % 26) / 25.0


def blob_amplitude(c: int) -> float:
    return 100.0 + 6.0 * c  # distinct, integer, <= 255 as with heatmaps_scale 2


def make_fake_pyopenpose(vector_datum: bool = True, silent: bool = False) -> types.ModuleType:
    """A stand-in for OpenPose's pybind module: records configure() params and the input crops, and returns one
    Gaussian blob per part channel at blob_uv(c) of the input, in OpenPose's padded net-resolution layout."""
    op = types.ModuleType("pyopenpose")
    op.log = {"params": [], "inputs": [], "started": 0, "stopped": 0, "vectors": []}

    class Datum:

        def __init__(self) -> None:
            self.cvInputData: Optional[np.ndarray] = None
            self.poseHeatMaps: Optional[np.ndarray] = None
            self.poseKeypoints: Optional[np.ndarray] = None

    class WrapperPython:

        def configure(self, params: dict) -> None:
            op.log["params"].append(dict(params))

        def start(self) -> None:
            op.log["started"] += 1

        def stop(self) -> None:
            op.log["stopped"] += 1

        def emplaceAndPop(self, datums: Any) -> bool:
            op.log["vectors"].append(type(datums).__name__)
            params = op.log["params"][-1]
            assert params["heatmaps_add_parts"] is True and params["heatmaps_scale"] == 2
            w, h = (int(v) for v in params["net_resolution"].split("x"))
            parts = EXPECTED_PARTS[params["model_pose"]]
            channels = parts + (1 if params["heatmaps_add_bkg"] else 0)
            for datum in list(datums):
                img = datum.cvInputData
                op.log["inputs"].append(img.copy())
                ih, iw = img.shape[:2]
                s = min(w / iw, h / ih)  # OpenPose keeps the aspect ratio and pads bottom / right
                vw, vh = iw * s, ih * s
                ys, xs = np.mgrid[0:h, 0:w] + 0.5
                maps = np.zeros((channels, h, w), np.float32)
                sigma = max(vw, vh) / 40.0
                if not silent:
                    for c in range(parts):
                        u, v = blob_uv(c)
                        g = np.exp(-((xs - u * vw) ** 2 + (ys - v * vh) ** 2) / (2 * sigma**2))
                        maps[c] = np.round(blob_amplitude(c) * g)
                if channels > parts:
                    maps[parts] = 255.0 - maps[:parts].max(0)
                datum.poseHeatMaps = maps
            return True

    class VectorDatum(list):
        pass

    op.Datum = Datum
    op.WrapperPython = WrapperPython
    if vector_datum:
        op.VectorDatum = VectorDatum
    return op


def install_fake(monkeypatch: pytest.MonkeyPatch, fake: types.ModuleType, as_package: bool = True) -> None:
    if as_package:
        package = types.ModuleType("openpose")
        package.pyopenpose = fake  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "openpose", package)
        monkeypatch.setitem(sys.modules, "openpose.pyopenpose", fake)
        monkeypatch.setitem(sys.modules, "pyopenpose", None)
    else:
        monkeypatch.setitem(sys.modules, "openpose", None)
        monkeypatch.setitem(sys.modules, "pyopenpose", fake)


@pytest.fixture()
def model_folder(tmp_path: Path) -> Path:
    for rel in ("pose/coco/pose_deploy_linevec.prototxt", "pose/coco/pose_iter_440000.caffemodel",
                "pose/body_25/pose_deploy.prototxt", "pose/body_25/pose_iter_584000.caffemodel"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"fake")
    return tmp_path


def random_image(h: int = 300, w: int = 400) -> np.ndarray:
    return np.random.default_rng(0).integers(1, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("model_pose", ["COCO", "BODY_25"])
@pytest.mark.parametrize("net_resolution", ["96x96", "368x368", "160x96"])
def test_openpose_channels_crop_and_scaling(monkeypatch: pytest.MonkeyPatch, model_folder: Path, model_pose: str,
                                            net_resolution: str) -> None:
    fake = make_fake_pyopenpose()
    install_fake(monkeypatch, fake)
    source = KEYPOINT_SOURCES.create("openpose", model_folder=str(model_folder), model_pose=model_pose,
                                     net_resolution=net_resolution, params={"num_gpu": 1})
    assert source.heatmap_kind == "openpose"
    params = fake.log["params"][-1]
    assert params["model_folder"].rstrip("/\\") == str(model_folder)
    assert params["model_pose"] == model_pose and params["net_resolution"] == net_resolution
    assert params["heatmaps_add_parts"] is True and params["heatmaps_scale"] == 2
    assert params["num_gpu"] == 1 and fake.log["started"] == 1

    image = random_image()
    box = FaceBox(150.0, 80.0, 270.0, 200.0)  # 120 px square, inside the image
    (found,) = source.locate(image, [box])
    crop = fake.log["inputs"][-1]
    np.testing.assert_array_equal(crop, image[80:200, 150:270])  # the detector's box, at native resolution
    assert fake.log["vectors"][-1] == "VectorDatum"

    maps = found.heatmaps
    assert maps.shape == (HEATMAP_SIZE, HEATMAP_SIZE, 5) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    for k, c in enumerate(EXPECTED_CHANNELS[model_pose]):
        u, v = blob_uv(c)
        # /255: OpenPose's [0, 255] maps become the [0, 1] the openpose model was trained on.
        assert maps[:, :, k].max() == pytest.approx(blob_amplitude(c) / 255.0, rel=0.06)
        i, j = np.unravel_index(np.argmax(maps[:, :, k]), maps.shape[:2])
        assert abs(j + 0.5 - u * HEATMAP_SIZE) <= 1.5 and abs(i + 0.5 - v * HEATMAP_SIZE) <= 1.5
        # Keypoints in image pixels, with the peak as confidence.
        x, y = found.keypoints.xy[k]
        assert abs(x - (box.x0 + u * box.width)) <= box.width / HEATMAP_SIZE
        assert abs(y - (box.y0 + v * box.height)) <= box.height / HEATMAP_SIZE
        assert found.keypoints.confidence[k] == pytest.approx(maps[:, :, k].max(), abs=1e-6)
    xy_hm = found.keypoints.xy @ found.to_heatmap[:, :2].T + found.to_heatmap[:, 2]
    expected_hm = np.array([blob_uv(c) for c in EXPECTED_CHANNELS[model_pose]]) * HEATMAP_SIZE
    np.testing.assert_allclose(xy_hm, expected_hm, atol=1.0)
    source.close()
    assert fake.log["stopped"] == 1


def test_openpose_crop_pads_outside_the_image_with_black(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    fake = make_fake_pyopenpose()
    install_fake(monkeypatch, fake)
    source = openpose_mod.OpenPoseKeypoints(model_folder=str(model_folder))
    image = random_image()
    box = FaceBox(340.0, -20.0, 420.0, 40.0)  # 80 x 60: made square (80), half outside the top-right corner
    (found,) = source.locate(image, [box])
    crop = fake.log["inputs"][-1]
    assert crop.shape == (80, 80, 3)
    # The square spans x 340..420 and y -30..50: image rows 0..49, columns 340..399.
    np.testing.assert_array_equal(crop[30:, :60], image[0:50, 340:400])
    assert not crop[:30].any() and not crop[:, 60:].any()
    assert found is not None
    u, v = blob_uv(0)
    assert found.keypoints.xy[NOSE] == pytest.approx((340.0 + 80.0 * u, -30.0 + 80.0 * v), abs=1.0)


def test_openpose_crop_scale_and_several_faces(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    fake = make_fake_pyopenpose()
    install_fake(monkeypatch, fake)
    source = openpose_mod.OpenPoseKeypoints(model_folder=str(model_folder), crop_scale=1.5)
    boxes = [FaceBox(100.0, 100.0, 160.0, 160.0), FaceBox(250.0, 150.0, 290.0, 190.0)]
    found = source.locate(random_image(), boxes)
    assert len(found) == 2 and all(f is not None for f in found)
    assert [c.shape[0] for c in fake.log["inputs"]] == [90, 60]
    for f, b in zip(found, boxes):
        side = 1.5 * b.width
        u, v = blob_uv(0)
        x0, y0 = b.center[0] - side / 2, b.center[1] - side / 2
        assert f.keypoints.xy[NOSE] == pytest.approx((x0 + u * side, y0 + v * side), abs=side / HEATMAP_SIZE)


def test_openpose_with_background_map_and_old_list_api(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    fake = make_fake_pyopenpose(vector_datum=False)
    install_fake(monkeypatch, fake, as_package=False)  # the `import pyopenpose` fallback
    source = openpose_mod.OpenPoseKeypoints(model_folder=str(model_folder), heatmaps_add_bkg=True)
    assert fake.log["params"][-1]["heatmaps_add_bkg"] is True
    (found,) = source.locate(random_image(), [FaceBox(100.0, 100.0, 196.0, 196.0)])
    assert fake.log["vectors"][-1] == "list"
    assert found is not None
    for k, c in enumerate(EXPECTED_CHANNELS["COCO"]):  # the background map (channel 18) is never taken
        assert found.heatmaps[:, :, k].max() == pytest.approx(blob_amplitude(c) / 255.0, rel=0.06)


def test_openpose_without_parts_gives_none(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    install_fake(monkeypatch, make_fake_pyopenpose(silent=True))
    source = openpose_mod.OpenPoseKeypoints(model_folder=str(model_folder))
    assert source.locate(random_image(), [FaceBox(100.0, 100.0, 196.0, 196.0)]) == [None]
    assert source.locate(random_image(), []) == []


def test_openpose_skips_tiny_faces(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    fake = make_fake_pyopenpose()
    install_fake(monkeypatch, fake)
    source = openpose_mod.OpenPoseKeypoints(model_folder=str(model_folder))
    found = source.locate(random_image(), [FaceBox(10.0, 10.0, 13.0, 12.0), FaceBox(50.0, 50.0, 50.0, 50.0),
                                           FaceBox(100.0, 100.0, 196.0, 196.0)])
    assert found[0] is None and found[1] is None and found[2] is not None
    assert len(fake.log["inputs"]) == 1  # only the real face went to OpenPose


def test_openpose_missing_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch, model_folder: Path) -> None:
    monkeypatch.setitem(sys.modules, "openpose", None)
    monkeypatch.setitem(sys.modules, "pyopenpose", None)
    with pytest.raises(BackendUnavailableError) as info:
        KEYPOINT_SOURCES.create("openpose", model_folder=str(model_folder))
    message = str(info.value)
    for needle in ("pyopenpose", "BUILD_PYTHON", "model_folder", "models/"):
        assert needle in message


def test_openpose_needs_model_folder_and_its_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    install_fake(monkeypatch, make_fake_pyopenpose())
    with pytest.raises(ConfigError, match="model_folder"):
        openpose_mod.OpenPoseKeypoints()
    with pytest.raises(BackendUnavailableError, match="pose_iter_440000.caffemodel"):
        openpose_mod.OpenPoseKeypoints(model_folder=str(tmp_path))


@pytest.mark.parametrize("options", [{"model_pose": "MPI"}, {"net_resolution": "100x100"},
                                     {"net_resolution": "big"}, {"crop_scale": 0.1}, {"min_peak": 2.0},
                                     {"params": ["num_gpu", 1]}])
def test_openpose_rejects_bad_options(monkeypatch: pytest.MonkeyPatch, model_folder: Path,
                                      options: dict[str, Any]) -> None:
    install_fake(monkeypatch, make_fake_pyopenpose())
    with pytest.raises(ConfigError):
        openpose_mod.OpenPoseKeypoints(model_folder=str(model_folder), **options)


def test_openpose_peak_is_sub_pixel() -> None:
    ys, xs = np.mgrid[0:20, 0:20] + 0.5
    channel = np.exp(-((xs - 7.3) ** 2 + (ys - 12.6) ** 2) / (2 * 1.5**2)).astype(np.float32)
    x, y, value = openpose_mod.peak(channel)
    assert math.hypot(x - 7.3, y - 12.6) < 0.25 and 0.9 < value <= 1.0


# === the backends inside the pipeline ============================================================================

def make_weights(folder: Path, heatmap_kind: str, keypoint_source: str) -> Path:
    """An untrained regressor (the paper's CNN, seeded weights) with its model card; the weights path."""
    import os

    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    regressor = pytest.importorskip("headpose_ros.estimator.regressor")
    weights = folder / f"{keypoint_source}.weights.h5"
    regressor.build_model(seed=0).save_weights(str(weights))
    regressor.ModelCard(keypoint_source, heatmap_kind=heatmap_kind,
                        keypoint_source=keypoint_source).save(regressor.card_path(weights))
    return weights


def test_pipeline_with_dlib_hog_and_mediapipe_pose(tmp_path: Path, astronaut_bgr: np.ndarray) -> None:
    needs_dlib()
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.21 is a dependency of mediapipe_pose")
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    weights = make_weights(tmp_path, "rendered", "mediapipe_pose")
    estimator = HeadPoseEstimator(EstimatorConfig(detector="dlib_hog", keypoints="mediapipe_pose",
                                                  model=str(weights), device="cpu"))
    try:
        result = estimator.process(astronaut_bgr)
        assert len(result.faces) == 1
        face = result.faces[0]
        assert contains(face.box, EYES)
        assert np.all(np.isfinite(face.pose.as_array()))
        assert face.keypoints.xy[RIGHT_EYE, 0] < face.keypoints.xy[LEFT_EYE, 0]
        assert estimator.process(grey_frame()).faces == []
    finally:
        estimator.close()


def test_pipeline_pairs_openpose_heatmaps_with_an_openpose_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 model_folder: Path) -> None:
    install_fake(monkeypatch, make_fake_pyopenpose())
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    class OneBox:

        def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
            return [FaceBox(100.0, 80.0, 220.0, 200.0, 0.9)]

    options = {"model_folder": str(model_folder)}
    rendered = make_weights(tmp_path, "rendered", "face_mesh")
    with pytest.raises(ConfigError, match="openpose"):
        HeadPoseEstimator(EstimatorConfig(keypoints="openpose", keypoint_options=options, model=str(rendered),
                                          device="cpu"), detector=OneBox())
    weights = make_weights(tmp_path, "openpose", "openpose")
    estimator = HeadPoseEstimator(EstimatorConfig(keypoints="openpose", keypoint_options=options,
                                                  model=str(weights), device="cpu"), detector=OneBox())
    result = estimator.process(random_image())
    assert len(result.faces) == 1 and np.all(np.isfinite(result.faces[0].pose.as_array()))
    assert result.faces[0].heatmaps.shape == (HEATMAP_SIZE, HEATMAP_SIZE, 5)
    estimator.close()


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3, 3), (7, 5, 3), (9, 2000, 3), (31, 31, 3), (20, 20, 1), (20, 20)])
def test_dlib_detectors_survive_tiny_images(cnn: Any, shape: tuple[int, ...]) -> None:
    image = np.zeros(shape, np.uint8)
    assert cnn.detect(image) == []
    assert dlib_face.DlibCnnFaceDetector(upsample=1).detect(image) == []
    assert DETECTORS.create("dlib_hog", upsample=1).detect(image) == []


@pytest.mark.parametrize("box", [FaceBox(0.0, 0.0, 1.0, 1.0), FaceBox(-5.0, -5.0, 0.0, 0.0),
                                 FaceBox(3.0, 3.0, 3.0, 3.0)])
def test_mediapipe_pose_survives_tiny_images_and_boxes(pose_source: Any, box: FaceBox) -> None:
    assert pose_source.locate(np.zeros((10, 10, 3), np.uint8), [box]) == [None]
    assert pose_source.locate(np.zeros((1, 1, 3), np.uint8), [box]) == [None]


def test_cpu_threads_reaches_every_tflite_model_and_keeps_the_estimates(astronaut_bgr, monkeypatch):
    """``cpu_threads`` opens every interpreter (detector, face mesh, quality check, regressor) with that many
    threads, a backend's own ``num_threads`` option wins, and the angles do not depend on the thread count."""
    from headpose_ros.estimator import EstimatorConfig, HeadPoseEstimator, tflite

    opened: list[tuple[str, int]] = []
    interpreter, runtime = tflite.interpreter_class()

    def recording(model_path: str, num_threads: int = 1, **kwargs: Any) -> Any:
        opened.append((Path(model_path).name, num_threads))
        return interpreter(model_path=model_path, num_threads=num_threads, **kwargs)

    monkeypatch.setattr(tflite, "interpreter_class", lambda: (recording, runtime))
    poses = {}
    for threads in (1, 2):
        opened.clear()
        estimator = HeadPoseEstimator(EstimatorConfig(cpu_threads=threads, detector_options={"num_threads": 1}))
        faces = estimator.process(astronaut_bgr).faces
        assert len(faces) == 1
        poses[threads] = faces[0].pose.as_array()
        names = {name for name, _ in opened}
        assert {"face_detection_short_range.tflite", "face_detection_full_range_sparse.tflite",
                "face_landmark.tflite"} <= names and any(n.startswith("default.") for n in names)
        for name, count in opened:  # the detector keeps its own option; the others follow cpu_threads
            assert count == (1 if name.startswith("face_detection") else threads), (name, count)
        assert sum(name == "face_landmark.tflite" for name, _ in opened) == 1  # keypoints and quality check share it
    np.testing.assert_allclose(poses[2], poses[1], atol=0.01)
