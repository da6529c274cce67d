"""Fuzzing the image-message decoder (headpose_ros.ros.image_codec) and camera intrinsics, without ROS.

Properties (hypothesis, fixed derandomised examples; counts printed at the end of the module):

- ``sensor_msgs/Image`` fields: every encoding the decoder claims (and case / whitespace variants), unknown
  ones, random text; widths and heights 0..48; ``step`` exact, padded, short, odd, zero or negative; ``data``
  exact, truncated, oversized or empty, as bytes, bytearray, memoryview, numpy, array.array('B') or list;
  ``is_bigendian`` 0, 1 and invalid values. A well-formed message decodes to (H, W, 3) uint8 with the right
  pixels; every malformed one raises :class:`ImageDecodeError` (never anything else); then a good frame
  decodes exactly as before. 16-bit data decodes the same from big- and little-endian buffers.
- 8K and larger: a few explicit examples (memory bounded): a real 8K mono8 frame decodes; an 8K header
  with truncated data and a 200 Mpx header are refused without allocating the image.
- ``sensor_msgs/CompressedImage``: random bytes, random bytes behind a JPEG or PNG signature, JPEG/PNG from
  cv2.imencode cut at every kind of point (always refused as truncated), with corrupted bytes (a decoded
  image of the header's size or an ImageDecodeError), unknown or mismatched ``format`` strings, and headers
  announcing huge images (refused before decoding).
- ``sensor_msgs/CameraInfo``-like K matrices with zero, negative, NaN or infinite intrinsics:
  :meth:`CameraIntrinsics.is_valid` is False and the estimator falls back to the documented unit-depth ray
  (z = 1) under :meth:`CameraIntrinsics.guess`; with valid intrinsics, or any finite positive focal length,
  every position and angle is finite and nothing raises.
- The node's core (:class:`HeadPoseCore`) fed fuzzed messages between good ones: a bad frame raises the
  decoder's error, the next good frame gives its face.
"""

from __future__ import annotations

import array
import math
import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from fuzz_support import count, fuzz_settings, make_report_fixture, run_counted
from headpose_ros.estimator import geometry
from headpose_ros.estimator.pipeline import HeadPoseEstimator
from headpose_ros.estimator.types import CameraIntrinsics
from headpose_ros.ros.image_codec import (SUPPORTED_ENCODINGS, ImageDecodeError, decode_any_msg, decode_compressed,
                                          decode_image)
from tools_fakes import CentreDetector, ConstantRegressor, LayoutKeypoints

MODULE = "test_fuzz_images"
_fuzz_counts_report = make_report_fixture(MODULE)

# --- the test's own model of each encoding (independent of image_codec's table) -----------------------------

#: (channels in the buffer, bytes per channel) of every encoding ROS defines that the node should take.
LAYOUT: dict[str, tuple[int, int]] = {
    "mono8": (1, 1), "8uc1": (1, 1), "mono16": (1, 2), "16uc1": (1, 2),
    "bgr8": (3, 1), "rgb8": (3, 1), "8uc3": (3, 1), "bgr16": (3, 2), "rgb16": (3, 2), "16uc3": (3, 2),
    "bgra8": (4, 1), "rgba8": (4, 1), "8uc4": (4, 1), "bgra16": (4, 2), "rgba16": (4, 2), "16uc4": (4, 2),
    "yuv422": (2, 1), "uyvy": (2, 1), "yuyv": (2, 1), "yuv422_yuy2": (2, 1),
    **{f"bayer_{p}{d}": (1, d // 8) for p in ("rggb", "bggr", "gbrg", "grbg") for d in (8, 16)},
}


def encoding_layout(encoding: str) -> tuple[int, int]:
    """(channels in the buffer, bytes per channel) of a supported encoding."""
    return LAYOUT[encoding.strip().lower()]


UNKNOWN_ENCODINGS = ["32FC1", "32fc3", "16SC1", "64FC1", "8SC3", "8UC2", "nv21", "nv12", "i420", "jpeg", "png",
                     "", " ", "rgb9", "mono12", "bayer_rggb12", "bgr8\x00", "yuv420", "rgb8;", "8UC", "16UC"]


def _variants(name: str) -> list[str]:
    """Supported names as a driver may spell them (the decoder accepts any case and surrounding spaces)."""
    return [name, name.upper(), f" {name} "]


CLAIMED = [v for name in SUPPORTED_ENCODINGS for v in _variants(name)]
GOOD_SHAPE = (12, 16)  # height, width of the "next good frame"


def good_frame() -> tuple[np.ndarray, dict]:
    """A bgr8 frame with a gradient (deterministic) and the Image fields carrying it."""
    h, w = GOOD_SHAPE
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 9
    img[..., 1] = np.arange(h, dtype=np.uint8)[:, None] * 13
    img[..., 2] = 200
    return img, dict(encoding="bgr8", height=h, width=w, step=w * 3, data=img.tobytes(), is_bigendian=0)


def assert_good_frame_still_decodes() -> None:
    img, fields = good_frame()
    out = decode_image(**fields)
    assert out.shape == img.shape and np.array_equal(out, img)


def _container(raw: bytes, kind: str):
    if kind == "bytes":
        return raw
    if kind == "bytearray":
        return bytearray(raw)
    if kind == "memoryview":
        return memoryview(raw)
    if kind == "numpy":
        return np.frombuffer(raw, np.uint8)
    if kind == "array":
        return array.array("B", raw)
    return list(raw)


@st.composite
def image_fields(draw):
    """Fields of a possibly malformed sensor_msgs/Image and whether they are well formed."""
    shaped = draw(st.sampled_from(["well-formed", "well-formed", "fuzzed", "fuzzed", "fuzzed"])) == "well-formed"
    claimed = shaped or draw(st.booleans())
    encoding = draw(st.sampled_from(CLAIMED)) if claimed else draw(
        st.one_of(st.sampled_from(UNKNOWN_ENCODINGS), st.text(max_size=10)))
    known = encoding.strip().lower() in SUPPORTED_ENCODINGS
    channels, itemsize = (encoding_layout(encoding) if known
                          else (draw(st.integers(1, 4)), draw(st.sampled_from([1, 2]))))
    low = 1 if shaped else 0
    width, height = draw(st.integers(low, 48)), draw(st.integers(low, 48))
    row = width * channels * itemsize
    step_kinds = ["exact", "padded"] if shaped else ["exact", "padded", "short", "odd", "zero", "negative", "random"]
    step_kind = draw(st.sampled_from(step_kinds))
    step = {"exact": row, "padded": row + itemsize * draw(st.integers(1, 8)), "short": row - draw(st.integers(1, 4)),
            "odd": row + 1, "zero": 0, "negative": -draw(st.integers(1, 100)),
            "random": draw(st.integers(-10, 500))}[step_kind]
    expected = step * height if step > 0 else 0
    data_kind = "exact" if shaped else draw(st.sampled_from(["exact", "truncated", "oversized", "empty"]))
    length = {"exact": expected, "truncated": max(0, expected - draw(st.integers(1, 64))),
              "oversized": expected + draw(st.integers(1, 64)), "empty": 0}[data_kind]
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    container = draw(st.sampled_from(["bytes", "bytearray", "memoryview", "numpy", "array", "list"]))
    big = draw(st.sampled_from([0, 1] if shaped else [0, 1, 2, -1, 255]))
    well_formed = (known and width > 0 and height > 0 and step >= row and step % itemsize == 0
                   and length == step * height and big in (0, 1))
    fields = dict(encoding=encoding, height=height, width=width, step=step, data=_container(raw, container),
                  is_bigendian=big)
    note(f"encoding={encoding!r} {width}x{height} step={step} ({step_kind}) data={length} B ({data_kind}, "
         f"{container}) big={big}")
    return fields, raw, well_formed, (channels, itemsize)


def _check_pixels(encoding: str, out: np.ndarray, raw: bytes, height: int, width: int, step: int) -> None:
    """Exact pixel values for the 8-bit encodings whose conversion is a copy or a channel swap."""
    e = encoding.strip().lower()
    rows = np.frombuffer(raw, np.uint8).reshape(height, step)
    if e in ("mono8", "8uc1"):
        grey = rows[:, :width]
        assert np.array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))
    elif e in ("bgr8", "8uc3"):
        assert np.array_equal(out, rows[:, :width * 3].reshape(height, width, 3))
    elif e == "rgb8":
        assert np.array_equal(out, rows[:, :width * 3].reshape(height, width, 3)[:, :, ::-1])
    elif e in ("bgra8", "8uc4"):
        assert np.array_equal(out, rows[:, :width * 4].reshape(height, width, 4)[:, :, :3])
    elif e == "rgba8":
        assert np.array_equal(out, rows[:, :width * 4].reshape(height, width, 4)[:, :, 2::-1])


@fuzz_settings(400)
@given(image_fields())
def _image_property(case):
    fields, raw, well_formed, _ = case
    try:
        out = decode_image(**fields)
    except ImageDecodeError as exc:
        assert str(exc)  # a message saying why
        enc = fields["encoding"].strip().lower()
        # Refusing a well-formed frame is allowed only for a conversion the format cannot do: YUV 4:2:2 with an
        # odd width (two pixels share their chroma).
        assert not well_formed or (enc in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2") and fields["width"] % 2), exc
        count(f"{MODULE}::image", "ImageDecodeError (well-formed odd-width YUV)" if well_formed else
              "ImageDecodeError")
    else:
        assert well_formed, f"malformed fields decoded to {out.shape}"
        assert out.shape == (fields["height"], fields["width"], 3) and out.dtype == np.uint8
        assert out.flags.c_contiguous
        _check_pixels(fields["encoding"], out, raw, fields["height"], fields["width"], fields["step"])
        count(f"{MODULE}::image", "decoded")
    assert_good_frame_still_decodes()


def test_image_messages_fuzz():
    """Every Image-like field combination decodes correctly or raises ImageDecodeError; both paths are hit."""
    tried = run_counted(f"{MODULE}::image", _image_property)
    assert sum(tried.values()) >= 100
    assert tried["decoded"] >= 100 and tried["ImageDecodeError"] >= 100, tried


def test_the_test_knows_every_claimed_encoding():
    assert set(SUPPORTED_ENCODINGS) <= set(LAYOUT), set(SUPPORTED_ENCODINGS) - set(LAYOUT)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_claimed_encoding_decodes_a_well_formed_frame(encoding):
    channels, itemsize = encoding_layout(encoding)
    h, w = 6, 8
    raw = np.random.default_rng(1).integers(0, 256, h * w * channels * itemsize, dtype=np.uint8).tobytes()
    out = decode_image(encoding, h, w, w * channels * itemsize, raw, 0)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    _check_pixels(encoding, out, raw, h, w, w * channels * itemsize)


SIXTEEN_BIT = [e for e in SUPPORTED_ENCODINGS if encoding_layout(e)[1] == 2]


@fuzz_settings(80)
@given(st.sampled_from(SIXTEEN_BIT), st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1),
       st.integers(0, 3))
def _endian_property(encoding, width, height, seed, pad):
    channels, _ = encoding_layout(encoding)
    values = np.random.default_rng(seed).integers(0, 65536, (height, width * channels + pad), dtype=np.uint16)
    little = decode_image(encoding, height, width, values.shape[1] * 2, values.astype("<u2").tobytes(), 0)
    big = decode_image(encoding, height, width, values.shape[1] * 2, values.astype(">u2").tobytes(), 1)
    assert np.array_equal(little, big)
    # and the flag matters: the byte-swapped buffer read as little-endian is another image (unless symmetric)
    if np.any((values >> 8) != (values & 0xFF)):
        swapped = decode_image(encoding, height, width, values.shape[1] * 2, values.astype(">u2").tobytes(), 0)
        count(f"{MODULE}::endianness", "flag honoured" if not np.array_equal(swapped, little) else
              "swap invisible after 8-bit scaling")
    else:
        count(f"{MODULE}::endianness", "symmetric data")


def test_sixteen_bit_endianness_fuzz():
    """Big-endian 16-bit buffers with is_bigendian=1 decode exactly like little-endian ones with 0."""
    tried = run_counted(f"{MODULE}::endianness", _endian_property)
    assert sum(tried.values()) >= 40 and tried["flag honoured"] >= 20, tried


@pytest.mark.parametrize("field, value", [
    ("width", -1), ("height", -5), ("width", 2.0), ("height", None), ("width", True), ("step", "24"),
    ("step", 24.0), ("step", None), ("is_bigendian", 3), ("is_bigendian", "1"), ("encoding", None),
    ("encoding", b"bgr8"), ("data", "not bytes"), ("data", [0, 1, 300]), ("data", np.zeros(24, np.float32)),
    ("data", None), ("data", 12345),
])
def test_wrong_field_types_are_refused(field, value):
    _, fields = good_frame()
    fields = {**fields, "height": 2, "width": 4, "step": 12, "data": bytes(24), field: value}
    with pytest.raises(ImageDecodeError):
        decode_image(**fields)
    assert_good_frame_still_decodes()


# --- large frames: a few explicit examples, memory bounded -----------------------------------------------------

def test_8k_mono8_frame_decodes():
    w, h = 7680, 4320  # 33 MB in, 100 MB out
    raw = np.zeros((h, w), np.uint8)
    raw[::97, ::89] = 255
    out = decode_image("mono8", h, w, w, raw.reshape(-1), 0)
    assert out.shape == (h, w, 3) and out[0, 0, 0] == 255 and out[1, 1, 0] == 0
    del out, raw
    assert_good_frame_still_decodes()


@pytest.mark.parametrize("encoding, w, h, length", [
    ("bgr8", 7680, 4320, 10),  # 8K header, truncated data
    ("rgb16", 7680, 4320, 7680 * 6 * 4319),  # 8K, one row short
    ("mono8", 20000, 10000, 0),  # 200 Mpx: over the decoder's limit
    ("mono8", 2**31, 2**31, 0),  # absurd header
    ("bgr8", 1, 2**40, 0),
])
def test_large_headers_are_refused_without_allocating(encoding, w, h, length):
    channels, itemsize = encoding_layout(encoding)
    with pytest.raises(ImageDecodeError, match="truncated|Mpx"):
        decode_image(encoding, h, w, w * channels * itemsize, np.zeros(length, np.uint8), 0)
    assert_good_frame_still_decodes()


# --- CompressedImage ----------------------------------------------------------------------------------------

FORMATS = ["", "jpeg", "jpg", "png", "JPEG", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8",
           "bgr8; png compressed bgr8", "mono8; png compressed mono8"]
UNKNOWN_FORMATS = ["tiff", "webp", "bmp", "h264", "jp2", "16UC1; compressedDepth png", "compressedDepth", "theora",
                   "raw", "bgr8"]


def _sample_image(seed: int, w: int, h: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "grey":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), np.full_like(xx, 128)], 2).astype(np.uint8)


@st.composite
def encoded_images(draw):
    codec = draw(st.sampled_from([".jpg", ".png"]))
    w, h = draw(st.integers(1, 80)), draw(st.integers(1, 80))
    kind = draw(st.sampled_from(["noise", "grey", "gradient"]))
    img = _sample_image(draw(st.integers(0, 2**32 - 1)), w, h, kind)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, draw(st.integers(0, 1))] if codec == ".jpg" else \
        [cv2.IMWRITE_PNG_COMPRESSION, draw(st.integers(0, 9))]
    ok, buf = cv2.imencode(codec, img, params)
    assert ok
    return codec, (w, h), buf.tobytes()


_GOOD_JPEG = None


def assert_good_jpeg_still_decodes() -> None:
    global _GOOD_JPEG
    if _GOOD_JPEG is None:
        img, _ = good_frame()
        _GOOD_JPEG = cv2.imencode(".png", img)[1].tobytes(), img
    data, img = _GOOD_JPEG
    assert np.array_equal(decode_compressed("png", data), img)


def _expect_error_or_image(fmt: str, data, test: str, size=None) -> None:
    try:
        out = decode_compressed(fmt, data)
    except ImageDecodeError as exc:
        assert str(exc)
        count(test, "ImageDecodeError")
    else:
        assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8 and out.size > 0
        if size is not None:
            assert (out.shape[1], out.shape[0]) == size
        count(test, "decoded")
    assert_good_jpeg_still_decodes()


@fuzz_settings(250)
@given(st.sampled_from(FORMATS + UNKNOWN_FORMATS + ["x"]) | st.text(max_size=12),
       st.sampled_from([b"", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n",
                        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"]),
       st.binary(max_size=600), st.sampled_from([b"", b"\xff\xd9", b"IEND\xaeB`\x82"]))
def _random_bytes_property(fmt, prefix, body, suffix):
    _expect_error_or_image(fmt, prefix + body + suffix, f"{MODULE}::compressed_random")


def test_compressed_random_bytes_fuzz():
    """Random bytes, also behind real JPEG/PNG signatures and before end markers: ImageDecodeError or an image."""
    tried = run_counted(f"{MODULE}::compressed_random", _random_bytes_property)
    assert sum(tried.values()) >= 100 and tried["ImageDecodeError"] >= 50, tried


@fuzz_settings(200)
@given(encoded_images(), st.data())
def _truncated_property(encoded, data):
    codec, _, buf = encoded
    cut = data.draw(st.integers(0, len(buf) - 1), label="cut")
    fmt = data.draw(st.sampled_from(["", codec.strip("."), "bgr8; jpeg compressed bgr8" if codec == ".jpg"
                                     else "bgr8; png compressed bgr8"]), label="format")
    with pytest.raises(ImageDecodeError):
        decode_compressed(fmt, buf[:cut])
    count(f"{MODULE}::compressed_truncated", f"{codec[1:]} truncated: ImageDecodeError")
    assert_good_jpeg_still_decodes()


def test_compressed_truncated_fuzz():
    """JPEG and PNG data cut anywhere before its end is always refused (never a half-grey frame)."""
    tried = run_counted(f"{MODULE}::compressed_truncated", _truncated_property)
    assert sum(tried.values()) >= 100 and len(tried) == 2, tried


@fuzz_settings(200)
@given(encoded_images(), st.data())
def _corrupted_property(encoded, data):
    codec, size, buf = encoded
    corrupt = bytearray(buf)
    n = data.draw(st.integers(1, 16), label="bytes corrupted")
    for _ in range(n):
        i = data.draw(st.integers(0, len(buf) - 1))
        corrupt[i] = data.draw(st.integers(0, 255))
    note(f"{codec} {size} {len(buf)} B, {n} bytes corrupted")
    _expect_error_or_image("", bytes(corrupt), f"{MODULE}::compressed_corrupted", size=None)


def test_compressed_corrupted_fuzz():
    """JPEG/PNG with corrupted bytes: an (H, W, 3) image or ImageDecodeError, never a crash."""
    tried = run_counted(f"{MODULE}::compressed_corrupted", _corrupted_property)
    assert sum(tried.values()) >= 100, tried


@fuzz_settings(120)
@given(encoded_images(), st.sampled_from(FORMATS + UNKNOWN_FORMATS), st.sampled_from(["bytes", "numpy", "array",
                                                                                     "list", "memoryview"]))
def _format_property(encoded, fmt, container):
    codec, size, buf = encoded
    low = fmt.lower()
    declared = "jpeg" if ("jpeg" in low or "jpg" in low) else "png" if "png" in low else None
    own = {".jpg": "jpeg", ".png": "png"}[codec]
    acceptable = "compresseddepth" not in low and (fmt.strip() == "" or declared == own)
    try:
        out = decode_compressed(fmt, _container(buf, container))
    except ImageDecodeError:
        assert not acceptable, f"{codec} data with format {fmt!r} was refused"
        count(f"{MODULE}::compressed_format", "unknown or mismatched format: ImageDecodeError")
    else:
        assert acceptable, f"{codec} data with format {fmt!r} was decoded"
        assert (out.shape[1], out.shape[0]) == size and out.dtype == np.uint8 and out.shape[2] == 3
        count(f"{MODULE}::compressed_format", "decoded")


def test_compressed_format_fuzz():
    """Valid JPEG/PNG decode under their own (or an empty) format and are refused under any other."""
    tried = run_counted(f"{MODULE}::compressed_format", _format_property)
    assert tried["decoded"] >= 20 and tried["unknown or mismatched format: ImageDecodeError"] >= 20, tried


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real 8x8 JPEG whose frame header is rewritten to announce width x height."""
    buf = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = 2
    while buf[i + 1] not in (0xC0, 0xC2):
        i += 2 + struct.unpack(">H", bytes(buf[i + 2:i + 4]))[0]
    buf[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(buf)


def _png_with_size(width: int, height: int) -> bytes:
    buf = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    buf[16:24] = struct.pack(">II", width, height)  # the IHDR CRC is now wrong too
    return bytes(buf)


@pytest.mark.parametrize("data", [
    _jpeg_with_size(65535, 65535), _jpeg_with_size(0, 8), _jpeg_with_size(8, 0),
    _png_with_size(100_000, 100_000), _png_with_size(2**31 - 1, 1), _png_with_size(0, 0),
], ids=["jpeg-65535^2", "jpeg-0-wide", "jpeg-0-high", "png-100k^2", "png-2^31", "png-0x0"])
def test_compressed_headers_announcing_huge_or_empty_images_are_refused(data):
    with pytest.raises(ImageDecodeError, match="Mpx|empty|corrupt"):
        decode_compressed("", data)
    assert_good_jpeg_still_decodes()


def test_8k_jpeg_decodes():
    img = np.full((4320, 7680, 3), 90, np.uint8)
    img[:100, :100] = 250
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()
    out = decode_compressed("jpeg", data)
    assert out.shape == img.shape and abs(int(out[50, 50, 0]) - 250) <= 3 and abs(int(out[2000, 4000, 0]) - 90) <= 3


# --- camera intrinsics ----------------------------------------------------------------------------------------

BAD_FOCAL = st.sampled_from([0.0, -0.0, -1.0, -500.0, math.nan, math.inf, -math.inf]) | st.floats(max_value=0.0)
ANY = st.floats(allow_nan=True, allow_infinity=True, width=64)
GOOD_FOCAL = st.floats(min_value=50.0, max_value=5000.0)
CENTRE = st.floats(min_value=-100.0, max_value=2000.0)


def fake_estimator() -> HeadPoseEstimator:
    return HeadPoseEstimator(detector=CentreDetector(), keypoint_source=LayoutKeypoints(),
                             regressor=ConstantRegressor())


_ESTIMATOR: list = []


def shared_fake_estimator() -> HeadPoseEstimator:
    if not _ESTIMATOR:
        _ESTIMATOR.append(fake_estimator())
    return _ESTIMATOR[0]


def k_matrix(fx: float, fy: float, cx: float, cy: float) -> list[float]:
    return [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]


@st.composite
def bad_k(draw):
    """A CameraInfo K with at least one unusable intrinsic (zero/negative/NaN/inf focal or non-finite centre)."""
    fx, fy = draw(st.one_of(BAD_FOCAL, GOOD_FOCAL)), draw(st.one_of(BAD_FOCAL, GOOD_FOCAL))
    cx, cy = draw(st.one_of(CENTRE, ANY)), draw(st.one_of(CENTRE, ANY))
    valid = all(math.isfinite(v) for v in (fx, fy, cx, cy)) and fx > 0 and fy > 0
    if valid:  # force one bad value so that every example is a bad K
        which = draw(st.sampled_from(["fx", "fy", "cx", "cy"]))
        bad = draw(BAD_FOCAL if which in ("fx", "fy") else st.sampled_from([math.nan, math.inf, -math.inf]))
        fx, fy, cx, cy = [bad if n == which else v for n, v in zip(("fx", "fy", "cx", "cy"), (fx, fy, cx, cy))]
    return k_matrix(fx, fy, cx, cy)


IMAGE = np.full((120, 160, 3), 128, np.uint8)


@fuzz_settings(150)
@given(bad_k())
def _bad_k_property(k):
    cam = CameraIntrinsics.from_k(k)
    assert not cam.is_valid()
    result = shared_fake_estimator().process(IMAGE, intrinsics=cam)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.position_is_ray
    eyes = face.keypoints.xy[[1, 2]].mean(axis=0)
    expected = geometry.unit_depth_ray(float(eyes[0]), float(eyes[1]), CameraIntrinsics.guess(160, 120))
    assert np.allclose(face.position, expected) and face.position[2] == 1.0
    assert np.all(np.isfinite(face.pose.as_array()))
    kind = "non-finite focal" if not (math.isfinite(cam.fx) and math.isfinite(cam.fy)) else \
        "zero/negative focal" if cam.fx <= 0 or cam.fy <= 0 else "non-finite centre"
    count(f"{MODULE}::camera_info_bad", f"{kind}: unit-depth ray")


def test_bad_camera_info_falls_back_to_unit_depth_ray():
    tried = run_counted(f"{MODULE}::camera_info_bad", _bad_k_property)
    assert sum(tried.values()) >= 100 and len(tried) == 3, tried


@fuzz_settings(100)
@given(GOOD_FOCAL, GOOD_FOCAL, CENTRE, CENTRE)
def _good_k_property(fx, fy, cx, cy):
    cam = CameraIntrinsics.from_k(k_matrix(fx, fy, cx, cy))
    assert cam.is_valid()
    face = shared_fake_estimator().process(IMAGE, intrinsics=cam).faces[0]
    assert np.all(np.isfinite(face.position)) and np.all(np.isfinite(face.pose.as_array()))
    if face.position_is_ray:  # only when the metric solution was degenerate: the ray under the given camera
        assert face.position[2] == 1.0
    else:
        assert face.position[2] > 0
    count(f"{MODULE}::camera_info_good", "ray" if face.position_is_ray else "metric position")


def test_valid_camera_info_gives_finite_positions():
    tried = run_counted(f"{MODULE}::camera_info_good", _good_k_property)
    assert tried["metric position"] >= 50, tried


@fuzz_settings(150)
@given(st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
       st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
       st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False, allow_infinity=False))
@example(5e-324, 1.0, 0.0, 0.0)  # a subnormal focal length: LAPACK fails inside estimate_position
@example(1e-300, 1e-300, 0.0, 0.0)
@example(500.0, 500.0, 1e308, -1e308)
def _any_k_property(fx, fy, cx, cy):
    """Whatever a broken driver puts in K (finite, positive focal lengths: is_valid() accepts them), the
    frame is processed (no exception) and the position is finite."""
    cam = CameraIntrinsics.from_k(k_matrix(fx, fy, cx, cy))
    with np.errstate(all="ignore"):
        face = shared_fake_estimator().process(IMAGE, intrinsics=cam).faces[0]
    assert np.all(np.isfinite(face.position)), (cam, face.position)
    assert np.all(np.isfinite(face.pose.as_array())), (cam, face.pose)
    count(f"{MODULE}::camera_info_any", "ray" if face.position_is_ray else "metric position")


def test_any_positive_camera_info_never_breaks_the_frame():
    """A K that passes is_valid() must never make process() raise (numpy LinAlgError) or return inf."""
    tried = run_counted(f"{MODULE}::camera_info_any", _any_k_property)
    assert sum(tried.values()) >= 100, tried


# --- the node's core: bad messages between good ones -------------------------------------------------------

def _header(i: int):
    return SimpleNamespace(stamp=SimpleNamespace(sec=100 + i, nanosec=0), frame_id="camera_optical")


@fuzz_settings(150)
@given(image_fields() | encoded_images())
def _core_property(case):
    from headpose_ros.ros.core import HeadPoseCore

    core = _CORE[0] if _CORE else _CORE.append(HeadPoseCore(fake_estimator())) or _CORE[0]
    if len(case) == 4:
        fields = case[0]
        msg = SimpleNamespace(header=_header(0), **fields)
        compressed = False
    else:
        codec, _, buf = case
        msg = SimpleNamespace(header=_header(0), format=codec[1:], data=buf[: len(buf) // 2])
        compressed = True
    try:
        out = core.process_msg(msg)
        count(f"{MODULE}::core", "processed")
        assert out.frame.image_size == (msg.width, msg.height)
    except ImageDecodeError:
        count(f"{MODULE}::core", "ImageDecodeError (truncated compressed)" if compressed else "ImageDecodeError")
    img, fields = good_frame()
    big = np.zeros((120, 160, 3), np.uint8)
    big[:12, :16] = img
    good = SimpleNamespace(header=_header(1), encoding="bgr8", height=120, width=160, step=480,
                           data=big.tobytes(), is_bigendian=0)
    after = core.process_msg(good)
    assert len(after.faces) == 1 and after.header.sec == 101 and np.array_equal(after.image, big)


_CORE: list = []


def test_core_keeps_processing_after_bad_messages():
    tried = run_counted(f"{MODULE}::core", _core_property)
    assert tried["processed"] >= 20 and tried["ImageDecodeError"] >= 20, tried
    assert decode_any_msg  # the decoder the core uses for both message kinds
