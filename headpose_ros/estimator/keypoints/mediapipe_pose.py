"""Five keypoints from MediaPipe Pose (BlazePose, bundled in mediapipe 0.10.21), run on a crop around each face.

BlazePose's 33 landmarks start with exactly the paper's five points: nose 0, subject's left eye 2, subject's
right eye 5, subject's left ear 7, subject's right ear 8 (mediapipe's "left" is the subject's left; checked on
the astronaut portrait, where the subject's left eye lies on the image's right). Confidences are the landmarks'
``visibility``. Heatmaps are rendered by :func:`headpose_ros.estimator.heatmaps.face_keypoints`
(``heatmap_kind = "rendered"``).

BlazePose finds a person from the face, but needs some context around it, and whether it finds one depends on
the crop in a way that varies from image to image: each face is cut out as a square of side ``s`` x the box's
longer side, centred ``crop_shift`` box heights below the box's centre, resampled to ``crop_px`` pixels, with
black where it leaves the image; the scales ``s`` in ``crop_scales`` are tried in order until one finds a person.
Measured on four disjoint samples of 60 AFLW2000 and 60 BIWI development images (mediapipe detector boxes), one
scale found 83-98 % of the AFLW2000 faces (best on average: 2.0; shifting the crop toward the shoulders lost
faces), and the cascade 2.0, 1.5, 2.5 found 95-100 % (BIWI: 100 %); a second or third try costs another
BlazePose run only for the faces the first one missed.

The pose found in a crop is kept only when its nose lies inside the face box grown by half its size on every
side, so that a neighbour's body is not taken for this face.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..heatmaps import face_keypoints
from ..types import FaceBox, FaceKeypoints, Keypoints

#: BlazePose landmark index of each keypoint, in KEYPOINT_NAMES order (nose, right eye, left eye, right ear,
#: left ear; right and left are the subject's).
POSE_LANDMARKS: tuple[int, ...] = (0, 5, 2, 8, 7)
#: The landmark model file of each ``model_complexity``; only 1 ships in the mediapipe wheel.
_LANDMARK_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
_INSTALL = "pip install mediapipe==0.10.21"


def crop_square(box: FaceBox, crop_scale: float, crop_shift: float) -> tuple[float, float, float]:
    """The crop of a face box: centre x, centre y and side, image pixels."""
    cx, cy = box.center
    side = crop_scale * max(box.width, box.height, 1.0)
    return cx, cy + crop_shift * box.height, side


def _mediapipe_dir() -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"the mediapipe_pose keypoint source needs mediapipe: {_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0])


class MediaPipePoseKeypoints:
    """Nose, eyes and ears from BlazePose landmarks on a crop around each face; ``heatmap_kind = "rendered"``.

    Options: ``model_complexity`` 0, 1 (bundled, default) or 2; ``crop_scales`` (one or more) and ``crop_shift``
    (module docstring); ``crop_px`` the crop's side in pixels handed to mediapipe; ``min_detection_confidence`` of
    BlazePose's person detector; ``threshold`` the visibility below which a keypoint is left out of the heatmaps.
    """

    heatmap_kind = "rendered"

    def __init__(self, model_complexity: int = 1, crop_scales: "float | Sequence[float]" = (2.0, 1.5, 2.5),
                 crop_shift: float = 0.0, crop_px: int = 256, min_detection_confidence: float = 0.5,
                 threshold: float = 0.3):
        if model_complexity not in _LANDMARK_FILES or isinstance(model_complexity, bool):
            raise ConfigError(f"mediapipe_pose model_complexity must be 0, 1 or 2, not {model_complexity!r}")
        scales = [crop_scales] if isinstance(crop_scales, (int, float)) else list(crop_scales)
        if not scales or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 1.0 <= float(v) <= 8.0
                             for v in scales):
            raise ConfigError(f"mediapipe_pose crop_scales must be one or more numbers in [1, 8], not {crop_scales!r}")
        if isinstance(crop_shift, bool) or not isinstance(crop_shift, (int, float)) or not -1.0 <= crop_shift <= 2.0:
            raise ConfigError(f"mediapipe_pose crop_shift must lie in [-1, 2], not {crop_shift!r}")
        if isinstance(crop_px, bool) or not isinstance(crop_px, (int, np.integer)) or not 64 <= int(crop_px) <= 1024:
            raise ConfigError(f"mediapipe_pose crop_px must be an integer in [64, 1024], not {crop_px!r}")
        for name, value in (("min_detection_confidence", min_detection_confidence), ("threshold", threshold)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"mediapipe_pose {name} must be a number in [0, 1], not {value!r}")
        model = _mediapipe_dir() / "modules" / "pose_landmark" / _LANDMARK_FILES[model_complexity]
        if not model.is_file():
            raise BackendUnavailableError(
                f"mediapipe_pose model_complexity {model_complexity} needs {model}, which the mediapipe wheel does "
                "not bundle (mediapipe would download it at run time); use model_complexity 1, or fetch it once "
                "with network access: python -c 'from mediapipe.python.solutions import download_utils; "
                f"download_utils.download_oss_model(\"mediapipe/modules/pose_landmark/{model.name}\")'")
        try:
            import cv2
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as exc:
            raise BackendUnavailableError(f"the mediapipe_pose keypoint source needs mediapipe: {_INSTALL}") from exc
        self._cv2 = cv2
        self._pose: Any = mp_pose.Pose(static_image_mode=True, model_complexity=int(model_complexity),
                                       enable_segmentation=False,
                                       min_detection_confidence=float(min_detection_confidence))
        self.model_complexity = int(model_complexity)
        self.crop_scales = tuple(float(v) for v in scales)
        self.crop_shift, self.crop_px = float(crop_shift), int(crop_px)
        self.threshold = float(threshold)

    def crop(self, image_bgr: np.ndarray, box: FaceBox, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """The RGB crop (crop_px, crop_px, 3) of one face at crop scale ``scale`` and its 2x3 affine map from image
        to crop pixels."""
        cx, cy, side = crop_square(box, scale, self.crop_shift)
        s = self.crop_px / side
        m = np.array([[s, 0.0, self.crop_px / 2.0 - s * cx], [0.0, s, self.crop_px / 2.0 - s * cy]])
        # warpAffine works on pixel indices (centres at integers); this package's coordinates put them at +0.5.
        mc = m.copy()
        mc[:, 2] += 0.5 * s - 0.5
        crop = self._cv2.warpAffine(image_bgr, mc, (self.crop_px, self.crop_px), flags=self._cv2.INTER_LINEAR,
                                    borderMode=self._cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return np.ascontiguousarray(crop[:, :, ::-1]), m

    def locate_one(self, image_bgr: np.ndarray, box: FaceBox) -> Optional[Keypoints]:
        """The five keypoints (image pixels, visibility) of one face, or None when no crop scale finds its person."""
        for scale in self.crop_scales:
            found = self._locate_in_crop(image_bgr, box, scale)
            if found is not None:
                return found
        return None

    def _locate_in_crop(self, image_bgr: np.ndarray, box: FaceBox, scale: float) -> Optional[Keypoints]:
        rgb, m = self.crop(image_bgr, box, scale)
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        lms = result.pose_landmarks.landmark
        crop_xy = np.array([[lms[i].x * self.crop_px, lms[i].y * self.crop_px] for i in POSE_LANDMARKS])
        conf = np.array([lms[i].visibility for i in POSE_LANDMARKS])
        s = m[0, 0]
        xy = (crop_xy - m[:, 2]) / s
        nose = xy[0]
        gx, gy = 0.5 * box.width, 0.5 * box.height
        if not (box.x0 - gx <= nose[0] <= box.x1 + gx and box.y0 - gy <= nose[1] <= box.y1 + gy):
            return None
        return Keypoints(xy, conf)

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        """Keypoints and rendered heatmaps for each box; None where no person was found around it."""
        out: list[Optional[FaceKeypoints]] = []
        for box in boxes:
            kp = self.locate_one(image_bgr, box)
            out.append(None if kp is None else face_keypoints(kp, self.threshold))
        return out

    def close(self) -> None:
        """Release mediapipe's graph."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None
