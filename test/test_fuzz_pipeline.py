"""Fuzzing HeadPoseEstimator.process: random arrays, garbage detector boxes, random intrinsics, and the real
backends (mediapipe face detector + face-mesh keypoints + the paper's CNN in TensorFlow).

test_images.py (the estimator's own tests) covers to_bgr8 and the pipeline with stand-in backends on random
arrays, and the real backends on a fixed list of odd images. This file adds, with example counts printed at
the end of the module:

- random arrays of random shapes, dtypes and channel orders through the *real* backends and a real
  TensorFlow regressor (an untrained model file the test makes; the shipped default model's weights are not
  needed to exercise every code path), each call guarded against hangs, each followed by a real face that
  must still be found (no backend state is corrupted by a bad frame);
- a detector returning garbage boxes (NaN, infinite, reversed, outside the image, zero-sized, any score,
  many of them) into the real face-mesh keypoints and regressor: every face returned is inside the image with
  finite keypoints, angles and position, at most ``max_faces`` of them;
- a few examples through the real default pipeline with the shipped default model, when it exists.
"""

from __future__ import annotations

import concurrent.futures
import math

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzz_support import count, fuzz_settings, make_report_fixture, run_counted
from headpose_ros.estimator.errors import ImageError
from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.types import FaceBox, FrameResult
from tools_fakes import ConstantRegressor, LayoutKeypoints

MODULE = "test_fuzz_pipeline"
_fuzz_counts_report = make_report_fixture(MODULE)
#: A call that has not returned after this many seconds is a hang (a generous bound, not a speed test).
HANG_S = 120.0

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.float16,
                          np.float32, np.float64, np.bool_, np.complex64])


@pytest.fixture(scope="module")
def worker():
    """One thread for every backend call (as in the node's worker), so that a hang is caught, not suffered."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-worker")
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def call(pool: concurrent.futures.ThreadPoolExecutor, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in the worker thread; a pytest failure when it runs past HANG_S."""
    future = pool.submit(fn, *args, **kwargs)
    try:
        return future.result(timeout=HANG_S)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"{getattr(fn, '__qualname__', fn)} did not return within {HANG_S:.0f} s (hang)")


def astronaut_bgr() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev requirement) is not installed")
    return np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def real_backends(tmp_path_factory):
    """The default detector and keypoint source (mediapipe) and a real TF regressor from a test-made model."""
    pytest.importorskip("mediapipe", reason="mediapipe (the default backends' dependency) is not installed")
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.regressor import HeadPoseRegressor
    from tools_fakes import make_model_file

    weights = make_model_file(tmp_path_factory.mktemp("model"))
    config = EstimatorConfig(model=str(weights), device="cpu")
    estimator = HeadPoseEstimator(config, regressor=HeadPoseRegressor(str(weights), "cpu"))
    yield estimator
    estimator.close()


def check_result(result: FrameResult, shape: tuple[int, ...], max_faces: int) -> None:
    """A consistent FrameResult for an input of ``shape``: sizes, boxes in the image, finite numbers."""
    assert isinstance(result, FrameResult)
    h, w = shape[0], shape[1]
    assert result.image_size == (w, h)
    assert len(result.faces) <= max_faces
    for face in result.faces:
        b = face.box
        assert 0 <= b.x0 <= b.x1 <= w and 0 <= b.y0 <= b.y1 <= h, b
        assert np.all(np.isfinite(face.pose.as_array())), face.pose
        assert np.all(np.abs(face.pose.as_array()) <= 180.0)
        assert np.all(np.isfinite(face.position)), face.position
        assert np.all(np.isfinite(face.keypoints.xy)) and np.all(np.isfinite(face.keypoints.confidence))
        if face.heatmaps is not None:
            assert face.heatmaps.shape == (96, 96, 5) and np.all(np.isfinite(face.heatmaps))
    areas = [f.box.area for f in result.faces]
    assert areas == sorted(areas, reverse=True)  # largest first
    assert all(math.isfinite(v) and v >= 0 for v in result.stages_ms.values())


def check_still_finds_the_astronaut(pool, estimator: HeadPoseEstimator) -> None:
    image = astronaut_bgr()
    result = call(pool, estimator.process, image)
    check_result(result, image.shape, estimator.config.max_faces)
    assert len(result.faces) == 1, "the real astronaut face is no longer found after a bad frame"


# --- random arrays through the real backends -----------------------------------------------------------------

@st.composite
def random_images(draw):
    dtype = draw(DTYPES)
    # (hypothesis draws the first entries of a list most often: the usable kinds come first)
    kind = draw(st.sampled_from(["frame", "small", "frame", "thin", "small", "frame", "tiny"]))
    if kind == "tiny":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
    elif kind == "small":
        shape = (draw(st.integers(0, 64)), draw(st.integers(0, 64))) + draw(
            st.sampled_from([(3,), (), (4,), (1,), (3,), (3,), (2,), (5,)]))
    elif kind == "thin":
        shape = draw(st.sampled_from([(1, 2000, 3), (2000, 1, 3), (3, 1500), (1500, 2, 4)]))
    else:
        shape = (draw(st.integers(64, 480)), draw(st.integers(64, 640)), draw(st.sampled_from([3, 4, 1])))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    fill = draw(st.sampled_from(["noise", "constant", "noise", "extremes", "nan-spots"]))
    size = int(np.prod(shape)) if shape else 1
    if fill == "noise":
        values = rng.normal(0.5, 0.5, size) if np.issubdtype(dtype, np.floating) or dtype == np.complex64 else \
            rng.integers(0, 256, size)
    elif fill == "constant":
        values = np.full(size, draw(st.sampled_from([0, 1, 255, 65535, -1])))
    elif fill == "extremes":
        values = rng.choice([0, 255, 65535, -(2**31), 2**31 - 1], size)
    else:
        values = rng.random(size)
        values[rng.random(size) < 0.01] = np.nan
    with np.errstate(all="ignore"):
        image = np.asarray(values).astype(dtype).reshape(shape)
    order = draw(st.sampled_from(["bgr", "rgb", "bgr", "rgb", "bgr", "rgb", "BGR", "bgra"]))
    note(f"{kind} {dtype.__name__} {shape} {fill} channel_order={order}")
    return image, order


def _consistent_or_image_error(pool, estimator, image, order, test) -> None:
    try:
        result = call(pool, estimator.process, image, None, order)
    except ImageError as exc:
        assert str(exc)
        count(test, "ImageError")
    else:
        check_result(result, image.shape, estimator.config.max_faces)
        count(test, f"result with {len(result.faces)} face(s)" if result.faces else "empty result")


def test_random_arrays_through_real_backends(real_backends, worker):
    """Random shapes, dtypes, contents and channel orders: a consistent result or ImageError, never a hang or
    another exception; after each, the real face is still found."""

    @fuzz_settings(60)
    @given(random_images())
    def prop(case):
        image, order = case
        _consistent_or_image_error(worker, real_backends, image, order, f"{MODULE}::real_random_arrays")
        check_still_finds_the_astronaut(worker, real_backends)

    tried = run_counted(f"{MODULE}::real_random_arrays", prop)
    assert sum(tried.values()) >= 40 and tried["ImageError"] >= 5 and tried["empty result"] >= 15, tried


# --- garbage boxes into the real keypoints and regressor -----------------------------------------------------

COORD = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(-100, 800),
                  st.sampled_from([0.0, -0.0, 1e-30, 1e30, 640.0, 480.0]))
SCORE = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.floats(0, 1))
GARBAGE_BOX = st.builds(FaceBox, COORD, COORD, COORD, COORD, SCORE)
#: Boxes a working detector could return anywhere in a 640x480 frame (on the face, on the background, cut off).
PLAUSIBLE_BOX = st.builds(lambda x, y, w, h, s: FaceBox(x, y, x + w, y + h, s), st.floats(-50, 630),
                          st.floats(-50, 470), st.floats(1, 500), st.floats(1, 500), st.floats(0.5, 1))
BOXES = st.lists(st.one_of(GARBAGE_BOX, PLAUSIBLE_BOX), max_size=40)


class ScriptedDetector:
    """Returns whatever boxes the test gives it."""

    def __init__(self):
        self.boxes: list[FaceBox] = []

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        return list(self.boxes)


@pytest.fixture(scope="module")
def garbage_estimator(real_backends):
    detector = ScriptedDetector()
    estimator = HeadPoseEstimator(real_backends.config, detector=detector,
                                  keypoint_source=real_backends.keypoint_source, regressor=real_backends.regressor)
    return estimator, detector


def test_garbage_boxes_into_real_keypoints_and_regressor(garbage_estimator, real_backends, worker):
    """Any boxes a broken detector could return: consistent faces (inside the image, finite), never a crash."""
    estimator, detector = garbage_estimator
    frame = np.ascontiguousarray(np.pad(astronaut_bgr(), ((0, 0), (64, 64), (0, 0)), mode="edge")[:480, :640])
    face = call(worker, real_backends.detector.detect, frame)[0]  # the real face: boxes near it hold a face
    near_face = st.builds(lambda dx, dy, s, score: FaceBox(face.x0 + dx, face.y0 + dy, face.x0 + dx + face.width * s,
                                                           face.y0 + dy + face.height * s, score),
                          st.floats(-40, 40), st.floats(-40, 40), st.floats(0.5, 2.0), SCORE)
    boxes_strategy = st.lists(st.one_of(near_face, GARBAGE_BOX, PLAUSIBLE_BOX), max_size=40)

    @fuzz_settings(60)
    @given(boxes_strategy, st.integers(1, 16), st.integers(0, 64))
    def prop(boxes, max_faces, min_face_px):
        import dataclasses

        detector.boxes = boxes
        estimator.config = dataclasses.replace(estimator.config, max_faces=max_faces, min_face_px=min_face_px)
        result = call(worker, estimator.process, frame)
        check_result(result, frame.shape, max_faces)
        count(f"{MODULE}::garbage_boxes", f"{'some' if result.faces else 'no'} face(s) kept")

    tried = run_counted(f"{MODULE}::garbage_boxes", prop)
    assert tried["some face(s) kept"] >= 5 and tried["no face(s) kept"] >= 5, tried


def test_garbage_boxes_with_stand_in_backends():
    """The same with the stand-in keypoints and regressor, many more examples (fast)."""
    detector = ScriptedDetector()
    estimator = HeadPoseEstimator(detector=detector, keypoint_source=LayoutKeypoints(), regressor=ConstantRegressor())
    frame = np.zeros((120, 160, 3), np.uint8)

    @fuzz_settings(300)
    @given(st.lists(st.one_of(GARBAGE_BOX, PLAUSIBLE_BOX), max_size=300))
    def prop(boxes):
        detector.boxes = boxes
        result = estimator.process(frame)
        check_result(result, frame.shape, estimator.config.max_faces)
        count(f"{MODULE}::garbage_boxes_stand_in", f"{'some' if result.faces else 'no'} face(s) kept")

    tried = run_counted(f"{MODULE}::garbage_boxes_stand_in", prop)
    assert sum(tried.values()) >= 200, tried


# --- the shipped default model, when it exists -------------------------------------------------------------

def test_random_arrays_through_the_shipped_default_pipeline(worker):
    from headpose_ros.estimator.regressor import resolve_model_path

    if not resolve_model_path("default").is_file():
        pytest.skip(f"the default model {resolve_model_path('default')} is not trained yet")
    pytest.importorskip("mediapipe", reason="mediapipe (the default backends' dependency) is not installed")
    estimator = HeadPoseEstimator()
    try:
        @fuzz_settings(15)
        @given(random_images())
        def prop(case):
            image, order = case
            _consistent_or_image_error(worker, estimator, image, order, f"{MODULE}::default_pipeline")

        tried = run_counted(f"{MODULE}::default_pipeline", prop)
        assert sum(tried.values()) >= 10, tried
        check_still_finds_the_astronaut(worker, estimator)
    finally:
        estimator.close()
