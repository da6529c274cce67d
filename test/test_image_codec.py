"""Decoding Image and CompressedImage fields to BGR8, and refusing malformed ones with a clear error."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headpose_ros.ros.image_codec import (SUPPORTED_ENCODINGS, ImageDecodeError, decode_any_msg, decode_compressed,
                                          decode_image)

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def fields(img: np.ndarray, pad: int = 0) -> tuple[int, int, int, bytes]:
    h, w = img.shape[:2]
    row = img.reshape(h, -1).view(np.uint8)
    step = row.shape[1] + pad
    buf = np.zeros((h, step), np.uint8)
    buf[:, :row.shape[1]] = row
    return h, w, step, buf.tobytes()


@pytest.mark.parametrize("encoding,make", [
    ("bgr8", lambda b: b),
    ("rgb8", lambda b: b[:, :, ::-1]),
    ("bgra8", lambda b: np.dstack([b, np.full(b.shape[:2], 7, np.uint8)])),
    ("rgba8", lambda b: np.dstack([b[:, :, ::-1], np.zeros(b.shape[:2], np.uint8)])),
    ("8UC3", lambda b: b),
])
def test_colour_encodings_give_the_same_bgr(encoding, make):
    h, w, step, data = fields(np.ascontiguousarray(make(BGR)))
    np.testing.assert_array_equal(decode_image(encoding, h, w, step, data), BGR)


def test_row_padding_is_skipped():
    h, w, step, data = fields(BGR, pad=5)
    assert step == 8 * 3 + 5
    np.testing.assert_array_equal(decode_image("bgr8", h, w, step, data), BGR)


def test_mono8_becomes_grey_bgr():
    grey = BGR[:, :, 0].copy()
    out = decode_image("mono8", 6, 8, 8, grey.tobytes())
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


@pytest.mark.parametrize("bigendian", [0, 1])
def test_16_bit_honours_endianness_and_scales_to_8_bits(bigendian):
    mono = (BGR[:, :, 0].astype(np.uint16) * 257)  # 8-bit value v -> 16-bit v * 257
    data = mono.astype(">u2" if bigendian else "<u2").tobytes()
    out = decode_image("mono16", 6, 8, 16, data, bigendian)
    assert np.abs(out[:, :, 0].astype(int) - BGR[:, :, 0]).max() <= 1


def test_bayer_and_yuv_decode_to_bgr8_of_the_right_size():
    bayer = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    assert decode_image("bayer_rggb8", 6, 8, 8, bayer.tobytes()).shape == (6, 8, 3)
    yuv = RNG.integers(0, 256, (6, 8, 2), dtype=np.uint8)
    assert decode_image("yuv422", 6, 8, 16, yuv.tobytes()).shape == (6, 8, 3)
    assert decode_image("yuyv", 6, 8, 16, yuv.tobytes()).shape == (6, 8, 3)


@pytest.mark.parametrize("data", [array.array("B", BGR.tobytes()), bytearray(BGR.tobytes()), memoryview(BGR.tobytes()),
                                  np.frombuffer(BGR.tobytes(), np.uint8), list(BGR.tobytes())])
def test_every_buffer_type_rclpy_or_rosbags_may_hand_over(data):
    np.testing.assert_array_equal(decode_image("bgr8", 6, 8, 24, data), BGR)


@pytest.mark.parametrize("args,match", [
    (("bgr8", 6, 8, 23, BGR.tobytes()), "step 23 is smaller"),
    (("bgr8", 6, 8, 24, BGR.tobytes()[:-1]), "truncated"),
    (("bgr8", 6, 8, 24, BGR.tobytes() + b"\0"), "oversized"),
    (("32FC1", 6, 8, 32, bytes(6 * 32)), "unsupported image encoding"),
    (("h264", 6, 8, 24, BGR.tobytes()), "unsupported image encoding"),
    (("bgr8", 0, 8, 24, b""), "empty"),
    (("bgr8", 6, -8, 24, BGR.tobytes()), "non-negative"),
    (("mono16", 6, 8, 17, bytes(6 * 17)), "multiple"),
    (("bgr8", 6, 8, 24, BGR.tobytes(), 2), "is_bigendian"),
    (("bgr8", 100_000, 100_000, 300_000, b""), "Mpx limit"),
    (("bgr8", 6, 8, 24, [1, 2, 300]), "not a byte buffer"),
    ((None, 6, 8, 24, BGR.tobytes()), "encoding must be a string"),
    (("yuv422", 6, 7, 14, bytes(6 * 14)), "cannot convert"),
])
def test_malformed_images_raise_a_clear_error(args, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_image(*args)


@settings(max_examples=150, deadline=None)
@given(encoding=st.sampled_from(SUPPORTED_ENCODINGS + ("32FC1", "", "BGR8", "nv12")), height=st.integers(-2, 12),
       width=st.integers(-2, 12), step=st.integers(-4, 80), size=st.integers(0, 900), bigendian=st.integers(0, 2))
def test_random_fields_decode_or_raise_image_decode_error(encoding, height, width, step, size, bigendian):
    data = bytes(RNG.integers(0, 256, size, dtype=np.uint8))
    try:
        out = decode_image(encoding, height, width, step, data, bigendian)
    except ImageDecodeError:
        return
    assert out.dtype == np.uint8 and out.shape == (height, width, 3)


def jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.mark.parametrize("fmt", ["jpeg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8", "JPG", ""])
def test_jpeg_decodes_to_bgr(fmt):
    big = cv2.resize(BGR, (64, 48), interpolation=cv2.INTER_NEAREST)
    out = decode_compressed(fmt, jpeg(big))
    assert out.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - big).mean() < 12


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", ""])
def test_png_is_lossless(fmt):
    np.testing.assert_array_equal(decode_compressed(fmt, png(BGR)), BGR)


def test_compressed_message_objects_decode():
    class Msg:
        format = "png"
        data = np.frombuffer(png(BGR), np.uint8)

    np.testing.assert_array_equal(decode_any_msg(Msg()), BGR)


@pytest.mark.parametrize("fmt,data,match", [
    ("jpeg", jpeg(BGR)[: len(jpeg(BGR)) // 2], "truncated|corrupt"),
    ("png", png(BGR)[:-20], "truncated"),
    ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 8, "IHDR"),
    ("jpeg", b"not an image at all", "neither JPEG nor PNG"),
    ("jpeg", b"", "neither JPEG nor PNG"),
    ("h264", jpeg(BGR), "unsupported compressed image format"),
    ("png", jpeg(BGR), "says png but the data is jpeg"),
    ("16UC1; compressedDepth", png(BGR), "depth"),
    ("jpeg", b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + b"\0" * 40 + b"\xff\xd9", "Mpx limit"),
])
def test_bad_compressed_images_raise_a_clear_error(fmt, data, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_compressed(fmt, data)


def test_corrupt_jpeg_body_is_refused_or_decoded_never_crashes():
    data = bytearray(jpeg(BGR))
    data[30:-10] = bytes(len(data) - 40)  # keep the SOI/header prefix and the end marker
    try:
        out = decode_compressed("jpeg", bytes(data))
    except ImageDecodeError:
        return
    assert out.shape[2] == 3


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["jpeg", "png", ""]))
def test_random_compressed_bytes_decode_or_raise_image_decode_error(blob, fmt):
    for data in (blob, b"\xff\xd8\xff" + blob, b"\x89PNG\r\n\x1a\n" + blob):
        try:
            decode_compressed(fmt, data)
        except ImageDecodeError:
            pass
