"""Shared helpers of the ROS-side tests: a temporary regressor model, stand-in backends and sample faces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from headpose_ros.estimator.heatmaps import face_keypoints
from headpose_ros.estimator.types import FaceBox, FaceKeypoints, FaceResult, HeadPose, Keypoints

#: Where BlazeFace (the mediapipe detector) finds the astronaut's face in skimage.data.astronaut(), pixels.
ASTRONAUT_FACE = FaceBox(177.6, 82.9, 272.9, 178.2, 0.92)


def astronaut_bgr() -> np.ndarray:
    """skimage's public-domain astronaut portrait (512 x 512) as 8-bit BGR."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def make_model(directory: Path, name: str = "tiny") -> Path:
    """A weights file of the paper's CNN (random, seeded weights) with its card: heatmap_kind 'rendered'."""
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from headpose_ros.estimator.regressor import ModelCard, build_model, card_path

    path = Path(directory) / f"{name}.weights.h5"
    build_model(seed=0).save_weights(str(path))
    ModelCard(name=name, heatmap_kind="rendered", keypoint_source="face_mesh").save(card_path(path))
    return path


class FixedDetector:
    """Finds the given boxes in every image (a stand-in for a real detector)."""

    def __init__(self, boxes: Sequence[FaceBox] = (ASTRONAUT_FACE,)):
        self.boxes = list(boxes)

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        return list(self.boxes)


class BoxKeypoints:
    """Places the five keypoints at fixed fractions of each box and renders their heatmaps."""

    heatmap_kind = "rendered"
    FRACTIONS = np.array([[0.5, 0.6], [0.33, 0.42], [0.67, 0.42], [0.08, 0.5], [0.92, 0.5]])

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        out: list[Optional[FaceKeypoints]] = []
        for b in boxes:
            xy = np.array([b.x0, b.y0]) + self.FRACTIONS * np.array([b.width, b.height])
            out.append(face_keypoints(Keypoints(xy, np.ones(5)), threshold=0.3))
        return out


def sample_face(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, position=(0.1, -0.05, 1.2),
                box: FaceBox = ASTRONAUT_FACE, is_ray: bool = False) -> FaceResult:
    """A FaceResult with the given pose (degrees) and position (optical frame) and box keypoints."""
    xy = np.array([box.x0, box.y0]) + BoxKeypoints.FRACTIONS * np.array([box.width, box.height])
    return FaceResult(box=box, keypoints=Keypoints(xy, np.ones(5)), pose=HeadPose(yaw, pitch, roll),
                      position=np.array(position, dtype=np.float64), position_is_ray=is_ray)
