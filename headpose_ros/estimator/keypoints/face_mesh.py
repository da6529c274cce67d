"""Five keypoints from MediaPipe's 468-point face mesh model (``face_landmark.tflite``, bundled in mediapipe).

The mesh model runs on a square crop around each face, rotated so that the face is upright in it, as
MediaPipe's own face-mesh graph does: when the detector gave eye keypoints (BlazeFace does), one pass on a crop
around the detector's box rotated by the line through its eyes (any roll, up to upside down); without them
(the dlib detectors), a first pass on an upright crop and a second on a crop re-centred and rotated by the
first pass's landmarks; further passes (``max_passes`` in all) where the mesh finds the face turned in its crop
by more than ``realign_deg``, until it is within half of that (BlazeFace's eyes are coarse on rolled faces, and
the mesh reads only part of a large roll left in its crop). Where the mesh finds no face (presence
below ``retry_below``) in the detector-aligned crop, the crop turned by a quarter either way is tried too and
kept if the mesh finds the face there (a quarter turn off is what BlazeFace's upright eyes do to a face rolled
beyond ~50 deg; half a turn is not tried: the mesh sees a face in an upside-down one). ``passes`` forces one or
two passes. A box without detector keypoints whose first reading the estimator rejects (no face, or the
face-quality check) gets a second one (:meth:`FaceMeshKeypoints.relocate`) in the crop of ``retry_crops`` (larger,
or turned +-45 deg) where the mesh is surest of a face. The five points are mesh landmarks: the nose tip,
each eye's centre (mean of its corners and lids) and, for each "ear", the face outline at the tragus level;
then the nose and the ears are raised along the face's vertical (perpendicular to the eye line, toward the
forehead) by ``nose_raise`` and ``ear_raise`` times the mesh's forehead-to-chin length (landmarks 10 and 152):
0.01 and 0.02 by default, fitted on tuning halves of the development slices (AFLW2000 dev images by index,
first half; BIWI sequences 01-09) and checked on the other halves (docs/accuracy.md). With the raw landmarks
the default model read faces within 45 deg of yaw as pitched up by 4.8 (AFLW2000) and 1.6 deg (BIWI) more than
labelled, on average over the tuning halves; the raise lowers the pitch error on the tuning and the validation
half of both datasets. 0, 0 gives the raw landmarks.
The mesh places all five on every face, including an ear turned away (where it is extrapolated), and cannot
represent a profile: its keypoints stall at an apparent yaw of about 55 deg for true yaws of 60-80 deg. A face
whose keypoints look turned (:func:`headpose_ros.estimator.geometry.apparent_yaws_deg`) beyond ``tragion_ears[0]``
deg has both ears moved toward the detector's ear tragions (BlazeFace's keypoints 4 and 5; in video mode followed
with the mesh from the frame where the face was detected) by a weight that grows linearly to ``tragion_ears[2]`` at
``tragion_ears[1]`` deg (default 20, 35, 0.5; docs/accuracy.md). Its
face-presence score says how face-like the crop looks and falls near 0 for many profile faces that the
detector found and whose keypoints are still usable (10 % of the development faces beyond 45 deg yaw), so it
does not reject faces unless ``min_presence`` is raised; the keypoints' confidence is ``0.7 + 0.3 * presence``,
the range the default model was trained on.

Heatmaps are rendered with :func:`headpose_ros.estimator.heatmaps.keypoints_to_heatmaps`. A face whose eye line
tilts beyond ``level_beyond_deg`` (default 15 deg; 180: never) has them drawn in a frame turned toward level
(fully level from twice that tilt, see :func:`levelled_heatmaps`): the regressor's training covers roll to
+-45 deg only, and the pipeline turns its pose back
about the line of sight by the frame's rotation, which ``FaceKeypoints.to_heatmap`` carries
(:func:`headpose_ros.estimator.geometry.heatmap_frame_rotation_deg`). Faces within the limit are drawn as
before: levelling every face (``0``) cost accuracy on turned heads of the development sets (the eye line of a
head turned and pitched tilts without any roll). 15 deg (was 30) was chosen on the tuning parts (AFLW2000 dev
first half, BIWI 01-09: 4.45 / 4.28 -> 4.40 / 4.27 deg; 10: 4.49 / 4.25, 0: 4.55 / 4.30) and kept the validation
parts (4.88 / 3.24 -> 4.87 / 3.24); the slices turned +-30 deg gained most (docs/reliability.md).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from ..geometry import apparent_yaws_deg, eye_angle
from ..tflite import load_interpreter
from ..heatmaps import keypoints_to_heatmaps
from ..images import rgb_float
from ..types import (LEFT_EAR, LEFT_EYE, NOSE, NUM_KEYPOINTS, RIGHT_EAR, RIGHT_EYE, FaceBox, FaceKeypoints,
                     Keypoints)

#: Mesh landmark indices averaged into each keypoint, in KEYPOINT_NAMES order (subject's right/left).
LANDMARKS: tuple[tuple[int, ...], ...] = (
    (1,),  # nose tip
    (33, 133, 159, 145),  # right eye: corners and lids
    (362, 263, 386, 374),  # left eye
    (234,),  # right ear: face outline at the tragus level
    (454,),
)
INPUT_SIZE = 192
#: Eye-line tilt (deg) beyond which the source levels a face's heatmaps by default (``level_beyond_deg``).
LEVEL_BEYOND_DEG = 15.0
#: Mesh landmarks at the top of the forehead and the bottom of the chin: the face's length for the raises.
FOREHEAD, CHIN = 10, 152


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


def levelled(xy: np.ndarray, beyond_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (N, 5, 2) turned about their mean toward a level eye line: the turned keypoints, the turn
    (N,) radians (clockwise on screen, the eye line's tilt that was taken out) and the (N, 2, 2) rotation applied.

    An eye line tilted by up to ``beyond_deg`` is left as it is, one tilted by twice that or more is levelled,
    and in between the turn grows linearly (no jump in the pose as a head rolls through). 0: level every face.
    """
    tilt = eye_angle(xy[:, RIGHT_EYE], xy[:, LEFT_EYE])
    limit = math.radians(beyond_deg)
    angle = tilt * (np.clip((np.abs(tilt) - limit) / limit, 0.0, 1.0) if limit > 0 else 1.0)
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (N, 2, 2): turns by -angle
    centre = xy.mean(axis=1)
    return np.einsum("nab,nkb->nka", rot, xy - centre[:, None]) + centre[:, None], angle, rot


def levelled_heatmaps(xy: np.ndarray, conf: np.ndarray, threshold: float,
                      beyond_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, 96, 96, 5) of keypoints (N, 5, 2) turned about their mean to level the eye line
    (:func:`levelled`), and the frames (N, 2, 3) from image pixels to heatmap pixels they are drawn in (rotation
    included)."""
    level, _, rot = levelled(xy, beyond_deg)
    centre = xy.mean(axis=1)
    maps, frames = keypoints_to_heatmaps(level, conf, threshold)
    linear = np.einsum("nab,nbc->nac", frames[:, :, :2], rot)
    offset = np.einsum("nab,nb->na", frames[:, :, :2], centre - np.einsum("nab,nb->na", rot, centre)) + frames[:, :, 2]
    return maps, np.concatenate([linear, offset[:, :, None]], axis=2)


def raised(xy: np.ndarray, points: np.ndarray, nose: float, ears: float) -> np.ndarray:
    """Five keypoints (N, 5, 2) px with the nose and both ears moved toward the forehead, perpendicular to the eye
    line, by ``nose`` and ``ears`` times the mesh's (N, 468, 2) forehead-to-chin length (negative: toward the chin)."""
    if nose == 0.0 and ears == 0.0:
        return xy
    eye = xy[:, LEFT_EYE] - xy[:, RIGHT_EYE]
    up = np.stack([eye[:, 1], -eye[:, 0]], axis=1) / np.maximum(np.linalg.norm(eye, axis=1, keepdims=True), 1e-9)
    up *= np.linalg.norm(points[:, FOREHEAD] - points[:, CHIN], axis=1, keepdims=True)
    out = xy.copy()
    out[:, NOSE] += nose * up
    out[:, [RIGHT_EAR, LEFT_EAR]] += ears * up[:, None, :]
    return out


def crop_transform(cx: float, cy: float, side: float, angle_rad: float, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from image pixels to a ``size``-pixel square crop of side ``side`` (image px) centred on (cx, cy),
    rotated by ``angle_rad`` (the crop's x axis runs along that image direction)."""
    s = size / max(side, 1e-6)
    c, n = math.cos(angle_rad) * s, math.sin(angle_rad) * s
    return np.array([[c, n, size / 2 - c * cx - n * cy], [-n, c, size / 2 + n * cx - c * cy]])


def levelled_transform(points: np.ndarray, right_eye: np.ndarray, left_eye: np.ndarray, scale: float,
                       size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from image pixels to a ``size``-pixel crop levelled on the eyes (image pixels), centred on
    ``points`` (M, 2) and ``scale`` times their extent along and across the eye line."""
    angle = float(eye_angle(right_eye, left_eye))
    c, s = math.cos(angle), math.sin(angle)
    rotated = points @ np.array([[c, -s], [s, c]])  # coordinates along the eye line and across it
    lo, hi = rotated.min(0), rotated.max(0)
    centre = np.array([[c, s], [-s, c]]).T @ (0.5 * (lo + hi))
    return crop_transform(centre[0], centre[1], scale * float(np.max(hi - lo)), angle, size)


def _turned(transform: np.ndarray, degrees: float, size: int = INPUT_SIZE) -> np.ndarray:
    """A crop transform turned by ``degrees`` about the crop's centre (the crop's content turns the other way)."""
    r = math.radians(degrees)
    c, s = math.cos(r), math.sin(r)
    half = size / 2.0
    turn = np.array([[c, s, half - c * half - s * half], [-s, c, half + s * half - c * half], [0.0, 0.0, 1.0]])
    return (turn @ np.vstack([transform, [0.0, 0.0, 1.0]]))[:2]


class MeshModel:
    """MediaPipe's face mesh model (``face_landmark.tflite``) on 192-px crops of an image, one crop per
    invocation (at batch 16 XNNPACK took twice the time per crop of batch 1 here)."""

    def __init__(self, model_path: "str | Path | None" = None, num_threads: int = 1, what: str = "face mesh model"):
        self.path = Path(model_path) if model_path else bundled_model_path()
        self._interp = load_interpreter(self.path, what, num_threads)
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: -int(np.prod(d["shape"])))
        self._landmarks_out, self._presence_out = outputs[0]["index"], outputs[1]["index"]
        self._interp.allocate_tensors()

    def run(self, image_bgr: np.ndarray, transforms: Sequence[np.ndarray],
            mirrored: Optional[Sequence[bool]] = None) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks (N, 468, 2) in image pixels and face presence (N,) in [0, 1] for N 2x3 image-to-crop
        transforms. A ``mirrored`` crop is flipped left-right before the model and its landmarks flipped back,
        so their left/right labels stay the mirror image's."""
        n = len(transforms)
        flips = list(mirrored) if mirrored is not None else [False] * n
        raw, logits = np.empty((n, 468, 2)), np.empty(n)
        for i, (m, flip) in enumerate(zip(transforms, flips)):
            crop = cv2.warpAffine(image_bgr, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            self._interp.set_tensor(self._input, rgb_float(cv2.flip(crop, 1) if flip else crop, 1.0 / 255.0)[None])
            self._interp.invoke()
            raw[i] = self._interp.get_tensor(self._landmarks_out).reshape(-1, 3)[:, :2]
            logits[i] = self._interp.get_tensor(self._presence_out).reshape(-1)[0]
            if flip:
                raw[i, :, 0] = INPUT_SIZE - raw[i, :, 0]
        presence = 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))
        points = np.empty_like(raw)
        for i, m in enumerate(transforms):
            inv = cv2.invertAffineTransform(m)
            points[i] = raw[i] @ inv[:, :2].T + inv[:, 2]
        return points, presence

    def close(self) -> None:
        self._interp = None


#: Crops ``(scale, turn_deg)`` of :meth:`FaceMeshKeypoints.relocate`, a second reading of a box without detector
#: keypoints whose first one the estimator rejected: ``scale`` times the box's longer side around its centre, turned
#: by ``turn_deg`` about its centre; the one where the mesh is surest of a face is kept if it reaches
#: ``retry_below``. The tiles' boxes of 40-px faces are often a quarter smaller than the face and off its centre,
#: and a face rolled beyond ~70 deg is no face to the mesh in an upright crop. ``[]``: no second reading.
RETRY_CROPS: tuple[tuple[float, float], ...] = ((2.0, 0.0), (2.5, 0.0), (1.5, 45.0), (1.5, -45.0))
#: Default ``tragion_ears``: (apparent |yaw| in degrees from which the ears move toward the detector's tragions,
#: apparent |yaw| from which they move by the full weight, that weight in [0, 1]); chosen on the tuning parts
#: (docs/accuracy.md).
TRAGION_EARS: tuple[float, float, float] = (20.0, 35.0, 0.5)
#: Rows of the detector's ear tragions in :data:`~headpose_ros.estimator.types.DETECTOR_KEYPOINT_NAMES` order.
DETECTOR_EARS = (4, 5)


class FaceMeshKeypoints:
    """Nose, eyes and ears from the face mesh; ``heatmap_kind = "rendered"``."""

    heatmap_kind = "rendered"

    def __init__(self, passes: "int | str" = "auto", crop_scale: float = 1.5, min_presence: float = 0.0,
                 threshold: float = 0.3, model_path: Optional[str] = None, num_threads: int = 1,
                 level_beyond_deg: float = LEVEL_BEYOND_DEG, realign_deg: float = 10.0, retry_below: float = 0.5,
                 max_passes: int = 4, nose_raise: float = 0.01, ear_raise: float = 0.02,
                 retry_crops: Sequence[Sequence[float]] = RETRY_CROPS,
                 tragion_ears: Sequence[float] = TRAGION_EARS):
        if passes not in (1, 2, "auto"):
            raise ConfigError(f"face_mesh passes must be 1, 2 or auto, not {passes!r}")
        if not 1.0 <= float(crop_scale) <= 4.0:
            raise ConfigError(f"face_mesh crop_scale must lie in [1, 4], not {crop_scale!r}")
        for name, value in (("nose_raise", nose_raise), ("ear_raise", ear_raise)):
            if not -0.2 <= float(value) <= 0.2:
                raise ConfigError(f"face_mesh {name} must lie in [-0.2, 0.2] (a fraction of the face's length), "
                                  f"not {value!r}")
        self._model = MeshModel(model_path, num_threads)
        if not 0.0 <= float(level_beyond_deg) <= 180.0:
            raise ConfigError(f"face_mesh level_beyond_deg must lie in [0, 180], not {level_beyond_deg!r}")
        self.passes, self.crop_scale, self.level_beyond_deg = passes, float(crop_scale), float(level_beyond_deg)
        self.realign_deg, self.retry_below, self.max_passes = float(realign_deg), float(retry_below), int(max_passes)
        self.min_presence, self.threshold = float(min_presence), float(threshold)
        self.nose_raise, self.ear_raise = float(nose_raise), float(ear_raise)
        try:
            self.retry_crops = [(float(scale), float(turn)) for scale, turn in retry_crops]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"face_mesh retry_crops must be a list of [scale, turn_deg] pairs, not "
                              f"{retry_crops!r}") from exc
        if not all(1.0 <= scale <= 4.0 and -180.0 <= turn <= 180.0 for scale, turn in self.retry_crops):
            raise ConfigError(f"face_mesh retry_crops: each scale must lie in [1, 4] and each turn in [-180, 180] "
                              f"degrees, not {retry_crops!r}")
        try:
            ears = tuple(float(v) for v in tragion_ears)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"face_mesh tragion_ears must be [from_deg, full_deg, weight] or [], not "
                              f"{tragion_ears!r}") from exc
        if ears and not (len(ears) == 3 and 0.0 <= ears[0] <= ears[1] <= 90.0 and 0.0 <= ears[2] <= 1.0):
            raise ConfigError(f"face_mesh tragion_ears must be [from_deg, full_deg, weight] with 0 <= from_deg <= "
                              f"full_deg <= 90 and weight in [0, 1], or [] (off), not {tragion_ears!r}")
        self.tragion_ears = ears

    @property
    def mesh_model(self) -> MeshModel:
        """The face mesh model this source runs (the face-quality check shares it)."""
        return self._model

    def _run(self, image_bgr: np.ndarray, transforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Mesh landmarks (N, 468, 2) in image pixels and face presence (N,) for N crop transforms."""
        return self._model.run(image_bgr, transforms)

    def _refined_transform(self, points: np.ndarray) -> np.ndarray:
        """The second pass's crop: rotated so that the eyes are level, around the first pass's landmarks."""
        return levelled_transform(points, points[list(LANDMARKS[1])].mean(0), points[list(LANDMARKS[2])].mean(0),
                                  self.crop_scale)

    def _first_transform(self, box: FaceBox) -> np.ndarray:
        """The crop of a detector's box: square, ``crop_scale`` times its longer side, turned by its eye keypoints
        (BlazeFace's right and left eye, rows 0 and 1) when it has them, else upright."""
        kps = box.keypoints
        angle = float(eye_angle(kps[0], kps[1])) if kps is not None and np.all(np.isfinite(kps[:2])) else 0.0
        return crop_transform(*box.center, self.crop_scale * max(box.width, box.height), angle)

    def mesh(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> tuple[np.ndarray, np.ndarray]:
        """The full mesh (N, 468, 2) image pixels and presence (N,) for each box, after all passes."""
        if not boxes:
            return np.zeros((0, 468, 2)), np.zeros(0)
        first = [self._first_transform(b) for b in boxes]
        points, presence = self._run(image_bgr, first)
        # Where the mesh finds no face in a detector-aligned crop, the detector's eyes may be off by a quarter turn
        # (BlazeFace's upright model on a face rolled beyond ~50 deg): try the crop turned by +-90 deg.
        doubt = [i for i, b in enumerate(boxes) if b.keypoints is not None and presence[i] < self.retry_below]
        best = self._surest(image_bgr, [[_turned(first[i], sign * 90.0) for sign in (1, -1)] for i in doubt])
        for i, (crop, more_points, more_presence) in zip(doubt, best):
            if more_presence >= self.retry_below and more_presence > presence[i]:
                first[i], points[i], presence[i] = crop, more_points, more_presence
        return self._passes(image_bgr, boxes, first, points, presence)

    def _surest(self, image_bgr: np.ndarray, tries: list[list[np.ndarray]]
                ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """For each box's list of crop transforms, the one where the mesh is surest of a face (the first of equals),
        with its mesh (468, 2) image pixels and presence."""
        if not tries:
            return []
        points, presence = self._run(image_bgr, [t for crops in tries for t in crops])
        out, start = [], 0
        for crops in tries:
            k = start + int(np.argmax(presence[start:start + len(crops)]))
            out.append((crops[k - start], points[k], float(presence[k])))
            start += len(crops)
        return out

    def _passes(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox], first: list[np.ndarray], points: np.ndarray,
                presence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The passes after the first (crops ``first``, mesh ``points`` and ``presence``): the mesh (N, 468, 2) image
        pixels and presence (N,)."""
        # A second pass where asked for, where no detector keypoints aligned the crop, or where the mesh finds the
        # face turned in its crop by more than ``realign_deg`` (BlazeFace's eyes are coarse on rolled faces).
        # The mesh reads only part of a large roll left in its crop: up to ``max_passes`` passes in all.
        again = [i for i, b in enumerate(boxes) if self.passes == 2 or (self.passes == "auto" and b.keypoints is None)]
        crops, limit = first, self.realign_deg
        for _ in range(1 if self.passes == 2 else self.max_passes - 1):
            if self.passes == "auto":
                turned = np.degrees(np.abs(np.angle(np.exp(1j * (
                    eye_angle(points[:, list(LANDMARKS[1])].mean(1), points[:, list(LANDMARKS[2])].mean(1))
                    - np.array([math.atan2(-m[1, 0], m[0, 0]) for m in crops]))))))
                again = sorted(set(again) | {i for i in range(len(boxes)) if turned[i] > limit})
                limit = self.realign_deg / 2.0  # once realigning, until it is within half of it
            if not again:
                break
            crops = list(crops)
            for i in again:
                crops[i] = self._refined_transform(points[i])
            points[again], presence[again] = self._run(image_bgr, [crops[i] for i in again])
            again = []
        return points, presence

    def relocate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        """A second reading of boxes whose first one the estimator rejected (no face, or the face-quality check):
        for a box without detector keypoints, the crop of ``retry_crops`` where the mesh is surest of a face, then
        the passes that follow a first one; None for a box with detector keypoints (already read in the
        detector's alignment and, on doubt, a quarter turn either way) or where no crop reaches ``retry_below``."""
        out: list[Optional[FaceKeypoints]] = [None] * len(boxes)
        todo = [i for i, b in enumerate(boxes) if b.keypoints is None]
        if not todo or not self.retry_crops:
            return out
        crops = [[_turned(crop_transform(*boxes[i].center, scale * max(boxes[i].width, boxes[i].height), 0.0), turn)
                  for scale, turn in self.retry_crops] for i in todo]
        best = self._surest(image_bgr, crops)
        chosen = [(i, b) for i, b in zip(todo, best) if b[2] >= self.retry_below]
        if not chosen:
            return out
        located = self.keypoints_from_mesh(*self._passes(
            image_bgr, [boxes[i] for i, _ in chosen], [b[0] for _, b in chosen],
            np.stack([b[1] for _, b in chosen]), np.array([b[2] for _, b in chosen])))
        for (i, _), face in zip(chosen, located):
            out[i] = face
        return out

    def mesh_from_landmarks(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass on crops set by each face's previous landmarks (N, 468, 2), as MediaPipe tracks between
        frames: the mesh (N, 468, 2) image pixels and presence (N,)."""
        if len(landmarks) == 0:
            return np.zeros((0, 468, 2)), np.zeros(0)
        return self._run(image_bgr, [self._refined_transform(p) for p in landmarks])

    def keypoints_from_mesh(self, points: np.ndarray, presence: np.ndarray,
                            detector_keypoints: Optional[Sequence[Optional[np.ndarray]]] = None
                            ) -> list[Optional[FaceKeypoints]]:
        """Five keypoints and their heatmaps from meshes (N, 468, 2) and presence (N,); None below
        ``min_presence``. ``detector_keypoints``: each face's detector keypoints (6, 2) image pixels in
        BlazeFace's order, or None, for the ears of turned faces (``tragion_ears``)."""
        if len(points) == 0:
            return []
        xy = raised(np.stack([points[:, list(idx)].mean(axis=1) for idx in LANDMARKS], axis=1), points,
                    self.nose_raise, self.ear_raise)  # (N, 5, 2)
        if detector_keypoints is not None:
            xy = self._toward_tragions(xy, detector_keypoints)
        conf = np.repeat(0.7 + 0.3 * presence[:, None], NUM_KEYPOINTS, axis=1)
        if self.level_beyond_deg < 180.0:
            maps, frames = levelled_heatmaps(xy, conf, self.threshold, self.level_beyond_deg)
        else:
            maps, frames = keypoints_to_heatmaps(xy, conf, self.threshold)
        return [
            FaceKeypoints(Keypoints(xy[i], conf[i]), maps[i], frames[i], landmarks=points[i],
                          presence=float(presence[i]))
            if presence[i] >= self.min_presence else None
            for i in range(len(points))
        ]

    def _toward_tragions(self, xy: np.ndarray, detector_keypoints: Sequence[Optional[np.ndarray]]) -> np.ndarray:
        """Keypoints (N, 5, 2) px with the ears of each turned face moved toward its detector's ear tragions
        (rows 4 and 5 of its (6, 2) keypoints; a face with None or missing ones keeps its ears) by a weight that
        ramps linearly from 0 at ``tragion_ears[0]`` deg of apparent yaw to ``tragion_ears[2]`` from
        ``tragion_ears[1]`` deg."""
        if not self.tragion_ears:
            return xy
        start, full, most = self.tragion_ears
        turned = np.abs(apparent_yaws_deg(xy))
        weight = most * (np.clip((turned - start) / (full - start), 0.0, 1.0) if full > start
                         else (turned >= full).astype(np.float64))
        out, ears = xy.copy(), [RIGHT_EAR, LEFT_EAR]
        for i, (kps, w) in enumerate(zip(detector_keypoints, weight)):
            tragions = None if kps is None else np.asarray(kps, dtype=np.float64)[list(DETECTOR_EARS)]
            if w > 0.0 and tragions is not None and np.all(np.isfinite(tragions)):
                out[i, ears] += w * (tragions - out[i, ears])
        return out

    def locate(self, image_bgr: np.ndarray, boxes: Sequence[FaceBox]) -> list[Optional[FaceKeypoints]]:
        """Keypoints and rendered heatmaps per box (a turned face's ears toward the box's detector tragions, see
        ``tragion_ears``); None where the mesh says there is no face."""
        return self.keypoints_from_mesh(*self.mesh(image_bgr, boxes), [b.keypoints for b in boxes])
