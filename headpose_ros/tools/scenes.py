"""Generated test scenes from public images: faces pasted small into HD frames, and frames with no face.

Sources are images that ship with the project's dependencies (no download, no development data):
scikit-image's ``data`` module (the astronaut, the cameraman, the cat "chelsea", coffee, a rocket, textures)
and matplotlib's sample photograph of Grace Hopper. Every scene is a pure function of its arguments and a
seed, so tests and benchmarks see the same pixels on every run.

- :func:`face_scene`: a face of a chosen width (pixels, the detector's box width) pasted with its head and
  some context at a random place of a smooth noisy background of a chosen frame size; returns the frame
  and the true face box.
- :func:`negative_scenes`: frames without any face, of the kinds a robot meets and a face detector confuses:
  textures, objects, the astronaut's helmet and mission patch, animals; optionally the other portraits'
  non-face regions and more pictures, turned and mirrored crops of them, and mosaics of crops and textures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from ..estimator.errors import HeadPoseError
from ..estimator.types import FaceBox


@dataclass(frozen=True)
class FaceSource:
    """A photograph (BGR uint8) and its face's box in it (image pixels, BlazeFace's box, measured once);
    ``ypr`` is the face's labelled (yaw, pitch, roll) in degrees where a dataset gives it."""

    name: str
    image: np.ndarray
    box: FaceBox
    ypr: Optional[tuple[float, float, float]] = None


def _skimage_data():
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - scikit-image is a test/bench dependency
        raise HeadPoseError("generated scenes need scikit-image (pip install scikit-image)") from exc
    return data


def _bgr(rgb_or_gray: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb_or_gray)
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, 2::-1])


def face_sources() -> list[FaceSource]:
    """Public-domain portraits with their face boxes: the astronaut, her mirror image, Grace Hopper, the cameraman."""
    data = _skimage_data()
    astronaut = _bgr(data.astronaut())
    sources = [
        FaceSource("astronaut", astronaut, FaceBox(177.6, 82.9, 272.9, 178.2)),
        FaceSource("astronaut_mirrored", np.ascontiguousarray(astronaut[:, ::-1]),
                   FaceBox(512 - 272.9, 82.9, 512 - 177.6, 178.2)),
        FaceSource("cameraman", _bgr(data.camera()), FaceBox(199.6, 122.7, 275.6, 198.7)),
    ]
    try:
        import cv2
        from matplotlib import cbook

        grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
        if grace is not None:
            sources.append(FaceSource("grace_hopper", grace, FaceBox(171.4, 146.9, 365.8, 341.4)))
    except (ImportError, OSError, ValueError):  # matplotlib is optional: three sources remain
        pass
    return sources


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field with sensor-like noise, (H, W, 3) uint8 BGR, ``size`` = (width, height)."""
    import cv2

    width, height = size
    coarse = rng.uniform(40, 220, (4, 6, 3)).astype(np.float32)
    base = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(base + rng.normal(0, 4, (height, width, 3)), 0, 255).astype(np.uint8)


def face_scene(source: FaceSource, face_width: float, size: tuple[int, int], rng: np.random.Generator,
               context: float = 1.6) -> tuple[np.ndarray, FaceBox]:
    """A ``size`` (width, height) frame with ``source``'s face scaled to ``face_width`` px at a random place.

    The pasted patch is the square of ``context`` x the face box around it (head and hair, cut where the
    photograph ends) with a feathered edge; returns the frame and the face's true box in it.
    """
    import cv2

    width, height = size
    scale = face_width / source.box.width
    cx, cy = source.box.center
    half = 0.5 * context * max(source.box.width, source.box.height)
    h, w = source.image.shape[:2]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    patch = source.image[y0:y1, x0:x1]
    pw, ph = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (pw, ph), interpolation=interp).astype(np.float32)
    frame = background(size, rng).astype(np.float32)
    px = int(rng.integers(0, max(1, width - pw)))
    py = int(rng.integers(0, max(1, height - ph)))
    feather = max(1.0, 0.08 * min(pw, ph))
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    edge = np.minimum(np.minimum(xx + 0.5, pw - 0.5 - xx), np.minimum(yy + 0.5, ph - 0.5 - yy))
    alpha = np.clip(edge / feather, 0.0, 1.0)[:, :, None]
    region = frame[py:py + ph, px:px + pw]
    frame[py:py + ph, px:px + pw] = alpha * patch[: region.shape[0], : region.shape[1]] + (1 - alpha) * region
    ox, oy = px - x0 * scale, py - y0 * scale
    box = FaceBox(ox + source.box.x0 * scale, oy + source.box.y0 * scale,
                  ox + source.box.x1 * scale, oy + source.box.y1 * scale, 1.0)
    return np.clip(frame, 0, 255).astype(np.uint8), box


# --- scenes without faces ------------------------------------------------------------------------------------

#: Rows and columns of the astronaut photograph without her face: the helmet, the mission patch, the lower
#: half (suit, patch, helmet), the right side (rocket, helmet), the flag.
ASTRONAUT_NON_FACE = {
    "helmet": (slice(330, 512), slice(260, 512)),
    "patch": (slice(320, 440), slice(110, 230)),
    "lower_half": (slice(256, 512), slice(0, 512)),
    "right_side": (slice(0, 512), slice(300, 512)),
    "flag": (slice(0, 512), slice(0, 120)),
}
#: scikit-image images without a face: objects, animals and textures.
SKIMAGE_NON_FACE = ("coffee", "rocket", "chelsea", "coins", "moon", "hubble_deep_field", "retina",
                    "immunohistochemistry", "motorcycle", "clock", "page", "text", "logo", "colorwheel", "cell",
                    "brick", "grass", "gravel", "horse", "checkerboard")


#: Non-face regions (rows, columns) of the other portraits: Grace Hopper's cap with its badge, her uniform
#: with ribbons and insignia, the flag; the cameraman's camera and tripod, his coat and the field.
PORTRAIT_NON_FACE = {
    "grace_hopper_cap": (slice(0, 135), slice(130, 390)),
    "grace_hopper_uniform": (slice(380, 600), slice(0, 512)),
    "grace_hopper_flag": (slice(0, 600), slice(0, 130)),
    "cameraman_camera": (slice(100, 512), slice(300, 512)),
    "cameraman_lower_half": (slice(240, 512), slice(0, 512)),
}
#: More pictures without a face: scikit-image's blobs, microaneurysms (retina) and Shepp-Logan phantom (a
#: head-shaped oval), matplotlib's sample present box, logo, terrain maps and MRI slice of a head.
EXTRA_NON_FACE = ("binary_blobs", "microaneurysms", "shepp_logan_phantom", "mpl_present", "mpl_logo",
                  "mpl_topobathy", "mpl_jacksboro_dem", "mpl_mri")
#: Kinds of :func:`negative_scenes`: the first three are the default (the figures of the docs were measured on
#: them); ``photo`` adds the pictures above, ``crops`` turned, mirrored, scaled crops of every non-face picture
#: and ``mosaic`` frames tiled with such crops and textures.
DEFAULT_KINDS = ("astronaut", "skimage", "texture")
KINDS = DEFAULT_KINDS + ("photo", "crops", "mosaic")


def _skimage_image(name: str) -> np.ndarray:
    data = _skimage_data()
    if name == "motorcycle":
        return _bgr(data.stereo_motorcycle()[0])
    if name.startswith("mpl_"):
        return _matplotlib_image(name[4:])
    return _bgr(getattr(data, name)())


def _normalised(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, [1, 99])
    return np.clip((values - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def _matplotlib_image(name: str) -> np.ndarray:
    """One of matplotlib's sample pictures without a face, BGR uint8 (maps rendered with a colour map)."""
    import gzip

    import cv2
    from matplotlib import cbook

    def path(filename: str) -> str:
        return str(cbook.get_sample_data(filename, asfileobj=False))

    if name in ("present", "logo"):
        img = cv2.imread(path("Minduka_Present_Blue_Pack.png" if name == "present" else "logo2.png"),
                         cv2.IMREAD_UNCHANGED)
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        return (img[:, :, :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    if name == "mri":
        with gzip.open(path("s1045.ima.gz")) as fh:
            return _bgr(_normalised(np.frombuffer(fh.read(), ">u2").reshape(256, 256).astype(np.float64)))
    filename, key, colour_map = {"topobathy": ("topobathy.npz", "topo", cv2.COLORMAP_JET),
                                 "jacksboro_dem": ("jacksboro_fault_dem.npz", "elevation", cv2.COLORMAP_HOT)}[name]
    with np.load(path(filename)) as npz:
        grey = (255 * _normalised(npz[key].astype(np.float64))).astype(np.uint8)
    return cv2.resize(cv2.applyColorMap(grey, colour_map), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)


def non_face_pictures() -> dict[str, Callable[[], np.ndarray]]:
    """Every picture without a face (name -> BGR uint8 maker): the non-face regions of the three portraits,
    scikit-image's pictures and the extra ones."""
    data = _skimage_data()
    astronaut, camera = _bgr(data.astronaut()), _bgr(data.camera())
    makers: dict[str, Callable[[], np.ndarray]] = {}
    for name, (rows, cols) in ASTRONAUT_NON_FACE.items():
        makers[f"astronaut_{name}"] = lambda r=rows, c=cols: np.ascontiguousarray(astronaut[r, c])
    portraits = {"cameraman": camera, "grace_hopper": _grace_hopper()}
    for name, (rows, cols) in PORTRAIT_NON_FACE.items():
        portrait = portraits[name.rsplit("_", 1)[0].replace("_lower", "")]
        if portrait is not None:  # Grace Hopper's needs matplotlib
            makers[name] = lambda r=rows, c=cols, p=portrait: np.ascontiguousarray(p[r, c])
    for name in SKIMAGE_NON_FACE + EXTRA_NON_FACE:
        makers[name] = lambda n=name: _skimage_image(n)
    return makers


def _grace_hopper() -> Optional[np.ndarray]:
    try:
        import cv2
        from matplotlib import cbook

        return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except (ImportError, OSError, ValueError):  # matplotlib is optional
        return None


def turn_image(img: np.ndarray, angle_deg: float, fill: Sequence[float] = (128, 128, 128),
               expand: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``img`` turned clockwise on screen by ``angle_deg`` about its centre, and the 2x3 map of image pixels into the
    turned one. ``expand``: the canvas grows to hold the whole turned image; else it keeps ``img``'s size (corners
    are cut). Uncovered pixels get ``fill``."""
    import cv2

    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -float(angle_deg), 1.0)  # OpenCV's positive angle is anticlockwise
    size = (w, h)
    if expand:
        c, s = abs(m[0, 0]), abs(m[0, 1])
        size = (int(np.ceil(w * c + h * s - 1e-9)), int(np.ceil(w * s + h * c - 1e-9)))
        m[:, 2] += np.array([(size[0] - w) / 2, (size[1] - h) / 2])
    return cv2.warpAffine(img, m, size, borderValue=tuple(float(v) for v in fill)), m


def turned_crop(img: np.ndarray, rng: np.random.Generator, side: int = 256) -> np.ndarray:
    """A random square crop of ``img`` (15-70 % of its shorter side), turned by a random angle about its centre,
    mirrored half the time, resized to ``side`` pixels (BGR uint8)."""
    import cv2

    h, w = img.shape[:2]
    crop = float(rng.uniform(0.15, 0.7)) * min(h, w)
    cx, cy = rng.uniform(crop / 2, w - crop / 2), rng.uniform(crop / 2, h - crop / 2)
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(rng.uniform(-180, 180)), side / crop)
    m[:, 2] += np.array([side / 2 - cx, side / 2 - cy])
    out = cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_AREA if crop > side else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(out[:, ::-1]) if rng.random() < 0.5 else out


def mosaic(pictures: list[np.ndarray], size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A ``size`` frame tiled with a random 2x2 to 4x4 grid of turned crops of ``pictures`` and of textures."""
    import cv2

    width, height = size
    rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    frame = np.zeros((height, width, 3), np.uint8)
    ys, xs = np.linspace(0, height, rows + 1).astype(int), np.linspace(0, width, cols + 1).astype(int)
    for r in range(rows):
        for c in range(cols):
            tw, th = xs[c + 1] - xs[c], ys[r + 1] - ys[r]
            if rng.random() < 0.25:
                tile = texture(str(rng.choice(["noise", "stripes", "checks", "blobs"])), (tw, th), rng)
            else:
                tile = cv2.resize(turned_crop(pictures[int(rng.integers(len(pictures)))], rng), (tw, th),
                                  interpolation=cv2.INTER_AREA)
            frame[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = tile
    return frame


def texture(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A synthetic texture (H, W, 3) uint8 BGR: ``noise`` (smoothed colour noise at a random scale),
    ``stripes``, ``checks`` or ``blobs``."""
    import cv2

    width, height = size
    if kind == "noise":
        sigma = float(rng.choice([1.0, 3.0, 8.0, 20.0]))
        img = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), sigma)
        img = (img - img.mean()) * (60.0 / (img.std() + 1e-6)) + 128
    elif kind in ("stripes", "checks"):
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 80)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        wave = np.sin(2 * np.pi * u / period)
        if kind == "checks":
            wave = wave * np.sin(2 * np.pi * (-np.sin(angle) * xx + np.cos(angle) * yy) / period)
        colours = rng.uniform(0, 255, (2, 3))
        t = (wave > 0).astype(np.float32)[:, :, None]
        img = t * colours[0] + (1 - t) * colours[1]
    elif kind == "blobs":
        small = rng.random((height // 8 + 1, width // 8 + 1)).astype(np.float32)
        field = cv2.resize(cv2.GaussianBlur(small, (0, 0), 2.0), (width, height))
        mask = (field > np.median(field)).astype(np.float32)[:, :, None]
        colours = rng.uniform(0, 255, (2, 3))
        img = mask * colours[0] + (1 - mask) * colours[1]
    else:
        raise ValueError(f"unknown texture {kind!r}")
    img = img + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _fit(img: np.ndarray, size: tuple[int, int], rng: np.random.Generator, fill: float) -> np.ndarray:
    """``img`` scaled to ``fill`` of the frame's height at a random place on a background of ``size``."""
    import cv2

    width, height = size
    frame = background(size, rng)
    scale = min(fill * height / img.shape[0], 0.95 * width / img.shape[1])
    pw, ph = max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale))
    patch = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = int(rng.integers(0, max(1, width - pw + 1))), int(rng.integers(0, max(1, height - ph + 1)))
    frame[py:py + ph, px:px + pw] = patch
    return frame


def negative_scenes(seed: int, size: tuple[int, int] = (640, 480), per_source: int = 2,
                    kinds: Optional[tuple[str, ...]] = None) -> Iterator[tuple[str, np.ndarray]]:
    """Frames without a face, ``(name, BGR image)``: each non-face source ``per_source`` times, at a random
    scale (20-100 % of the frame's height) and place, and ``4 * per_source`` textures of each kind.

    ``kinds`` are some of :data:`KINDS` (default :data:`DEFAULT_KINDS`): ``photo`` adds each picture of
    :data:`PORTRAIT_NON_FACE` and :data:`EXTRA_NON_FACE` ``per_source`` times, ``crops`` ``20 * per_source``
    turned, mirrored crops of random non-face pictures (:func:`turned_crop`) and ``mosaic`` ``8 * per_source``
    frames tiled with such crops and textures (:func:`mosaic`). Different seeds give different placements,
    scales and textures (use one seed to tune, another to validate).
    """
    rng = np.random.default_rng(seed)
    kinds = kinds or DEFAULT_KINDS
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds of negative scenes {sorted(unknown)}; known: {KINDS}")
    makers: list[tuple[str, Callable[[], np.ndarray]]] = []
    if "astronaut" in kinds:
        astronaut = _bgr(_skimage_data().astronaut())
        for name, (rows, cols) in ASTRONAUT_NON_FACE.items():
            makers.append((f"astronaut_{name}", lambda r=rows, c=cols: np.ascontiguousarray(astronaut[r, c])))
    if "skimage" in kinds:
        for name in SKIMAGE_NON_FACE:
            makers.append((name, lambda n=name: _skimage_image(n)))
    for name, make in makers:
        img = make()
        for i in range(per_source):
            yield f"{name}_{i}", _fit(img, size, rng, float(rng.uniform(0.2, 1.0)))
    if "texture" in kinds:
        for kind in ("noise", "stripes", "checks", "blobs"):
            for i in range(4 * per_source):
                yield f"texture_{kind}_{i}", texture(kind, size, rng)
    if not {"photo", "crops", "mosaic"} & set(kinds):
        return
    # the new kinds draw from their own stream, so that adding them leaves the default kinds' frames as they were
    rng = np.random.default_rng([seed, 1])
    pictures = non_face_pictures()
    if "photo" in kinds:
        for name in list(PORTRAIT_NON_FACE) + list(EXTRA_NON_FACE):
            if name in pictures:
                img = pictures[name]()
                for i in range(per_source):
                    yield f"{name}_{i}", _fit(img, size, rng, float(rng.uniform(0.2, 1.0)))
    images = {name: make() for name, make in pictures.items()}
    names = sorted(images)
    if "crops" in kinds:
        for i in range(20 * per_source):
            name = names[int(rng.integers(len(names)))]
            yield f"crop_{name}_{i}", _fit(turned_crop(images[name], rng), size, rng, float(rng.uniform(0.2, 1.0)))
    if "mosaic" in kinds:
        for i in range(8 * per_source):
            yield f"mosaic_{i}", mosaic([images[n] for n in names], size, rng)


__all__ = ["FaceSource", "face_sources", "background", "face_scene", "texture", "negative_scenes", "non_face_pictures",
           "turned_crop", "mosaic", "ASTRONAUT_NON_FACE", "PORTRAIT_NON_FACE", "SKIMAGE_NON_FACE", "EXTRA_NON_FACE",
           "DEFAULT_KINDS", "KINDS"]
