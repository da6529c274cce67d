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
from .quality import SECOND_READING_PRESENCE, SECOND_READING_QUALITY, profile_of_face
from .regressor import HeadPoseRegressor
from .types import (HEATMAP_SIZE, LEFT_EYE, NUM_KEYPOINTS, RIGHT_EYE, CameraIntrinsics, FaceBox, FaceKeypoints,
                    FaceResult, FrameResult, HeadPose)
from .video import VideoState
from .visibility import keypoint_visibilities

LOG = logging.getLogger(__name__)
#: Stage names of ``FrameResult.stages_ms``, in pipeline order.
STAGES = ("detect", "keypoints", "regress", "total")
#: Box overlap above which a face detected in video mode is the followed face there (no second quality check).
FOLLOWED_IOU = 0.5
#: Box overlap above which a periodic partial search's box is a followed face (that face is not added again).
SAME_FACE_IOU = 0.3
#: Eye-line tilt (degrees) beyond which the keypoint stage doubts a detector's upright reading (``detect_more``)
#: and takes the wider search's reading of the face in any case.
DOUBT_TILT_DEG = 40.0
#: Eye-line tilt (degrees) beyond which it doubts the reading mildly: the wider search runs, and its reading of the
#: face replaces this one only where ``_takes_over`` says so (an upright pass misreads some faces turned a quarter
#: and the face mesh levels them only part of the way, to 20-40 deg: the BIWI crops turned +-90 deg).
MILD_TILT_DEG = 20.0
#: ``quality.profile_of_face`` from which a face that the detector read better upside down keeps its upright reading
#: unless the face mesh believes the upside-down one more (``_takes_over``): the development profiles that
#: BlazeFace reads so measured 1.0, AFLW2000's upside-down frontal faces read upright 0.01-0.16.
UPSIDE_DOWN_PROFILE = 0.95
#: Of two faces that passed the quality check and nest (the smaller lies more than this fraction of its area inside
#: the other), the lower-scored is dropped: the ``tiled`` detector leaves a small box inside a much wider one
#: (``nested_ratio``) for the check to decide, so that a false whole-frame box no longer hides a small face.
NESTED_INSIDE = 0.6


def build_stages(config: EstimatorConfig) -> tuple[FaceDetector, KeypointSource]:
    """The detector and keypoint source that ``config`` names, built with their options (and its
    ``cpu_threads`` where a backend takes ``num_threads``)."""
    threads = config.cpu_threads
    detector = DETECTORS.create(config.detector,
                                **DETECTORS.with_threads(config.detector, config.detector_options, threads))
    return detector, KEYPOINT_SOURCES.create(
        config.keypoints, **KEYPOINT_SOURCES.with_threads(config.keypoints, config.keypoint_options, threads))


class HeadPoseEstimator:
    """Runs the configured backends on one frame at a time; safe to call from one thread at a time."""

    def __init__(
        self,
        config: Optional[EstimatorConfig] = None,
        *,
        detector: Optional[FaceDetector] = None,
        keypoint_source: Optional[KeypointSource] = None,
        regressor: Optional[HeadPoseRegressor] = None,
        video_redetect_every: int = 10,
        video_min_presence: float = 0.5,
    ):
        self.config = config or EstimatorConfig()
        #: Video mode's memory (see :mod:`headpose_ros.estimator.video`), used by ``process(..., video=True)``.
        self.video = VideoState(video_redetect_every, video_min_presence)
        self.config.validate()
        cfg = self.config
        self.regressor = regressor or HeadPoseRegressor(cfg.model, cfg.device, cfg.cpu_threads)
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
        """Backends, model file, device, and the turned-face companion's file ("none") and blend in use, for
        logs, diagnostics and reports."""
        turned = getattr(self.regressor, "turned", None)
        return {
            "detector": self.config.detector,
            "keypoints": self.config.keypoints,
            "model": str(self.regressor.weights_path),
            "device": self.regressor.device,
            "runtime": getattr(self.regressor, "runtime", "keras"),
            "turned_model": str(turned.weights_path) if turned is not None else "none",
            "turned_blend": self.regressor.companion_rule() if turned is not None else "none",
        }

    def _select(self, boxes: list[FaceBox], width: int, height: int) -> list[FaceBox]:
        cfg = self.config
        kept = [b.clipped(width, height) for b in boxes if b.score >= cfg.min_face_score]
        kept = [b for b in kept if min(b.width, b.height) >= max(cfg.min_face_px, 1)]
        kept.sort(key=lambda b: b.area, reverse=True)
        return kept[: cfg.max_faces]

    def _track(self, img: np.ndarray) -> Optional[tuple[list[FaceBox], list[Optional[FaceKeypoints]]]]:
        """Video mode: the followed faces found again by their previous meshes, or None when the detector must run."""
        state, source = self.video, self.keypoint_source
        if state.wants_detection():
            return None
        points, presence = source.mesh_from_landmarks(img, np.stack(state.landmarks))
        if np.any(presence < state.min_presence):  # a face was lost: detect on this very frame
            return None
        state.tracked(list(points))
        height, width = img.shape[:2]
        # the detector's keypoints of each face, followed with its mesh since it was detected (for tragion_ears)
        followed = state.followed_keypoints() if source.tragion_ears else None
        return state.followed_boxes(width, height), source.keypoints_from_mesh(points, presence, followed)

    def process(self, image: np.ndarray, intrinsics: Optional[CameraIntrinsics] = None,
                channel_order: str = "bgr", video: bool = False) -> FrameResult:
        """Every face's pose in one image (any array :func:`to_bgr8` takes), largest face first.

        With ``intrinsics`` (a calibrated camera) poses are in the camera's optical frame: the regressor's pose
        relative to the line of sight is turned by the ray through the face (see
        :func:`geometry.camera_pose_from_apparent`), and each face's ``position`` is metres in the optical frame.
        Without them the pose is the one relative to the line of sight (exact for a face on the optical axis;
        a guessed focal length, e.g. of a face crop, would turn it wrongly) and ``position`` is the unit-depth
        ray under :meth:`CameraIntrinsics.guess`.

        ``video=True`` (consecutive frames of one stream) follows the faces of earlier frames with the face mesh
        and runs the detector only when needed (see :mod:`headpose_ros.estimator.video`); keypoint sources other
        than ``face_mesh`` detect on every frame.
        """
        t0 = time.perf_counter()
        img = to_bgr8(image, channel_order)
        height, width = img.shape[:2]
        video = video and hasattr(self.keypoint_source, "mesh_from_landmarks")
        periodic = video and self.video.periodic()
        tracked = self._track(img) if video else None
        if tracked is None:
            followed = self.video.followed_boxes(width, height) if video else []
            # a search in steps: every followed face is still found (periodic), or none was in view (idle)
            in_steps = None
            if periodic:
                in_steps = getattr(self.detector, "detect_stream", None)
            elif video and self.video.idle():
                in_steps = getattr(self.detector, "detect_idle", None)
            found = in_steps(img, self.video.search_steps) if callable(in_steps) else None
            partial = found is not None  # None: a single image's search (also where detect_idle declines)
            if partial:
                self.video.search_steps += 1
            else:
                found = self.detector.detect(img)
            if periodic and partial:  # a partial search looks for newcomers: it may not see (e.g. in the tiles
                # it left out) the faces followed until now, which are kept where it found none
                found = list(found) + [f for f in followed if all(f.iou(b) <= SAME_FACE_IOU for b in found)]
            t1 = time.perf_counter()
            located, pairs = self._faces(img, found, followed)
            more = getattr(self.detector, "detect_more", None)
            if not periodic and not partial and callable(more) and self._doubtful(located, pairs):
                wider = more(img, found)  # e.g. BlazeFace's turned passes (turns: on_doubt); timed as keypoints
                if wider is not None:
                    located, pairs = self._wider(img, pairs, wider, followed)
            if video:  # only faces that passed the quality check are followed
                self.video.detected([k.landmarks for _, k in pairs], [b for b, _ in pairs])
        else:
            t1 = t0
            boxes, located = tracked
            pairs = [(b, k) for b, k in zip(boxes, located) if k is not None]  # checked when detected
        t2 = time.perf_counter()
        faces: list[FaceResult] = []
        if pairs:
            maps = np.stack([k.heatmaps for _, k in pairs]).astype(np.float32, copy=False)
            angles = self.regressor.predict(maps)
            # The regressor's pose is the one its heatmap frame shows; a frame turned in the image (levelled on
            # the eyes) is turned back about the line of sight.
            turn = -geometry.heatmap_frame_rotation_deg(np.stack([k.to_heatmap for _, k in pairs]))
            if np.any(np.abs(turn) > 1e-9):
                angles = geometry.compose_line_of_sight_roll(angles, turn)
            calibrated = intrinsics is not None and intrinsics.is_valid()
            cam = intrinsics if calibrated else CameraIntrinsics.guess(width, height)
            if self.config.hidden_keypoints:  # hidden keypoints (far ear) fall below keypoint_threshold
                for (_, kp), seen in zip(pairs, keypoint_visibilities(angles)):
                    kp.keypoints.confidence = np.asarray(kp.keypoints.confidence, dtype=np.float64) * seen
            anchors = [self._anchor(k.keypoints.xy, k.keypoints.confidence) for _, k in pairs]
            if calibrated:  # a guessed focal length (e.g. of a face crop) would turn the pose wrongly
                angles = geometry.camera_poses_from_apparent(angles, np.array(anchors), cam)
            for (box, kp), ypr, anchor in zip(pairs, angles, anchors):
                pose = HeadPose(*(float(a) for a in ypr))
                position, is_ray = self._position(kp.keypoints.xy, kp.keypoints.confidence, pose, intrinsics, anchor,
                                                  cam)
                faces.append(FaceResult(box, kp.keypoints, pose, position, is_ray, heatmaps=kp.heatmaps,
                                        landmarks=kp.landmarks))
        t3 = time.perf_counter()
        ms = lambda a, b: round((b - a) * 1000.0, 3)  # noqa: E731
        stages = {"detect": ms(t0, t1), "keypoints": ms(t1, t2), "regress": ms(t2, t3), "total": ms(t0, t3)}
        return FrameResult(faces=faces, image_size=(width, height), stages_ms=stages)

    def _faces(self, img: np.ndarray, found: list[FaceBox], followed: list[FaceBox]) -> tuple[list, list]:
        """The keypoint source's result for each selected detector box (None where it saw no face) and the
        (box, keypoints) pairs that passed the quality check, in the boxes' order; a box rejected (no face, or the
        check) gets the source's second reading where it has one (``relocate``), which must reach a presence of
        ``SECOND_READING_PRESENCE`` and a quality of ``SECOND_READING_QUALITY`` (or ``min_face_quality`` where
        higher)."""
        height, width = img.shape[:2]
        boxes = self._select(found, width, height)
        located = self.keypoint_source.locate(img, boxes) if boxes else []
        passed = self._check_faces(img, [(b, k) for b, k in zip(boxes, located) if k is not None], followed)
        relocate = getattr(self.keypoint_source, "relocate", None)
        failed = [b for b in boxes if all(b is not p for p, _ in passed)]
        if failed and callable(relocate):  # a second reading of the boxes rejected (face_mesh: retry_crops)
            again = [(b, k) for b, k in zip(failed, relocate(img, failed))
                     if k is not None and (k.presence is None or k.presence >= SECOND_READING_PRESENCE)]
            if again:
                passed += self._check_faces(img, again, followed, SECOND_READING_QUALITY)
                order = {id(b): i for i, b in enumerate(boxes)}
                passed.sort(key=lambda p: order[id(p[0])])
        return located, _unnested(passed)

    def _wider(self, img: np.ndarray, pairs: list, wider: list[FaceBox], followed: list[FaceBox]
               ) -> tuple[list, list]:
        """:meth:`_faces` of the detector's wider search, merged with ``pairs`` (the first search's faces that
        passed): one that passed with level eyes and no better upside-down reading stays as it is (a turned reading
        of the same box, e.g. a profile read upside down, which the face mesh can fit too, never replaces it); one
        mildly doubted (the detector read it better upside down, or its eye line is tilted beyond ``MILD_TILT_DEG``)
        takes the wider search's reading of its box where :func:`_takes_over` says so; one whose eye line is tilted
        beyond ``DOUBT_TILT_DEG`` takes it in any case."""
        located, more = self._faces(img, wider, followed)
        out, doubted = [], []
        for b, k in pairs:
            if not _tilted(k, DOUBT_TILT_DEG):
                (doubted if _mildly_doubted(b, k) else out).append((b, k))
        for b, k in doubted:
            rival = max(more, key=lambda p: p[0].iou(b), default=None)
            out.append(rival if rival is not None and rival[0].iou(b) > SAME_FACE_IOU
                       and _takes_over(rival[1], k, contested=_contested(b)) else (b, k))
        out += [(b, k) for b, k in more if all(b.iou(o) <= SAME_FACE_IOU for o, _ in out)]
        out.sort(key=lambda p: p[0].area, reverse=True)
        return located, out[: self.config.max_faces]

    @staticmethod
    def _doubtful(located: list, pairs: list) -> bool:
        """Whether the keypoint stage doubts what the detector found: no face passed, a found box held no face
        (keypoint source or quality check), a face's eye line is tilted beyond ``MILD_TILT_DEG`` (an upright
        detector misreads faces rolled far), or a face's upside-down reading is the better one."""
        return not pairs or len(pairs) < len(located) or any(_mildly_doubted(b, k) for b, k in pairs)

    def _check_faces(self, img: np.ndarray, pairs: list, followed: list[FaceBox], floor: float = 0.0) -> list:
        """``pairs`` (box, keypoints) without the faces whose quality is below ``min_face_quality`` (or ``floor``
        where higher); the check (off where ``min_face_quality`` is 0) needs the dense landmarks of the face mesh
        and passes faces without them, and faces where a ``followed`` box (video mode: a face that passed it when
        first found) overlaps by more than half."""
        dense = [i for i, (b, k) in enumerate(pairs)
                 if k.landmarks is not None and all(b.iou(f) <= FOLLOWED_IOU for f in followed)]
        if self.config.min_face_quality <= 0 or not dense:
            return pairs
        if self.quality is None:
            from .quality import FaceQuality

            self.quality = FaceQuality(num_threads=self.config.cpu_threads,
                                       shared=getattr(self.keypoint_source, "mesh_model", None))
        scores = self.quality.assess(img, [pairs[i][1] for i in dense], [pairs[i][0].score for i in dense],
                                     [pairs[i][0].unsure for i in dense])
        rejected = {i for i, q in zip(dense, scores) if q < max(self.config.min_face_quality, floor)}
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


def _unnested(pairs: list) -> list:
    """``pairs`` (box, keypoints) in their order without each face that nests with a better-scored one (the smaller
    of the two lies more than ``NESTED_INSIDE`` of its area inside the other): the detector's containment merge,
    made after the check."""
    def nested(box: FaceBox) -> bool:
        return any(o.score > box.score and box.containment(o) > NESTED_INSIDE for o, _ in pairs)

    return [(b, k) for b, k in pairs if not nested(b)]


def _tilted(located: FaceKeypoints, limit_deg: float) -> bool:
    """Whether a face's eye line is tilted beyond ``limit_deg`` degrees either way."""
    xy = located.keypoints.xy
    return bool(abs(np.degrees(geometry.eye_angle(xy[RIGHT_EYE], xy[LEFT_EYE]))) > limit_deg)


def _mildly_doubted(box: FaceBox, located: FaceKeypoints) -> bool:
    """Whether the detector read this face better upside down (:func:`_contested`) or its eye line is tilted beyond
    ``MILD_TILT_DEG``: the wider search's reading replaces it only where :func:`_takes_over` says so."""
    return _contested(box) or _tilted(located, MILD_TILT_DEG)


def _contested(box: FaceBox) -> bool:
    """Whether the detector read this face better upside down than as it was kept
    (:attr:`FaceBox.upside_down_score` above its score)."""
    return box.upside_down_score > box.score


def _takes_over(turned: FaceKeypoints, kept: FaceKeypoints, contested: bool) -> bool:
    """Whether the wider search's reading ``turned`` of a mildly doubted face replaces the ``kept`` one: where the
    face mesh believes it more (presence), or, for a face the detector read better upside down (``contested``),
    where the kept keypoints show no profile (:func:`quality.profile_of_face` below ``UPSIDE_DOWN_PROFILE``):
    BlazeFace and the face mesh read an upside-down face upright, with a lower score than upside down and a
    presence that saturates near 1 both ways. BlazeFace also reads some upright profiles upside down with a higher
    score, and then the mesh believes neither reading much, the upright one more; some upside-down faces read
    upright look like profiles to the mesh, which then believes the turned reading fully. (The profile rule for
    tilted faces too cost small faces in HD frames 0.2 deg: ``small_faces --faces``, |yaw| up to 45 deg.)"""
    if contested and profile_of_face(kept) < UPSIDE_DOWN_PROFILE:
        return True
    presence = [k.presence if k.presence is not None else 0.0 for k in (turned, kept)]
    return presence[0] > presence[1]


__all__ = ["HeadPoseEstimator", "EstimatorConfig", "STAGES", "HEATMAP_SIZE", "NUM_KEYPOINTS"]
