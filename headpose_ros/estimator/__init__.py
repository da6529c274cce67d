"""The head-pose estimator, free of ROS: configuration, stages, geometry and the regression model.

Importing this package is cheap: TensorFlow, mediapipe and dlib load when a pipeline is built.
"""

from .config import EstimatorConfig
from .errors import BackendUnavailableError, ConfigError, HeadPoseError, ImageError, ModelFileError
from .types import (HEATMAP_SIZE, KEYPOINT_NAMES, CameraIntrinsics, FaceBox, FaceKeypoints, FaceResult, FrameResult,
                    HeadPose, Keypoints)


def __getattr__(name: str):
    if name == "HeadPoseEstimator":  # imports the backends' registries, not their heavy dependencies
        from .pipeline import HeadPoseEstimator

        return HeadPoseEstimator
    raise AttributeError(name)


__all__ = [
    "EstimatorConfig", "HeadPoseEstimator", "HeadPoseError", "ConfigError", "BackendUnavailableError",
    "ModelFileError", "ImageError", "HEATMAP_SIZE", "KEYPOINT_NAMES", "CameraIntrinsics", "FaceBox",
    "FaceKeypoints", "FaceResult", "FrameResult", "HeadPose", "Keypoints",
]
