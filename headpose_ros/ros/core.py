"""The node's processing core, free of ROS: decode a frame, estimate, track, smooth, pick the primary head.

The ROS node runs :meth:`HeadPoseCore.process_msg` in its worker thread (newest frame only, see
:mod:`headpose_ros.estimator.stream`); the offline bag tool and the soak benchmark call it directly. Every
runtime-safe parameter is applied through :meth:`HeadPoseCore.apply`, between frames.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from ..estimator.pipeline import HeadPoseEstimator
from ..estimator.smoothing import OneEuroParams, PoseSmoother
from ..estimator.tracking import FaceTracker
from ..estimator.types import CameraIntrinsics, FaceResult, FrameResult
from . import image_codec
from .hri import FaceIds
from .messages import HeaderData
from .params import SPECS, defaults


@dataclass
class CoreResult:
    """One processed frame. ``faces`` (largest first, smoothed when smoothing is on), ``ids`` (integer track
    ids: marker ids) and ``face_ids`` (the faces' REP-155 tokens: ``tf_prefix`` + token names the face in TF,
    topics and labels, see :mod:`headpose_ros.ros.hri`) are parallel; ``primary`` indexes the head
    ``/head_pose`` carries (None without faces); ``gone_ids`` are the track ids of the previous frame that are
    absent now (their markers are deleted); ``live_face_ids`` the tokens of every face still tracked, seen now
    or within ``tracking.max_missed`` frames (their REP-155 topics stay); ``intrinsics`` those the estimator
    used (None: its guess from the image size)."""

    header: HeaderData
    image: np.ndarray
    frame: FrameResult
    faces: list[FaceResult]
    ids: list[int]
    ages: list[int]
    primary: Optional[int]
    gone_ids: list[int] = field(default_factory=list)
    intrinsics: Optional[CameraIntrinsics] = None
    face_ids: list[str] = field(default_factory=list)
    live_face_ids: list[str] = field(default_factory=list)

    @property
    def primary_face(self) -> Optional[FaceResult]:
        return None if self.primary is None else self.faces[self.primary]

    @property
    def primary_id(self) -> Optional[int]:
        return None if self.primary is None else self.ids[self.primary]

    @property
    def primary_face_id(self) -> Optional[str]:
        """The primary head's token (None without faces)."""
        return None if self.primary is None else self.face_ids[self.primary]


def select_primary(faces: list[FaceResult], ages: list[int], rule: str) -> Optional[int]:
    """Index of the primary head: ``largest`` box area, or ``longest_tracked`` (largest age, then area)."""
    if not faces:
        return None
    if rule == "largest":
        return max(range(len(faces)), key=lambda i: (faces[i].box.area, -i))
    if rule == "longest_tracked":
        return max(range(len(faces)), key=lambda i: (ages[i], faces[i].box.area, -i))
    raise ValueError(f"primary face rule must be largest or longest_tracked, not {rule!r}")


class HeadPoseCore:
    """Estimator + tracker + smoother with the node's parameters; ``process`` from one thread at a time,
    ``apply`` from any thread: it waits for the frame in progress, so a change never lands mid-frame.
    ``id_seed`` makes the faces' REP-155 tokens reproducible (None: random per run)."""

    def __init__(self, estimator: HeadPoseEstimator, values: Optional[Mapping[str, Any]] = None,
                 id_seed: Optional[int] = None):
        self.estimator = estimator
        self.values = defaults()
        self.tracker = FaceTracker()
        self.face_ids = FaceIds(id_seed)
        self.smoother = PoseSmoother()
        self._previous_ids: list[int] = []
        self._lock = threading.Lock()
        self.apply(values or {})

    def apply(self, values: Mapping[str, Any]) -> None:
        """Apply validated parameter values (a subset is fine); estimator thresholds take effect next frame."""
        with self._lock:
            merged = {**self.values, **values}
            est_changes = {SPECS[n].estimator_field: v for n, v in values.items()
                           if n in SPECS and SPECS[n].runtime and SPECS[n].estimator_field}
            if est_changes:
                self.estimator.config = dataclasses.replace(self.estimator.config, **est_changes)
            self.tracker.configure(merged["tracking.iou_threshold"], merged["tracking.max_centre_distance"],
                                   merged["tracking.max_missed"])
            params = OneEuroParams(merged["smoothing.min_cutoff"], merged["smoothing.beta"],
                                   merged["smoothing.d_cutoff"])
            if params != self.smoother.params or not merged["smoothing.enabled"]:
                self.smoother.set_params(params)
            self.values = merged

    def process_msg(self, msg: Any, intrinsics: Optional[CameraIntrinsics] = None) -> CoreResult:
        """Decode an Image or CompressedImage message (rclpy or rosbags) and process it; ImageDecodeError
        for a bad frame."""
        image = image_codec.decode_any_msg(msg)
        return self.process(image, HeaderData.from_msg(msg.header), intrinsics)

    def process(self, image_bgr: np.ndarray, header: HeaderData,
                intrinsics: Optional[CameraIntrinsics] = None) -> CoreResult:
        """Estimate, track and smooth the heads of one 8-bit BGR frame stamped ``header``."""
        with self._lock:
            return self._process(image_bgr, header, intrinsics)

    def _process(self, image_bgr: np.ndarray, header: HeaderData,
                 intrinsics: Optional[CameraIntrinsics]) -> CoreResult:
        values = self.values
        if not values["use_camera_info"]:
            intrinsics = None
        frame = self.estimator.process(image_bgr, intrinsics, video=values["video_mode"])
        update = self.tracker.update([f.box for f in frame.faces])
        self.smoother.forget(update.forgotten)
        faces = list(frame.faces)
        if values["smoothing.enabled"]:
            faces = [self._smooth(track_id, header.seconds, face) for track_id, face in zip(update.ids, faces)]
        ages = [self.tracker.age(i) for i in update.ids]
        primary = select_primary(faces, ages, values["primary_face"])
        gone = sorted(set(self._previous_ids) - set(update.ids))
        self._previous_ids = list(update.ids)
        tokens = self.face_ids.update(update.ids, self.tracker.tracks)
        return CoreResult(header=header, image=image_bgr, frame=frame, faces=faces, ids=list(update.ids),
                          ages=ages, primary=primary, gone_ids=gone, intrinsics=intrinsics, face_ids=tokens,
                          live_face_ids=self.face_ids.live())

    def _smooth(self, track_id: int, t: float, face: FaceResult) -> FaceResult:
        pose, position = self.smoother.smooth(track_id, t, face.pose, face.position, face.position_is_ray)
        return dataclasses.replace(face, pose=pose, position=position)

    def close(self) -> None:
        self.estimator.close()
