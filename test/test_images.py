"""Bad input never crashes the estimator: to_bgr8 and HeadPoseEstimator.process give an ImageError or a result."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from headpose_ros.estimator.errors import ImageError
from headpose_ros.estimator.images import MAX_PIXELS, to_bgr8
from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.types import FrameResult
from tools_fakes import CentreDetector, ConstantRegressor, LayoutKeypoints


def fake_estimator(detector=None) -> HeadPoseEstimator:
    return HeadPoseEstimator(detector=detector or CentreDetector(), keypoint_source=LayoutKeypoints(),
                             regressor=ConstantRegressor())


def check_result(result: FrameResult, shape: tuple[int, ...]) -> None:
    assert isinstance(result, FrameResult)
    assert result.image_size == (shape[1], shape[0])
    for face in result.faces:
        assert np.all(np.isfinite(face.pose.as_array()))
        assert np.all(np.isfinite(face.position))
        assert 0 <= face.box.x0 <= face.box.x1 <= shape[1] and 0 <= face.box.y0 <= face.box.y1 <= shape[0]


# --- to_bgr8 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image, expected", [
    (np.full((4, 5), 7, np.uint8), (4, 5, 3)),
    (np.full((4, 5, 1), 7, np.uint8), (4, 5, 3)),
    (np.zeros((4, 5, 4), np.uint8), (4, 5, 3)),
    (np.full((4, 5, 3), 65535, np.uint16), (4, 5, 3)),
    (np.full((4, 5, 3), 0.5, np.float32), (4, 5, 3)),
    (np.full((4, 5, 3), 300.0, np.float64), (4, 5, 3)),
    (np.full((4, 5), -3, np.int32), (4, 5, 3)),
    (np.ones((1, 1), bool), (1, 1, 3)),
])
def test_to_bgr8_accepts(image, expected):
    out = to_bgr8(image)
    assert out.shape == expected and out.dtype == np.uint8 and out.flags.c_contiguous


def test_to_bgr8_values():
    assert to_bgr8(np.full((1, 1), 65535, np.uint16))[0, 0].tolist() == [255, 255, 255]
    assert to_bgr8(np.full((1, 1), 257 * 10, np.uint16))[0, 0].tolist() == [10, 10, 10]
    assert to_bgr8(np.full((1, 1), 1.0, np.float32))[0, 0].tolist() == [255, 255, 255]
    assert to_bgr8(np.full((1, 1), -5, np.int16))[0, 0].tolist() == [0, 0, 0]
    rgba = np.array([[[1, 2, 3, 4]]], np.uint8)
    assert to_bgr8(rgba)[0, 0].tolist() == [1, 2, 3]
    assert to_bgr8(rgba, channel_order="rgb")[0, 0].tolist() == [3, 2, 1]


@pytest.mark.parametrize("image", [
    np.zeros((0, 5, 3), np.uint8),
    np.zeros((5, 0), np.uint8),
    np.zeros((5,), np.uint8),
    np.zeros((2, 3, 4, 5), np.uint8),
    np.zeros((4, 4, 2), np.uint8),
    np.zeros((4, 4, 5), np.uint8),
    np.full((4, 4, 3), np.nan, np.float32),
    np.full((4, 4), np.inf, np.float64),
    np.zeros((4, 4, 3), np.complex64),
    np.zeros((4, 4, 3), object),
    np.zeros((4, 4), "U3"),
    [[0, 1], [2, 3]],
    None,
], ids=["empty-rows", "empty-cols", "rank1", "rank4", "2ch", "5ch", "nan", "inf", "complex", "object", "str",
        "list", "none"])
def test_to_bgr8_refuses(image):
    with pytest.raises(ImageError):
        to_bgr8(image)


def test_to_bgr8_refuses_huge_without_allocating():
    side = int(np.sqrt(MAX_PIXELS)) + 10
    huge = np.broadcast_to(np.uint8(0), (side, side, 3))  # a view: no memory is allocated
    with pytest.raises(ImageError, match="Mpx"):
        to_bgr8(huge)


def test_to_bgr8_refuses_bad_channel_order():
    with pytest.raises(ImageError):
        to_bgr8(np.zeros((2, 2, 3), np.uint8), channel_order="bgra")


DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64,
                          np.bool_, np.complex64])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(DTYPES, SHAPES, elements=None))
def test_to_bgr8_any_array(image):
    """Any small array of any dtype: a (H, W, 3) uint8 image or an ImageError, nothing else."""
    try:
        out = to_bgr8(image)
    except ImageError:
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
    assert out.shape[:2] == image.shape[:2]


# --- HeadPoseEstimator.process with stand-in backends ---------------------------------------------------

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=40), elements=None))
def test_process_any_array(image):
    """The whole pipeline on random shapes and dtypes: an ImageError or a consistent result."""
    estimator = fake_estimator()
    try:
        result = estimator.process(image)
    except ImageError:
        return
    check_result(result, image.shape)


@pytest.mark.parametrize("image", [
    np.zeros((1, 1, 3), np.uint8),  # tiny: the box is below min_face_px, no face
    np.zeros((7, 9), np.uint8),
    np.full((120, 160), 128, np.uint8),  # grey
    np.full((120, 160, 3), 40000, np.uint16),  # 16-bit
    np.random.default_rng(0).random((120, 160, 3)).astype(np.float32),  # float in [0, 1]
    np.full((120, 160, 4), 200, np.uint8),  # RGBA
], ids=["1x1", "7x9", "grey", "16bit", "float", "rgba"])
def test_process_odd_images(image):
    result = fake_estimator().process(image)
    check_result(result, image.shape)
    big_enough = min(image.shape[:2]) * 0.5 >= 16  # the centre box against min_face_px
    assert len(result.faces) == (1 if big_enough else 0)


@pytest.mark.parametrize("image", [
    np.zeros((0, 0, 3), np.uint8),
    np.full((50, 50, 3), np.nan, np.float32),
    np.zeros((50, 50, 2), np.uint8),
    np.zeros((3, 50, 50, 3), np.uint8),
], ids=["empty", "nan", "2ch", "batch"])
def test_process_refuses_with_image_error(image):
    detector = CentreDetector()
    with pytest.raises(ImageError):
        fake_estimator(detector).process(image)
    assert detector.calls == 0  # refused before any backend saw it


def test_process_huge_is_refused_quickly():
    huge = np.broadcast_to(np.uint8(0), (12000, 12000, 3))
    with pytest.raises(ImageError):
        fake_estimator().process(huge)


def test_process_large_allowed_image():
    image = np.zeros((3000, 4000, 3), np.uint8)
    result = fake_estimator().process(image)
    check_result(result, image.shape)
    assert len(result.faces) == 1


def test_no_face_and_many_faces():
    from tools_fakes import BrightBlobDetector

    estimator = fake_estimator(BrightBlobDetector())
    assert estimator.process(np.zeros((100, 100, 3), np.uint8)).faces == []

    class GridDetector:

        def detect(self, image):
            from headpose_ros.estimator.types import FaceBox

            return [FaceBox(x, y, x + 30, y + 30, 0.9) for x in range(0, 600, 32) for y in range(0, 400, 32)]

    many = HeadPoseEstimator(detector=GridDetector(), keypoint_source=LayoutKeypoints(),
                             regressor=ConstantRegressor())
    result = many.process(np.zeros((480, 640, 3), np.uint8))
    assert len(result.faces) == many.config.max_faces  # capped, largest first, no crash
    assert many.regressor.batches == [many.config.max_faces]  # one batch for all faces of the frame


# --- the real default backends on bad input (mediapipe; an untrained throw-away model) -----------------

@pytest.fixture(scope="module")
def real_estimator(tmp_path_factory):
    pytest.importorskip("mediapipe", reason="mediapipe (the default backends' dependency) is not installed")
    from headpose_ros.estimator.config import EstimatorConfig
    from tools_fakes import make_model_file

    weights = make_model_file(tmp_path_factory.mktemp("model"))
    estimator = HeadPoseEstimator(EstimatorConfig(model=str(weights), device="cpu"))
    yield estimator
    estimator.close()


@pytest.mark.parametrize("image", [
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((2, 500, 3), np.uint8),
    np.zeros((500, 3), np.uint8),
    np.full((240, 320), 128, np.uint8),
    np.full((240, 320, 3), 30000, np.uint16),
    np.zeros((240, 320, 3), np.float64),
    np.full((240, 320, 4), 255, np.uint8),
    np.random.default_rng(1).integers(0, 256, (480, 640, 3)).astype(np.uint8),
], ids=["1x1", "2x500", "500x3-grey", "grey", "16bit", "float", "rgba", "noise"])
def test_real_backends_on_odd_images(real_estimator, image):
    result = real_estimator.process(image)
    check_result(result, image.shape)
    assert result.faces == []  # none of these holds a face


def test_real_backends_refuse_bad_images(real_estimator):
    for image in (np.zeros((0, 3, 3), np.uint8), np.full((8, 8, 3), np.nan), np.zeros((8, 8, 7), np.uint8)):
        with pytest.raises(ImageError):
            real_estimator.process(image)
