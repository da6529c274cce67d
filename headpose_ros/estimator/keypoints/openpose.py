"""OpenPose's own part heatmaps of the nose, eyes and ears (the original paper's keypoint source).

Written against OpenPose's documented Python API (``pyopenpose``, built from source with ``BUILD_PYTHON=ON``):
``op.WrapperPython()``, ``configure(params)`` with OpenPose's command-line flags, ``start()``, ``op.Datum`` with
``cvInputData``, ``emplaceAndPop(op.VectorDatum([datum]))`` (a plain list before OpenPose 1.7) and
``datum.poseHeatMaps``, an array (channels, height, width) at the network's input resolution holding the part
maps (``heatmaps_add_parts``) in the model's body-part order, then the background map when
``heatmaps_add_bkg`` is set. With ``heatmaps_scale=2`` the maps are integers in [0, 255].

As in the paper, OpenPose runs on each face's crop (the detector's box, made square; ``crop_scale`` 1), at the
``96x96`` network resolution of the shipped ``openpose`` model's training data (BIWI crops from dlib's CNN
detector, OpenPose COCO at 96x96). The five channels nose, right eye, left eye, right ear, left ear are
COCO 0, 14, 15, 16, 17 or BODY_25 0, 15, 16, 17, 18 (OpenPose's right/left are the subject's). They are resized to
96x96 over the crop (a no-op at the default resolution) and divided by 255, which is exactly how the ``openpose``
model's uint8 training heatmaps are scaled (uint8 / 255 -> float32 in [0, 1]); ``heatmap_kind = "openpose"``.

Keypoints are the channels' peaks (refined to sub-pixel by the 3x3 centroid around the maximum) in image pixels,
with the peak value (in [0, 1]) as confidence. A face whose five peaks all stay below ``min_peak`` gets None.
The module imports ``pyopenpose`` only when the backend is created.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..types import HEATMAP_SIZE, NUM_KEYPOINTS, FaceBox, FaceKeypoints, Keypoints

#: OpenPose heatmap channel of each keypoint (KEYPOINT_NAMES order) per pose model.
PART_CHANNELS: dict[str, tuple[int, ...]] = {"COCO": (0, 14, 15, 16, 17), "BODY_25": (0, 15, 16, 17, 18)}
#: Crops smaller than this (pixels) are not handed to OpenPose: no parts can be found in them.
MIN_CROP_PX = 8
#: Number of body parts (part heatmaps before the background map) per pose model.
NUM_PARTS = {"COCO": 18, "BODY_25": 25}
#: Files OpenPose loads from ``model_folder`` per pose model (checked up front: OpenPose's own error is cryptic).
MODEL_FILES = {
    "COCO": ("pose/coco/pose_deploy_linevec.prototxt", "pose/coco/pose_iter_440000.caffemodel"),
    "BODY_25": ("pose/body_25/pose_deploy.prototxt", "pose/body_25/pose_iter_584000.caffemodel"),
}

MISSING_PYOPENPOSE = (
    "the openpose keypoint source needs OpenPose's Python API (pyopenpose), which is not importable. It is not on "
    "PyPI: build OpenPose from source (https://github.com/CMU-Perceptual-Computing-Lab/openpose, "
    "doc/installation/0_index.md) with `cmake -DBUILD_PYTHON=ON ..`, then either `sudo make install` (puts "
    "`openpose/pyopenpose*.so` under /usr/local/python) or add `<openpose>/build/python` to PYTHONPATH, so that "
    "`from openpose import pyopenpose` works. Its option model_folder must point at OpenPose's `models/` folder "
    "(fetched by models/getModels.sh), e.g. keypoint_options: {model_folder: /opt/openpose/models}.")


def import_pyopenpose() -> Any:
    """``pyopenpose`` as installed by OpenPose (``from openpose import pyopenpose``, else ``import pyopenpose``)."""
    try:
        from openpose import pyopenpose as op  # type: ignore[import-not-found]
        return op
    except ImportError:
        pass
    try:
        import pyopenpose as op  # type: ignore[import-not-found]
        return op
    except ImportError as exc:
        raise BackendUnavailableError(MISSING_PYOPENPOSE) from exc


def _parse_resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"openpose net_resolution must look like '96x96' (width x height), not {text!r}") from None
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        raise ConfigError(f"openpose net_resolution must be positive multiples of 16 such as '96x96', not {text!r}")
    return w, h


def peak(channel: np.ndarray) -> tuple[float, float, float]:
    """(x, y, value) of a map's maximum; x, y are map pixels in the corner convention (pixel centres at +0.5),
    refined by the value-weighted centroid of the 3x3 neighbourhood."""
    h, w = channel.shape
    i, j = np.unravel_index(int(np.argmax(channel)), channel.shape)
    value = float(channel[i, j])
    i0, i1, j0, j1 = max(i - 1, 0), min(i + 2, h), max(j - 1, 0), min(j + 2, w)
    patch = np.clip(channel[i0:i1, j0:j1].astype(np.float64), 0.0, None)
    total = patch.sum()
    if total > 0:
        ys, xs = np.mgrid[i0:i1, j0:j1]
        return float((xs * patch).sum() / total) + 0.5, float((ys * patch).sum() / total) + 0.5, value
    return j + 0.5, i + 0.5, value


class OpenPoseKeypoints:
    """OpenPose part heatmaps of each face crop; ``heatmap_kind = "openpose"``.

    Options: ``model_folder`` (required: OpenPose's ``models/`` folder), ``model_pose`` ``COCO`` (the shipped
    ``openpose`` model's) or ``BODY_25``, ``net_resolution`` (``"96x96"``), ``crop_scale`` (crop side / box side),
    ``heatmaps_add_bkg``, ``min_peak`` (in [0, 1]) and ``params``: further OpenPose flags passed to
    ``configure`` as they are (``num_gpu``, ``disable_multi_thread``...).
    """

    heatmap_kind = "openpose"

    def __init__(self, model_folder: Optional[str] = None, model_pose: str = "COCO", net_resolution: str = "96x96",
                 crop_scale: float = 1.0, heatmaps_add_bkg: bool = False, min_peak: float = 0.1,
                 params: Optional[Mapping[str, Any]] = None):
        if model_pose not in PART_CHANNELS:
            raise ConfigError(f"openpose model_pose must be one of {', '.join(PART_CHANNELS)}, not {model_pose!r}")
        self.net_size = _parse_resolution(net_resolution)
        if isinstance(crop_scale, bool) or not isinstance(crop_scale, (int, float)) or not 0.5 <= crop_scale <= 4.0:
            raise ConfigError(f"openpose crop_scale must be a number in [0.5, 4], not {crop_scale!r}")
        if isinstance(min_peak, bool) or not isinstance(min_peak, (int, float)) or not 0.0 <= min_peak <= 1.0:
            raise ConfigError(f"openpose min_peak must be a number in [0, 1], not {min_peak!r}")
        if params is not None and not isinstance(params, Mapping):
            raise ConfigError(f"openpose params must be a mapping of OpenPose flags, not {params!r}")
        self._op = import_pyopenpose()
        if not model_folder:
            raise ConfigError(
                "the openpose keypoint source needs the option model_folder: OpenPose's models/ folder, e.g. "
                "keypoint_options: {model_folder: /opt/openpose/models}")
        folder = Path(model_folder).expanduser()
        missing = [str(folder / f) for f in MODEL_FILES[model_pose] if not (folder / f).is_file()]
        if missing:
            raise BackendUnavailableError(
                f"OpenPose model_folder {folder} lacks the {model_pose} model ({', '.join(missing)}); point "
                "model_folder at OpenPose's models/ folder and run models/getModels.sh there")
        self.model_pose, self.crop_scale, self.min_peak = model_pose, float(crop_scale), float(min_peak)
        self.channels = PART_CHANNELS[model_pose]
        self.params: dict[str, Any] = {
            "model_folder": str(folder) + os.sep,
            "model_pose": model_pose,
            "net_resolution": f"{self.net_size[0]}x{self.net_size[1]}",
            "heatmaps_add_parts": True,
            "heatmaps_add_bkg": bool(heatmaps_add_bkg),
            "heatmaps_add_PAFs": False,
            "heatmaps_scale": 2,
            "render_pose": 0,
        }
        self.params.update(dict(params or {}))
        try:
            import cv2
        except ImportError as exc:
            raise BackendUnavailableError("the openpose keypoint source needs OpenCV (mediapipe brings it)") from exc
        self._cv2 = cv2
        self._wrapper = self._op.WrapperPython()
        self._wrapper.configure(self.params)
        self._wrapper.start()

    def crop(self, image_bgr: np.ndarray, box: FaceBox) -> tuple[np.ndarray, float, float, float]:
        """The square BGR crop of one face at its native resolution (black outside the image) and its top-left
        corner x0, y0 and side, image pixels."""
        cx, cy = box.center
        side = self.crop_scale * max(box.width, box.height, 1.0)
        px = max(int(round(side)), 1)
        x0, y0 = cx - side / 2.0, cy - side / 2.0
        s = px / side
        # Pixel-index affine (centres at integers) of the corner-convention map image -> crop: c' = s (c - origin).
        m = np.array([[s, 0.0, -s * x0 + 0.5 * s - 0.5], [0.0, s, -s * y0 + 0.5 * s - 0.5]])
        crop = self._cv2.warpAffine(image_bgr, m, (px, px), flags=self._cv2.INTER_LINEAR,
                                    borderMode=self._cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return np.ascontiguousarray(crop, dtype=np.uint8), x0, y0, side

    def _run(self, crop_bgr: np.ndarray) -> np.ndarray:
        """OpenPose's pose heatmaps (channels, height, width) of one crop, float32 as OpenPose scaled them."""
        datum = self._op.Datum()
        datum.cvInputData = crop_bgr
        vector = self._op.VectorDatum([datum]) if hasattr(self._op, "VectorDatum") else [datum]
        self._wrapper.emplaceAndPop(vector)
        maps = datum.poseHeatMaps
        if maps is None:
            raise BackendUnavailableError("OpenPose returned no poseHeatMaps; is heatmaps_add_parts overridden?")
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim == 4 and maps.shape[0] == 1:
            maps = maps[0]
        if maps.ndim != 3 or maps.shape[0] < NUM_PARTS[self.model_pose]:
            raise BackendUnavailableError(
                f"OpenPose returned poseHeatMaps of shape {maps.shape}; expected ({NUM_PARTS[self.model_pose]}+, H, W) "
                f"for model_pose {self.model_pose}")
        return maps

    def face_maps(self, maps: np.ndarray) -> np.ndarray:
        """The five part maps (96, 96, 5) in [0, 1] of one crop from OpenPose's (channels, H, W) heatmaps.

        OpenPose keeps the input's aspect ratio and pads the bottom / right of its maps; a square crop fills the
        top-left square of side min(H, W), which is resized to 96x96.
        """
        h, w = maps.shape[1:]
        side = min(h, w)
        parts = maps[list(self.channels), :side, :side].transpose(1, 2, 0)
        if side != HEATMAP_SIZE:
            parts = self._cv2.resize(np.ascontiguousarray(parts), (HEATMAP_SIZE, HEATMAP_SIZE),
                                     interpolation=self._cv2.INTER_LINEAR)
        return np.clip(parts / 255.0, 0.0, 1.0).astype(np.float32)

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        """OpenPose heatmaps and peak keypoints for each box; None where no part reaches ``min_peak`` or the crop is
        under MIN_CROP_PX."""
        out: list[Optional[FaceKeypoints]] = []
        for box in boxes:
            if self.crop_scale * max(box.width, box.height) < MIN_CROP_PX:
                out.append(None)
                continue
            crop, x0, y0, side = self.crop(image_bgr, box)
            hm = self.face_maps(self._run(crop))
            k = HEATMAP_SIZE / side  # heatmap pixels per image pixel
            xy = np.zeros((NUM_KEYPOINTS, 2))
            conf = np.zeros(NUM_KEYPOINTS)
            for c in range(NUM_KEYPOINTS):
                px, py, value = peak(hm[:, :, c])
                xy[c] = (x0 + px / k, y0 + py / k)
                conf[c] = value
            if conf.max() < self.min_peak:
                out.append(None)
                continue
            to_heatmap = np.array([[k, 0.0, -k * x0], [0.0, k, -k * y0]])
            out.append(FaceKeypoints(Keypoints(xy, conf), hm, to_heatmap))
        return out

    def close(self) -> None:
        """Stop OpenPose's wrapper threads."""
        stop = getattr(self._wrapper, "stop", None)
        if callable(stop):
            stop()
