"""Plain data passed between the estimator's stages.

Units and frames, everywhere in this package unless a name says otherwise:
- image coordinates are pixels, x to the right, y down, origin at the top-left pixel's corner;
- angles are degrees, in the dataset convention documented in :mod:`headpose_ros.estimator.geometry`;
- 3D positions are metres in the camera's optical frame (x right, y down, z forward).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

#: Channel order of every keypoint array and heatmap tensor in this package (the paper's order).
KEYPOINT_NAMES: tuple[str, ...] = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
NOSE, RIGHT_EYE, LEFT_EYE, RIGHT_EAR, LEFT_EAR = range(5)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
#: Order of a detector's face keypoints (:attr:`FaceBox.keypoints`), as BlazeFace returns them (subject's right/left).
DETECTOR_KEYPOINT_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
#: Side of the square heatmap tensor the regressor takes, in heatmap pixels.
HEATMAP_SIZE = 96


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in image pixels with the detector's score in [0, 1].

    ``keypoints``, when the detector gives them (BlazeFace does), are (6, 2) image pixels in
    :data:`DETECTOR_KEYPOINT_NAMES` order; they take no part in equality or hashing. ``unsure`` marks a box that a
    less certain search found (the tiled detector's tiles alone, not its whole-frame pass; the mediapipe detector's
    short-range model in a turned image): the face-quality check then wants the face mesh to be sure it is a face
    (:func:`~headpose_ros.estimator.quality.quality_from`).
    ``upside_down_score`` is the best score of a reading of the same face in the image turned upside down that
    was not allowed to replace this box (0: none); the pipeline then weighs the two readings with the face mesh
    (BlazeFace reads upside-down faces upright, and some upright profiles upside down with a higher score).
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    keypoints: Optional[np.ndarray] = field(default=None, compare=False, repr=False)
    unsure: bool = field(default=False, compare=False)
    upside_down_score: float = field(default=0.0, compare=False)

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))

    def clipped(self, width: int, height: int) -> "FaceBox":
        """This box clipped to an image of ``width`` x ``height`` pixels."""
        return dataclasses.replace(
            self, x0=float(np.clip(self.x0, 0, width)), y0=float(np.clip(self.y0, 0, height)),
            x1=float(np.clip(self.x1, 0, width)), y1=float(np.clip(self.y1, 0, height)))

    def intersection(self, other: "FaceBox") -> float:
        """Area (square pixels) that this box and ``other`` share."""
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        return ix * iy

    def containment(self, other: "FaceBox") -> float:
        """Intersection over the smaller box's area: 1 when one lies wholly inside the other (0 when either is
        empty)."""
        small = min(self.area, other.area)
        return self.intersection(other) / small if small > 0 else 0.0

    def iou(self, other: "FaceBox") -> float:
        """Intersection over union with ``other`` (0 when either is empty)."""
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[float]:
        return [round(float(v), 2) for v in (self.x0, self.y0, self.x1, self.y1)]


@dataclass
class Keypoints:
    """The five keypoints of one face: ``xy`` (5, 2) image pixels, ``confidence`` (5,) in [0, 1].

    Rows follow :data:`KEYPOINT_NAMES`. A keypoint the source did not find has confidence 0 (its xy is then
    meaningless).
    """

    xy: np.ndarray
    confidence: np.ndarray

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
        self.confidence = np.clip(np.asarray(self.confidence, dtype=np.float64).reshape(NUM_KEYPOINTS), 0.0, 1.0)

    def visible(self, threshold: float) -> np.ndarray:
        """Boolean mask (5,) of keypoints whose confidence reaches ``threshold``."""
        return self.confidence >= threshold


@dataclass
class FaceKeypoints:
    """What a keypoint source returns for one face: its keypoints and the (96, 96, 5) heatmaps of them.

    ``heatmaps`` is float32 in [0, 1], channels in :data:`KEYPOINT_NAMES` order; ``to_heatmap`` is the 2x3
    affine map from image pixels to heatmap pixels that the heatmaps were drawn in. It may turn the image (the
    face_mesh source levels strongly rolled faces): the pipeline then turns the regressor's pose back by that
    turn, about the line of sight (:func:`headpose_ros.estimator.geometry.heatmap_frame_rotation_deg`).
    """

    keypoints: Keypoints
    heatmaps: np.ndarray
    to_heatmap: np.ndarray
    #: The source's dense landmarks, (M, 2) image pixels, when it has them (the face mesh: its 468 points in
    #: MediaPipe's order); None for sources that give only the five keypoints.
    landmarks: Optional[np.ndarray] = None
    #: The face mesh's face-presence score in [0, 1] on the crop its ``landmarks`` came from (the source's last
    #: pass); None for sources without one. The face-quality check reuses it instead of running that crop again.
    presence: Optional[float] = None


@dataclass(frozen=True)
class HeadPose:
    """Head orientation in degrees, dataset convention (see :mod:`headpose_ros.estimator.geometry`)."""

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.roll], dtype=np.float64)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels (no distortion: feed rectified images or accept its error)."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k: "np.ndarray | list[float]") -> "CameraIntrinsics":
        """From a row-major 3x3 camera matrix (``sensor_msgs/CameraInfo.k``)."""
        m = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]))

    @classmethod
    def guess(cls, width: int, height: int) -> "CameraIntrinsics":
        """A stand-in when no calibration is known: focal length = image width (about 53 deg horizontal FOV)."""
        f = float(max(width, 1))
        return cls(f, f, 0.5 * width, 0.5 * height)

    def is_valid(self) -> bool:
        """Finite values and focal lengths of at least one pixel (a zeroed, NaN or garbage K is not valid)."""
        vals = np.array([self.fx, self.fy, self.cx, self.cy])
        return bool(np.all(np.isfinite(vals)) and self.fx >= 1.0 and self.fy >= 1.0)


@dataclass
class FaceResult:
    """Everything the estimator knows about one face in one frame.

    ``position`` is metres in the camera's optical frame (origin between the eyes); when the camera was not
    calibrated, ``position_is_ray`` is True and ``position`` is the unit-depth ray (z = 1) through the point
    between the eyes under :meth:`CameraIntrinsics.guess`.
    """

    box: FaceBox
    keypoints: Keypoints
    pose: HeadPose
    position: np.ndarray
    position_is_ray: bool
    heatmaps: Optional[np.ndarray] = field(default=None, repr=False)
    #: Dense landmarks (M, 2) image pixels from the keypoint source, or None (see :class:`FaceKeypoints`).
    landmarks: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def score(self) -> float:
        return self.box.score

    def to_json(self) -> dict:
        """A JSON-ready dict: box, keypoints (name -> [x, y, confidence]), yaw/pitch/roll (deg), score, position."""
        return {
            "box": self.box.as_list(),
            "keypoints": {
                name: [round(float(x), 2), round(float(y), 2), round(float(c), 3)]
                for name, (x, y), c in zip(KEYPOINT_NAMES, self.keypoints.xy, self.keypoints.confidence)
            },
            "yaw": round(self.pose.yaw, 2),
            "pitch": round(self.pose.pitch, 2),
            "roll": round(self.pose.roll, 2),
            "score": round(float(self.score), 3),
            "position": [round(float(v), 4) for v in self.position],
            "position_is_ray": self.position_is_ray,
        }


@dataclass
class FrameResult:
    """All faces found in one frame (largest first) and the time each stage took, in milliseconds."""

    faces: list[FaceResult]
    image_size: tuple[int, int]
    stages_ms: dict[str, float] = field(default_factory=dict)
