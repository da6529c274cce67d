"""Five keypoints from MediaPipe's 468-point face mesh model (``face_landmark.tflite``, bundled in mediapipe).

The mesh model runs on a square crop around each face box, in two passes, as MediaPipe's own face-mesh graph
does between frames: the first pass on an upright crop around the detector's box, the second on a crop
re-centred and rotated by the first pass's landmarks, so that rolled faces and any detector's box habits are
undone. The five points are mesh landmarks: the nose tip, each eye's centre (mean of its corners and lids)
and, for each "ear", the face outline at the tragus level. The mesh places all five on every face,
including an ear turned away (where it is extrapolated). Its face-presence score says how face-like the crop
looks and falls near 0 for many profile faces that the detector found and whose keypoints are still usable
(10 % of the development faces beyond 45 deg yaw), so it does not reject faces unless ``min_presence`` is
raised; the keypoints' confidence is ``0.7 + 0.3 * presence``, the range the default model was trained on.
Heatmaps are rendered with :func:`headpose_ros.estimator.heatmaps.keypoints_to_heatmaps`.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..heatmaps import keypoints_to_heatmaps
from ..types import NUM_KEYPOINTS, FaceBox, FaceKeypoints, Keypoints

#: Mesh landmark indices averaged into each keypoint, in KEYPOINT_NAMES order (subject's right/left).
LANDMARKS: tuple[tuple[int, ...], ...] = (
    (1,),  # nose tip
    (33, 133, 159, 145),  # right eye: corners and lids
    (362, 263, 386, 374),  # left eye
    (234,),  # right ear: face outline at the tragus level
    (454,),
)
INPUT_SIZE = 192


def bundled_model_path() -> Path:
    """``face_landmark.tflite`` inside the installed mediapipe wheel (found without importing mediapipe)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "the face_mesh keypoint source needs mediapipe==0.10.21 (pip install mediapipe==0.10.21)")
    path = Path(list(spec.submodule_search_locations)[0]) / "modules" / "face_landmark" / "face_landmark.tflite"
    if not path.is_file():
        raise BackendUnavailableError(f"mediapipe is installed but {path} is missing; install mediapipe==0.10.21")
    return path


def crop_transform(cx: float, cy: float, side: float, angle_rad: float, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from image pixels to a ``size``-pixel square crop of side ``side`` (image px) centred on (cx, cy),
    rotated by ``angle_rad`` (the crop's x axis runs along that image direction)."""
    s = size / max(side, 1e-6)
    c, n = math.cos(angle_rad) * s, math.sin(angle_rad) * s
    return np.array([[c, n, size / 2 - c * cx - n * cy], [-n, c, size / 2 + n * cx - c * cy]])


class FaceMeshKeypoints:
    """Nose, eyes and ears from the face mesh; ``heatmap_kind = "rendered"``."""

    heatmap_kind = "rendered"

    def __init__(self, passes: int = 2, crop_scale: float = 1.5, min_presence: float = 0.0, threshold: float = 0.3,
                 model_path: Optional[str] = None, num_threads: int = 1):
        if passes not in (1, 2):
            raise ConfigError(f"face_mesh passes must be 1 or 2, not {passes!r}")
        if not 1.0 <= float(crop_scale) <= 4.0:
            raise ConfigError(f"face_mesh crop_scale must lie in [1, 4], not {crop_scale!r}")
        path = Path(model_path) if model_path else bundled_model_path()
        try:
            from tensorflow import lite
        except ImportError as exc:
            raise BackendUnavailableError(
                "the face_mesh keypoint source needs tensorflow (pip install tensorflow==2.19.1)") from exc
        import warnings

        with warnings.catch_warnings():  # tf.lite.Interpreter warns of its future move to ai_edge_litert
            warnings.simplefilter("ignore")
            try:
                self._interp = lite.Interpreter(model_path=str(path), num_threads=int(num_threads))
            except (ValueError, RuntimeError) as exc:
                raise BackendUnavailableError(f"face mesh model {path} cannot be loaded: {exc}") from exc
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: -int(np.prod(d["shape"])))
        self._landmarks_out, self._presence_out = outputs[0]["index"], outputs[1]["index"]
        self._batch = 0
        self.passes, self.crop_scale = int(passes), float(crop_scale)
        self.min_presence, self.threshold = float(min_presence), float(threshold)

    def _run(self, image_bgr: np.ndarray, transforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Mesh landmarks (N, 468, 2) in image pixels and face presence (N,) for N crop transforms."""
        n = len(transforms)
        if n != self._batch:
            self._interp.resize_tensor_input(self._input, [n, INPUT_SIZE, INPUT_SIZE, 3])
            self._interp.allocate_tensors()
            self._batch = n
        crops = np.stack([
            cv2.warpAffine(image_bgr, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)[:, :, ::-1] for m in transforms
        ]).astype(np.float32) / 255.0
        self._interp.set_tensor(self._input, crops)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._landmarks_out).reshape(n, -1, 3)[:, :, :2].astype(np.float64)
        presence = 1.0 / (1.0 + np.exp(-self._interp.get_tensor(self._presence_out).reshape(n).astype(np.float64)))
        points = np.empty_like(raw)
        for i, m in enumerate(transforms):
            inv = cv2.invertAffineTransform(m)
            points[i] = raw[i] @ inv[:, :2].T + inv[:, 2]
        return points, presence

    def _refined_transform(self, points: np.ndarray) -> np.ndarray:
        """The second pass's crop: rotated so that the eyes are level, around the first pass's landmarks."""
        right, left = points[list(LANDMARKS[1])].mean(0), points[list(LANDMARKS[2])].mean(0)
        angle = math.atan2(left[1] - right[1], left[0] - right[0])
        c, s = math.cos(angle), math.sin(angle)
        rotated = points @ np.array([[c, -s], [s, c]])  # coordinates along the eye line and across it
        lo, hi = rotated.min(0), rotated.max(0)
        centre = np.array([[c, s], [-s, c]]).T @ (0.5 * (lo + hi))
        return crop_transform(centre[0], centre[1], self.crop_scale * float(np.max(hi - lo)), angle)

    def mesh(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> tuple[np.ndarray, np.ndarray]:
        """The full mesh (N, 468, 2) image pixels and presence (N,) for each box, after all passes."""
        if not boxes:
            return np.zeros((0, 468, 2)), np.zeros(0)
        transforms = [crop_transform(*b.center, self.crop_scale * max(b.width, b.height), 0.0) for b in boxes]
        points, presence = self._run(image_bgr, transforms)
        if self.passes == 2:
            points, presence = self._run(image_bgr, [self._refined_transform(p) for p in points])
        return points, presence

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        """Keypoints and rendered heatmaps per box; None where the mesh says there is no face."""
        points, presence = self.mesh(image_bgr, boxes)
        if len(points) == 0:
            return []
        xy = np.stack([points[:, list(idx)].mean(axis=1) for idx in LANDMARKS], axis=1)  # (N, 5, 2)
        conf = np.repeat(0.7 + 0.3 * presence[:, None], NUM_KEYPOINTS, axis=1)
        maps, frames = keypoints_to_heatmaps(xy, conf, self.threshold)
        return [
            FaceKeypoints(Keypoints(xy[i], conf[i]), maps[i], frames[i], landmarks=points[i])
            if presence[i] >= self.min_presence else None
            for i in range(len(points))
        ]
