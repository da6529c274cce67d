"""Validating and decoding ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` to 8-bit BGR, without ROS.

The node and the offline bag tool both decode through this module, so a frame is accepted or refused the same
way online and offline. Every check names what is wrong (:class:`ImageDecodeError`); nothing here crashes on
malformed input: wrong ``step``, truncated or oversized ``data``, unknown encodings, non-image bytes,
truncated JPEG/PNG, headers announcing huge images. Colour conversion (Bayer, YUV 4:2:2, 16-bit) is
``rosbags.image``'s, on a buffer this module has validated and cut to the image's rows.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..estimator.images import MAX_PIXELS


class ImageDecodeError(ValueError):
    """An image message cannot be decoded; the message says why."""


@dataclass(frozen=True)
class _Raw:
    dtype: str  # numpy type of one channel ("u1" or "u2")
    channels: int  # channels per pixel in the buffer
    rosbags: str  # encoding name rosbags.image converts from


_RAW: dict[str, _Raw] = {
    "mono8": _Raw("u1", 1, "mono8"), "8uc1": _Raw("u1", 1, "mono8"),
    "mono16": _Raw("u2", 1, "mono16"), "16uc1": _Raw("u2", 1, "mono16"),
    "bgr8": _Raw("u1", 3, "bgr8"), "8uc3": _Raw("u1", 3, "bgr8"),
    "rgb8": _Raw("u1", 3, "rgb8"),
    "bgra8": _Raw("u1", 4, "bgra8"), "8uc4": _Raw("u1", 4, "bgra8"),
    "rgba8": _Raw("u1", 4, "rgba8"),
    "bgr16": _Raw("u2", 3, "bgr16"), "16uc3": _Raw("u2", 3, "bgr16"), "rgb16": _Raw("u2", 3, "rgb16"),
    "bgra16": _Raw("u2", 4, "bgra16"), "16uc4": _Raw("u2", 4, "bgra16"), "rgba16": _Raw("u2", 4, "rgba16"),
    "yuv422": _Raw("u1", 2, "uyvy"), "uyvy": _Raw("u1", 2, "uyvy"),
    "yuyv": _Raw("u1", 2, "yuyv"), "yuv422_yuy2": _Raw("u1", 2, "yuyv"),
    **{f"bayer_{p}{d}": _Raw("u1" if d == 8 else "u2", 1, f"bayer_{p}{d}")
       for p in ("rggb", "bggr", "gbrg", "grbg") for d in (8, 16)},
}
#: Raw encodings the decoder takes (lower case; ROS's ``8UC3`` and friends are accepted in any case).
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(sorted(_RAW))
#: CompressedImage formats: image_transport's ``compressed`` plugin strings ("bgr8; jpeg compressed bgr8",
#: "rgb8; png compressed bgr8") and the bare "jpeg", "jpg", "png".
SUPPORTED_COMPRESSED = ("jpeg", "png")

_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
#: JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), which carry the image size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_TAIL = 64  # bytes after the end marker tolerated (padding some encoders add)


def _as_bytes_array(data: Any) -> np.ndarray:
    """A flat uint8 view of ``data`` (bytes, bytearray, memoryview, array.array('B'), numpy array, list)."""
    if isinstance(data, np.ndarray) and data.dtype == np.uint8:
        return data.reshape(-1)
    if not isinstance(data, (np.ndarray, list, tuple, str)):
        try:
            return np.frombuffer(data, dtype=np.uint8)
        except (TypeError, ValueError, BufferError):
            pass
    try:
        arr = np.asarray(data)
        if arr.size == 0:
            return np.zeros(0, np.uint8)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) and arr.min() >= 0 and arr.max() <= 255):
            raise ValueError
        return arr.astype(np.uint8)
    except (TypeError, ValueError, OverflowError):
        raise ImageDecodeError(f"image data of type {type(data).__name__} is not a byte buffer") from None


def _check_size(width: Any, height: Any, what: str) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ImageDecodeError(f"{what} {name} must be a non-negative integer, not {value!r}")
    w, h = int(width), int(height)
    if w == 0 or h == 0:
        raise ImageDecodeError(f"{what} is empty ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise ImageDecodeError(f"{what} of {w}x{h} exceeds the {MAX_PIXELS // 1_000_000} Mpx limit")
    return w, h


def decode_image(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: int = 0) -> np.ndarray:
    """An (height, width, 3) uint8 BGR array from the fields of a ``sensor_msgs/Image``.

    ``data`` must hold exactly ``step * height`` bytes, ``step`` at least ``width`` times the pixel size
    (row padding is allowed) and a multiple of the channel size; 16-bit data honours ``is_bigendian`` (0 or 1)
    and is scaled to 8 bits.
    """
    if not isinstance(encoding, str):
        raise ImageDecodeError(f"image encoding must be a string, not {encoding!r}")
    spec = _RAW.get(encoding.strip().lower())
    if spec is None:
        raise ImageDecodeError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    w, h = _check_size(width, height, "image")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise ImageDecodeError(f"image step must be an integer, not {step!r}")
    if is_bigendian not in (0, 1, False, True):
        raise ImageDecodeError(f"image is_bigendian must be 0 or 1, not {is_bigendian!r}")
    itemsize = np.dtype(spec.dtype).itemsize
    row_bytes = w * spec.channels * itemsize
    step = int(step)
    if step < row_bytes:
        raise ImageDecodeError(
            f"image step {step} is smaller than width x bytes per pixel = {w} x {spec.channels * itemsize} = "
            f"{row_bytes} for {encoding!r}")
    if step % itemsize:
        raise ImageDecodeError(f"image step {step} is not a multiple of the {itemsize}-byte channel size")
    buf = _as_bytes_array(data)
    if buf.size != step * h:
        kind = "truncated" if buf.size < step * h else "oversized"
        raise ImageDecodeError(f"image data is {kind}: {buf.size} bytes, expected step x height = {step} x {h} = "
                               f"{step * h}")
    rows = np.ascontiguousarray(buf.reshape(h, step)[:, :row_bytes])
    dtype = np.dtype(spec.dtype).newbyteorder(">" if is_bigendian else "<")
    pixels = rows.view(dtype).astype(np.dtype(spec.dtype).newbyteorder("="), copy=False)
    pixels = pixels.reshape(h, w, spec.channels) if spec.channels > 1 else pixels.reshape(h, w)
    return _to_bgr8(pixels, spec.rosbags, encoding)


def _to_bgr8(pixels: np.ndarray, rosbags_encoding: str, encoding: str) -> np.ndarray:
    from rosbags.image.image import ImageError as RosbagsImageError
    from rosbags.image.image import convert_color

    try:
        out = convert_color(pixels, rosbags_encoding, "bgr8")
    except (RosbagsImageError, ValueError) as exc:  # cv2.error is an Exception subclass of its own
        raise ImageDecodeError(f"cannot convert {encoding!r} to bgr8: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - cv2.error on odd sizes (e.g. odd-width YUV 4:2:2)
        raise ImageDecodeError(f"cannot convert {encoding!r} to bgr8: {type(exc).__name__}: {exc}") from None
    out = np.asarray(out)
    if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != 3:
        raise ImageDecodeError(f"conversion of {encoding!r} gave {out.dtype} {out.shape}, not bgr8")
    return np.ascontiguousarray(out)


def decode_image_msg(msg: Any) -> np.ndarray:
    """:func:`decode_image` on a ``sensor_msgs/Image`` (rclpy or rosbags class)."""
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, msg.is_bigendian)


# --- compressed --------------------------------------------------------------------------------------------

def sniff_compressed(data: bytes) -> Optional[str]:
    """``jpeg`` or ``png`` from the data's signature, None for anything else."""
    if data.startswith(_JPEG_SOI):
        return "jpeg"
    if data.startswith(_PNG_SIG):
        return "png"
    return None


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageDecodeError("PNG data has no IHDR header (truncated or corrupt)")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageDecodeError(f"JPEG data is corrupt (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header, or a bad length
            break
        i += 2 + length
    raise ImageDecodeError("JPEG data has no frame header (truncated or corrupt)")


def decode_compressed(fmt: str, data: Any) -> np.ndarray:
    """An (H, W, 3) uint8 BGR array from the fields of a ``sensor_msgs/CompressedImage`` (JPEG or PNG).

    ``fmt`` is the message's ``format``: empty (the data's signature decides), ``jpeg``/``jpg``/``png``, or an
    image_transport string such as ``"rgb8; jpeg compressed bgr8"``; depth (``compressedDepth``) and other
    codecs are refused. The header's image size is checked before decoding, and a JPEG without its end marker
    or a PNG without its IEND chunk is refused as truncated.
    """
    if not isinstance(fmt, str):
        raise ImageDecodeError(f"compressed image format must be a string, not {fmt!r}")
    low = fmt.strip().lower()
    if "compresseddepth" in low:
        raise ImageDecodeError(f"compressed depth images ({fmt!r}) are not camera images; subscribe to a colour topic")
    declared = "jpeg" if ("jpeg" in low or "jpg" in low) else "png" if "png" in low else None
    if low and declared is None:
        raise ImageDecodeError(f"unsupported compressed image format {fmt!r}; supported: jpeg, png")
    raw = _as_bytes_array(data).tobytes()
    kind = sniff_compressed(raw)
    if kind is None:
        raise ImageDecodeError(f"compressed image data is neither JPEG nor PNG ({len(raw)} bytes, starting "
                               f"{raw[:8].hex() or 'empty'})")
    if declared is not None and declared != kind:
        raise ImageDecodeError(f"compressed image format says {declared} but the data is {kind}")
    width, height = _png_size(raw) if kind == "png" else _jpeg_size(raw)
    _check_size(width, height, f"{kind.upper()} image")
    tail = raw.rstrip(b"\x00")[-_TAIL:]
    if (kind == "jpeg" and _JPEG_EOI not in tail) or (kind == "png" and _PNG_IEND not in tail):
        raise ImageDecodeError(f"{kind.upper()} data is truncated (no end marker)")
    import cv2

    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        raise ImageDecodeError(f"{kind.upper()} data is corrupt (the decoder refused it)")
    return np.ascontiguousarray(image)


def decode_compressed_msg(msg: Any) -> np.ndarray:
    """:func:`decode_compressed` on a ``sensor_msgs/CompressedImage`` (rclpy or rosbags class)."""
    return decode_compressed(msg.format, msg.data)


def decode_any_msg(msg: Any) -> np.ndarray:
    """Decode an Image or a CompressedImage message, told apart by their fields."""
    return decode_compressed_msg(msg) if hasattr(msg, "format") else decode_image_msg(msg)


def bgr8_fields(image: np.ndarray) -> tuple[int, int, int, bytes]:
    """(height, width, step, data) of an (H, W, 3) uint8 BGR image as a ``bgr8`` ``sensor_msgs/Image``."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"a bgr8 image must be (H, W, 3), not {img.shape}")
    h, w = img.shape[:2]
    return h, w, w * 3, img.tobytes()
