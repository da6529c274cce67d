"""The estimator: face boxes -> five keypoints and their heatmaps -> CNN angles -> pose and position."""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from . import geometry
from .config import EstimatorConfig
from .detectors import DETECTORS, FaceDetector
from .errors import ConfigError
from .images import to_bgr8
from .keypoints import KEYPOINT_SOURCES, KeypointSource
from .regressor import HeadPoseRegressor
from .visibility import visible_confidence
from .types import (HEATMAP_SIZE, LEFT_EYE, NUM_KEYPOINTS, RIGHT_EYE, CameraIntrinsics, FaceBox, FaceResult,
                    FrameResult, HeadPose)

LOG = logging.getLogger(__name__)
#: Stage names of ``FrameResult.stages_ms``, in pipeline order.
STAGES = ("detect", "keypoints", "regress", "total")


def build_stages(config: EstimatorConfig) -> tuple[FaceDetector, KeypointSource]:
    """The detector and keypoint source that ``config`` names, built with their options."""
    detector = DETECTORS.create(config.detector, **config.detector_options)
    return detector, KEYPOINT_SOURCES.create(config.keypoints, **config.keypoint_options)


class HeadPoseEstimator:
    """Runs the configured backends on one frame at a time; safe to call from one thread at a time."""

    def __init__(
        self,
        config: Optional[EstimatorConfig] = None,
        *,
        detector: Optional[FaceDetector] = None,
        keypoint_source: Optional[KeypointSource] = None,
        regressor: Optional[HeadPoseRegressor] = None,
    ):
        self.config = config or EstimatorConfig()
        self.config.validate()
        self.regressor = regressor or HeadPoseRegressor(self.config.model, self.config.device)
        if detector is None or keypoint_source is None:
            built = build_stages(self.config)
            detector, keypoint_source = detector or built[0], keypoint_source or built[1]
        self.detector, self.keypoint_source = detector, keypoint_source
        self.quality = None  # the face-quality check (quality.py), built when a face first needs it
        kind = getattr(self.keypoint_source, "heatmap_kind", "rendered")
        if kind != self.regressor.heatmap_kind:
            raise ConfigError(
                f"model {self.regressor.weights_path.name} was trained on {self.regressor.heatmap_kind!r} heatmaps, "
                f"but keypoint source {self.config.keypoints!r} makes {kind!r} heatmaps; pick a matching model")

    def describe(self) -> dict[str, str]:
        """Backends, model file and device in use, for logs and diagnostics."""
        return {
            "detector": self.config.detector,
            "keypoints": self.config.keypoints,
            "model": str(self.regressor.weights_path),
            "device": self.regressor.device,
        }

    def _select(self, boxes: list[FaceBox], width: int, height: int) -> list[FaceBox]:
        cfg = self.config
        kept = [b.clipped(width, height) for b in boxes if b.score >= cfg.min_face_score]
        kept = [b for b in kept if min(b.width, b.height) >= max(cfg.min_face_px, 1)]
        kept.sort(key=lambda b: b.area, reverse=True)
        return kept[: cfg.max_faces]

    def process(self, image: np.ndarray, intrinsics: Optional[CameraIntrinsics] = None,
                channel_order: str = "bgr") -> FrameResult:
        """Every face's pose in one image (any array :func:`to_bgr8` takes), largest face first.

        With ``intrinsics`` (a calibrated camera) poses are in the camera's optical frame: the regressor's pose
        relative to the line of sight is turned by the ray through the face (see
        :func:`geometry.camera_pose_from_apparent`), and each face's ``position`` is metres in the optical frame.
        Without them the pose is the one relative to the line of sight (exact for a face on the optical axis;
        a guessed focal length, e.g. of a face crop, would turn it wrongly) and ``position`` is the unit-depth
        ray under :meth:`CameraIntrinsics.guess`.
        """
        t0 = time.perf_counter()
        img = to_bgr8(image, channel_order)
        height, width = img.shape[:2]
        boxes = self._select(self.detector.detect(img), width, height)
        t1 = time.perf_counter()
        located = self.keypoint_source.locate(img, boxes) if boxes else []
        pairs = self._check_faces(img, [(b, k) for b, k in zip(boxes, located) if k is not None])
        t2 = time.perf_counter()
        faces: list[FaceResult] = []
        if pairs:
            maps = np.stack([k.heatmaps for _, k in pairs]).astype(np.float32, copy=False)
            angles = self.regressor.predict(maps)
            calibrated = intrinsics is not None and intrinsics.is_valid()
            cam = intrinsics if calibrated else CameraIntrinsics.guess(width, height)
            for (box, kp), ypr in zip(pairs, angles):
                pose = HeadPose(*(float(a) for a in ypr))
                if self.config.hidden_keypoints:  # hidden keypoints (far ear) fall below keypoint_threshold
                    kp.keypoints.confidence = visible_confidence(kp.keypoints.confidence, pose)
                anchor = self._anchor(kp.keypoints.xy, kp.keypoints.confidence)
                if calibrated:  # a guessed focal length (e.g. of a face crop) would turn the pose wrongly
                    pose = geometry.camera_pose_from_apparent(pose, *anchor, cam)
                position, is_ray = self._position(kp.keypoints.xy, kp.keypoints.confidence, pose, intrinsics, anchor,
                                                  cam)
                faces.append(FaceResult(box, kp.keypoints, pose, position, is_ray, heatmaps=kp.heatmaps,
                                        landmarks=kp.landmarks))
        t3 = time.perf_counter()
        ms = lambda a, b: round((b - a) * 1000.0, 3)  # noqa: E731
        stages = {"detect": ms(t0, t1), "keypoints": ms(t1, t2), "regress": ms(t2, t3), "total": ms(t0, t3)}
        return FrameResult(faces=faces, image_size=(width, height), stages_ms=stages)

    def _check_faces(self, img: np.ndarray, pairs: list) -> list:
        """``pairs`` (box, keypoints) without the faces whose quality is below ``min_face_quality``; the check
        needs the dense landmarks of the face mesh and passes faces without them."""
        dense = [i for i, (_, k) in enumerate(pairs) if k.landmarks is not None]
        if self.config.min_face_quality <= 0 or not dense:
            return pairs
        if self.quality is None:
            from .quality import FaceQuality

            self.quality = FaceQuality()
        scores = self.quality.assess(img, [pairs[i][1] for i in dense], [pairs[i][0].score for i in dense])
        rejected = {i for i, q in zip(dense, scores) if q < self.config.min_face_quality}
        return [p for i, p in enumerate(pairs) if i not in rejected]

    def _anchor(self, xy: np.ndarray, conf: np.ndarray) -> tuple[float, float]:
        """The face's reference pixel: between the eyes when both are seen, else the mean of the seen keypoints."""
        visible = conf >= self.config.keypoint_threshold
        if visible[[RIGHT_EYE, LEFT_EYE]].all():
            point = xy[[RIGHT_EYE, LEFT_EYE]].mean(axis=0)
        else:
            point = xy[visible].mean(axis=0) if visible.any() else xy.mean(axis=0)
        return float(point[0]), float(point[1])

    def _position(self, xy: np.ndarray, conf: np.ndarray, pose: HeadPose, intrinsics: Optional[CameraIntrinsics],
                  anchor: tuple[float, float], cam: CameraIntrinsics) -> tuple[np.ndarray, bool]:
        """Metres in the optical frame with valid ``intrinsics``, else the unit-depth ray through ``anchor``."""
        visible = conf >= self.config.keypoint_threshold
        if intrinsics is not None and intrinsics.is_valid():
            position = geometry.estimate_position(xy, np.where(visible, conf, 0.0), pose, intrinsics)
            if position is not None:
                return position, False
        return geometry.unit_depth_ray(anchor[0], anchor[1], cam), True

    def close(self) -> None:
        """Release the backends' native resources."""
        for stage in (self.detector, self.keypoint_source, self.quality):
            closer = getattr(stage, "close", None)
            if callable(closer):
                closer()


__all__ = ["HeadPoseEstimator", "EstimatorConfig", "STAGES", "HEATMAP_SIZE", "NUM_KEYPOINTS"]
