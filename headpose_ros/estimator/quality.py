r"""Face-quality check: is what the detector and keypoint source found a face at all?

BlazeFace fires on helmets, mission patches, cats and textures (scores of 0.5-0.85 are common), and a face
mesh then places a full, plausible set of keypoints on them: neither the detector's score, the keypoints'
geometry nor the mesh's face-presence score (near 0 for many real profiles) separates them from faces. What
does is **consistency**: on a face, the mesh finds the same nose and eyes in a crop and in its mirror image;
on something that is not a face, the mesh's guess depends on the crop, and its mirrored guess lands
elsewhere.

:class:`FaceQuality` runs MediaPipe's face mesh model (``face_landmark.tflite``, bundled in mediapipe; the
face_mesh keypoint source's interpreter where the pipeline has one) on the mirror image of a crop levelled on
the found eyes and measures how far the mirrored run's nose and eyes (swapped left/right, mapped back) lie
from the ones found, in units of the face's size (the
extent of the landmarks). Its presence is the larger of the mirrored run's and the level crop's; for the
level crop it takes the keypoint source's own (``FaceKeypoints.presence``: the face_mesh source's last pass,
whose crop the level one nearly repeats) where that is at least ``REUSE_PRESENCE``, and runs the level crop
only below it (profiles, non-faces, small faces cropped loosely from the detector's box): one mesh run per
face the mesh believes instead of two. Mirror consistency alone leaves an
overlap (extreme profiles are less consistent), so the quality combines it with the mesh's presence score
(high for frontal faces), the detector's score, capped at ``SCORE_CAP`` so that a confident detector alone
cannot pass a non-face, and the **frontal doubt** (:func:`frontal_doubt`)::

    quality = sigmoid(W_MIRROR * ln(mirror + 0.001) + W_PRESENCE * presence + W_SCORE * min(score, SCORE_CAP)
                      + W_FRONTAL * frontal_doubt(presence, profile) + BIAS)

The frontal doubt is what the roll search's false faces gave away. The detector's turned passes keep only
detections scoring 0.7 or more, so the false faces they add (a clock, the astronaut's helmet, checks turned a
quarter) came with scores of 0.74-0.83, which the score term alone once let through whatever the mesh said.
On them the mesh fits a *frontal* face that it does not believe (presence 0.0001-0.005). A real face the mesh
does not believe is a profile: every AFLW2000 and BIWI development face with a presence below 0.3 has its nose
at or beyond an ear's outline (``profile`` 0.86-1, :func:`profile_of`, from the five keypoints: where the nose
lies between the ears along the eye line). So ``frontal_doubt = (1 - profile) * decades`` (``decades``: how
many powers of ten the presence lies below 0.1, up to two, divided by two) is near 1 only for a
frontal-looking mesh that the mesh itself calls no face; it needs no extra model run. (Counted from 1
instead of 0.1, it also dropped a frontal BIWI face with presence 0.41 and a small face that only a turned
pass found, with presence 0.05.)

A face narrower than ``SMALL_FACE_PX`` (the extent of its landmarks) must also look like one to the mesh:
its quality is at most the mesh's presence score. So small, the crop is a blur on which the mesh's guess is
a symmetric mean face, mirror-consistent whatever it is (texture, star field, page of text found by the
tiled detector), while the presence score still tells faces (0.997 or more for 95 % of the development faces
pasted at 40-80 px into HD frames) from the rest.

A face whose detector box is ``unsure`` (:class:`~headpose_ros.estimator.types.FaceBox`: the tiled detector's
tiles found it and its whole-frame pass did not) must convince the mesh fully: its presence must reach
``UNSURE_PRESENCE`` (0.99), else its quality is 0. The tiles search a frame 40-84 times and keep detections from
a score of 0.5 (below the full-range model's floor of 0.6, to find a 50-px cameraman), so they meet far more
face-like things than the whole-frame pass: on 246 frames of 1920x1080 without faces (``python -m
headpose_ros.tools.false_faces --seeds 4 5 11 13 15 17 --size 1920 1080 --per-source 1``) 346 candidates that only
the tiles found reached the check, against 21 from the whole frame. On the generated scenes of ``python -m
headpose_ros.tools.small_faces`` (seeds 0-5, 1920x1080 and 1280x720) the 169 faces that only the tiles found had
presence 0.9967-1.0; the non-faces that only the tiles found and that passed the check otherwise (helmets, the
astronaut's suit, a rocket, seeds 3, 6, 7, 8 of the frames without faces) 0.56-0.985 (an ad-hoc script, not
shipped; docs/reliability.md, "Small faces"). A profile is the exception (``UNSURE_PROFILE*``): the mesh's
presence is low for real profiles, so an unsure face whose mesh places the nose beyond an ear's outline
(:func:`profile_of` at least 0.95) passes from a presence of 0.5 and a detector score of 0.6; no non-face that only
the tiles found in the generated HD frames without faces met those bounds (docs/reliability.md, "Profiles that
only the tiles find"); from a presence of 0.8 with a mirrored run that repeats it within ``PROFILE_MIRROR``, from
the tiles' floor score of 0.5 (``SEEN_PROFILE*``; docs/reliability.md, "40-px faces"). Many small real profiles
have a presence of 0.001-0.1, though, while the mirrored run repeats their nose and eyes closely: a **mirrored
profile** (``profile_of`` at least ``UNSURE_PROFILE``, mirror disagreement at most ``PROFILE_MIRROR``, detector
score at least ``PROFILE_MIRROR_SCORE``) that is small or ``unsure`` needs no presence, and its quality is at least
its detector score. Chosen on the candidates of generated HD frames without faces against half of the development
faces pasted at 40-80 px; the score bound was raised from 0.6 to 0.65 after frames of other seeds gave one non-face
mirrored profile at 0.61 (docs/reliability.md, "Small profiles the mesh doubts"). Profiles of 63-81 deg of yaw
that the mesh repeats less closely (0.041-0.061) came with surer detections (0.755-0.791), and no small or unsure
non-face of those frames that was a profile within 0.07 scored 0.7 or more: from a score of
``SURE_PROFILE_MIRROR_SCORE`` (0.75) the bound is ``SURE_PROFILE_MIRROR`` (0.07) (docs/reliability.md, "Extreme
profiles with a surer detector").

The weights were fitted (logistic regression, both classes weighted alike, :func:`headpose_ros.tools.
false_faces.fit`) on the development sets' faces (AFLW2000 dev and every second BIWI dev crop: 1,301 faces,
profiles included) against the candidates of generated non-face scenes (:func:`headpose_ros.tools.scenes.
negative_scenes`, all kinds, seeds 0, 2, 10, 12, 14 and 16: 186 candidates on 1,312 frames, with the
detector's full roll search, as the pipeline runs it on frames where no face passed), with the reused
presence, and the bias set so that the least face-like of those faces (AFLW2000 image00485, a profile)
scores 0.64 (the command gives these weights within 0.03)::

    python -m headpose_ros.tools.false_faces --seeds 0 2 10 12 14 16 \
        --kinds astronaut skimage texture photo crops mosaic --positives aflw2000 DATA/aflw2000_dev \
        --positives biwi-crops DATA/biwi_dev 2 --fit

At the default threshold 0.45, on scenes not used to fit it (``python -m headpose_ros.tools.false_faces
--seeds 1 3 6 4 5 11 13 15 17``, default kinds; ``--kinds photo crops mosaic`` for the others) it lets
4 of 902 frames through (the previous weights with two mesh runs per face: 4) and 2 of 902 frames of the new
kinds (previously 4; seed 5: 1 of 82, previously 2, the 40-px rocket now left out by the detector's
``turn_min_px``): what still passes is what the mesh takes for a face (mission patches, a rocket, a retina
turned a quarter, cat faces; presence 0.4-0.99). It drops none of the AFLW2000 and BIWI development faces (the
other half of BIWI, not fitted on, included). The profile and the doubt cost about 30 us per face, next to
the mesh run per face (two below ``REUSE_PRESENCE``; docs/speed.md has the time saved). The pipeline drops a
face whose quality is below ``EstimatorConfig.min_face_quality`` (0.45 by default; 0 turns the check off).
The check needs the face mesh's dense landmarks and passes faces from sources without them (it was fitted on
the face mesh's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .types import LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE, FaceKeypoints

if TYPE_CHECKING:
    from .keypoints.face_mesh import MeshModel

#: Weights of the quality's logistic model (see the module docstring).
W_MIRROR, W_PRESENCE, W_SCORE, W_FRONTAL, BIAS = -1.98, 4.93, 28.61, -5.88, -26.88
SCORE_CAP = 0.8
#: Faces narrower than this (image pixels, extent of the landmarks) need the mesh's presence as well.
SMALL_FACE_PX = 80.0
#: Presence that a face of an ``unsure`` detector box needs (see the module docstring)...
UNSURE_PRESENCE = 0.99
#: ... unless its mesh shows a profile (:func:`profile_of` at least ``UNSURE_PROFILE``) with a presence of at least
#: ``UNSURE_PROFILE_PRESENCE`` and a detector score of at least ``UNSURE_PROFILE_SCORE``: the mesh's presence is
#: low for real profiles, and on the blur of a small non-face it fits a symmetric, frontal-looking face.
UNSURE_PROFILE, UNSURE_PROFILE_PRESENCE, UNSURE_PROFILE_SCORE = 0.95, 0.5, 0.6
#: ... or, with a presence of at least ``SEEN_PROFILE_PRESENCE`` and a mirrored run that repeats it within
#: ``PROFILE_MIRROR``, from the tiles' floor score ``SEEN_PROFILE_SCORE``: 40-px profiles the mesh believes that the
#: full-range model scores 0.54-0.56 (the logistic quality still decides).
SEEN_PROFILE_PRESENCE, SEEN_PROFILE_SCORE = 0.8, 0.5
#: A profile (``UNSURE_PROFILE``) with a detector score of at least ``PROFILE_MIRROR_SCORE`` whose mirrored run repeats
#: its nose and eyes within ``PROFILE_MIRROR`` of the face's size is a **mirrored profile**: small or ``unsure``, it
#: needs no presence at all, and its quality is at least the detector's score (the mesh's presence of small real
#: profiles is often 0.001-0.1)...
PROFILE_MIRROR, PROFILE_MIRROR_SCORE = 0.04, 0.65
#: ... and so is one whose detector is surer (a score of at least ``SURE_PROFILE_MIRROR_SCORE``) and whose mirrored run
#: repeats it within ``SURE_PROFILE_MIRROR``: far-turned profiles (yaw 63-81 deg) that the mesh repeats less closely.
SURE_PROFILE_MIRROR, SURE_PROFILE_MIRROR_SCORE = 0.07, 0.75
#: Quality that a face needs from a **second reading** (the keypoint source's ``relocate`` of a box whose first
#: reading the check rejected), or ``min_face_quality`` where that is higher, and the mesh's presence on it: each
#: reading is one more chance for a non-face, and the second one's crop was chosen for the mesh's presence, so it
#: gets none of the profile exceptions to ``UNSURE_PRESENCE``. On generated HD frames without faces the second
#: readings that passed ``min_face_quality`` scored 0.59-0.79, 0.95 (a flag read as a profile, presence 0.94) and
#: 0.98 (a face-like pattern on a rocket, 0.999); the 40-px faces they recovered 0.98-1.0 (presence 0.997-1.0).
SECOND_READING_QUALITY, SECOND_READING_PRESENCE = 0.9, UNSURE_PRESENCE
#: The keypoint source's presence (``FaceKeypoints.presence``) from which the check takes it instead of running the
#: mesh on the level crop again; below it the level crop's own presence is needed (a small face's crop from the
#: detector's box can score far lower than the level one: a 109-px BIWI crop, 0.22 against 0.93).
REUSE_PRESENCE = 0.5
#: Side of the check's crop relative to the extent of the dense landmarks (or of the five keypoints).
CROP_SCALE_LANDMARKS = 1.5
CROP_SCALE_KEYPOINTS = 2.2


@dataclass(frozen=True)
class FaceEvidence:
    """What the check measured for one face: disagreements are fractions of the face's size, presence in [0, 1]."""

    mirror: float
    #: the plain (unmirrored) run's disagreement; None where the source's presence was reused (no plain run)
    repeat: Optional[float]
    presence: float
    score: float
    quality: float
    profile: float = 1.0


def profile_of(xy: np.ndarray) -> float:
    """How far a face is turned, from where its nose lies between its ears along the eye line: 0 for a frontal
    face (nose midway), 1 for a profile (nose beyond the near ear's outline). ``xy`` (5, 2) keypoints."""
    axis = xy[LEFT_EYE] - xy[RIGHT_EYE]
    axis = axis / max(float(np.linalg.norm(axis)), 1e-9)
    right, left = float((xy[NOSE] - xy[RIGHT_EAR]) @ axis), float((xy[LEFT_EAR] - xy[NOSE]) @ axis)
    return min(1.0, abs(right - left) / max(abs(right) + abs(left), 1e-9))


def profile_of_face(face: FaceKeypoints) -> float:
    """:func:`profile_of` a face's keypoints, taken from its dense mesh where it has one (the face_mesh source
    moves a turned face's ears toward the detector's tragions, ``tragion_ears``, and raises nose and ears along
    the face's vertical, which :func:`profile_of` does not see; the check's rules were set on the mesh's own)."""
    from .keypoints.face_mesh import LANDMARKS

    if face.landmarks is None or len(face.landmarks) < 468:
        return profile_of(face.keypoints.xy)
    points = np.asarray(face.landmarks, dtype=np.float64)
    return profile_of(np.stack([points[list(idx)].mean(0) for idx in LANDMARKS]))


def frontal_doubt(presence: float, profile: float) -> float:
    """In [0, 1]: how far the mesh disbelieves a face that its keypoints show frontal: ``1 - profile`` times the
    decades by which the presence lies below 0.1, counted up to two (0.1 or more: 0, 0.01: 1/2, 0.001 or less:
    1)."""
    decades = (-math.log10(min(max(presence, 0.0), 1.0) + 1e-3) - 1.0) / 2.0
    return (1.0 - min(max(profile, 0.0), 1.0)) * min(max(decades, 0.0), 1.0)


def mirrored_profile(mirror: float, score: float, profile: float) -> bool:
    """Whether a face turned by ``profile`` (:func:`profile_of`) with detector score ``score`` and mirror
    disagreement ``mirror`` (fraction of its size) is a mirrored profile: ``PROFILE_MIRROR`` from a score of
    ``PROFILE_MIRROR_SCORE``, ``SURE_PROFILE_MIRROR`` from ``SURE_PROFILE_MIRROR_SCORE``."""
    return profile >= UNSURE_PROFILE and ((score >= PROFILE_MIRROR_SCORE and mirror <= PROFILE_MIRROR)
                                          or (score >= SURE_PROFILE_MIRROR_SCORE and mirror <= SURE_PROFILE_MIRROR))


def seen_profile(mirror: float, presence: float, score: float, profile: float) -> bool:
    """Whether an ``unsure`` face is a profile the mesh believes enough to skip ``UNSURE_PRESENCE``: presence
    ``UNSURE_PROFILE_PRESENCE`` from a score of ``UNSURE_PROFILE_SCORE``, or presence ``SEEN_PROFILE_PRESENCE`` with a
    mirror disagreement within ``PROFILE_MIRROR`` from ``SEEN_PROFILE_SCORE``."""
    return profile >= UNSURE_PROFILE and (
        (presence >= UNSURE_PROFILE_PRESENCE and score >= UNSURE_PROFILE_SCORE)
        or (presence >= SEEN_PROFILE_PRESENCE and mirror <= PROFILE_MIRROR and score >= SEEN_PROFILE_SCORE))


def quality_from(mirror: float, presence: float, score: float, width_px: float = SMALL_FACE_PX,
                 profile: float = 1.0, unsure: bool = False) -> float:
    """The quality in [0, 1) of a face with mirror disagreement ``mirror`` (fraction of its size), mesh presence
    and detector score in [0, 1], ``width_px`` pixels wide, turned by ``profile`` (:func:`profile_of`): at most the
    presence below ``SMALL_FACE_PX``, and 0 for an ``unsure`` detection (:attr:`FaceBox.unsure`) whose presence is
    below ``UNSURE_PRESENCE`` (unless it is a :func:`seen_profile`); a small or ``unsure`` mirrored profile
    (:func:`mirrored_profile`) needs no presence, and its quality is at least its detector score."""
    mirrored = mirrored_profile(mirror, score, profile)
    if unsure and presence < UNSURE_PRESENCE and not mirrored and not seen_profile(mirror, presence, score, profile):
        return 0.0
    logit = (W_MIRROR * math.log(max(mirror, 0.0) + 1e-3) + W_PRESENCE * presence
             + W_SCORE * min(max(score, 0.0), SCORE_CAP)
             + W_FRONTAL * frontal_doubt(presence, profile) + BIAS)
    quality = 1.0 / (1.0 + math.exp(-min(max(logit, -50.0), 50.0)))
    small = width_px < SMALL_FACE_PX
    if small:
        quality = min(quality, presence)
    if mirrored and (small or unsure):
        quality = max(quality, min(score, 0.999))
    return quality


class FaceQuality:
    """Scores each found face in (0, 1) by the mesh's mirror consistency, presence and the detector's score."""

    def __init__(self, model_path: Optional[str] = None, num_threads: int = 1, shared: Optional["MeshModel"] = None):
        """``shared``: a face mesh model already loaded (the face_mesh keypoint source's), used when it is the
        same model file as ``model_path`` (default: the bundled one), which saves a second copy (about 8 MiB)."""
        from .keypoints.face_mesh import MeshModel, bundled_model_path

        wanted = Path(model_path) if model_path else bundled_model_path()
        self._owned = shared is None or Path(shared.path) != wanted
        self._model = MeshModel(wanted, num_threads, "face-quality check's face mesh model") if self._owned else shared

    def _run(self, image_bgr: np.ndarray, transforms: list[np.ndarray], mirrored: list[bool]
             ) -> tuple[np.ndarray, np.ndarray]:
        """Mesh landmarks (N, 468, 2) in image pixels and presence (N,); a mirrored crop's landmarks are
        flipped back, so their left/right labels stay the mirror image's."""
        return self._model.run(image_bgr, transforms, mirrored)

    def evidence(self, image_bgr: np.ndarray, faces: Sequence[FaceKeypoints], scores: Sequence[float],
                 unsure: Optional[Sequence[bool]] = None) -> list[FaceEvidence]:
        """One :class:`FaceEvidence` per face (keypoints in image pixels of ``image_bgr``, 8-bit BGR), its
        detector score in [0, 1] and whether its box is ``unsure`` (:func:`quality_from`; default: none is). A
        face that carries the mesh's presence on its landmarks' crop (the face_mesh source's last pass, whose crop
        the levelled one nearly repeats) of at least ``REUSE_PRESENCE`` gets the mirrored run only."""
        from .keypoints.face_mesh import LANDMARKS, levelled_transform

        nose_eyes = LANDMARKS[:3]  # mesh landmarks averaged into nose tip, right eye, left eye, as the source does
        if not faces:
            return []
        transforms, mirrored, sizes, found, widths, reused = [], [], [], [], [], []
        for face in faces:
            xy = face.keypoints.xy
            dense = face.landmarks is not None and len(face.landmarks) >= 3
            points = np.asarray(face.landmarks if dense else xy, dtype=np.float64)
            m = levelled_transform(points, xy[RIGHT_EYE], xy[LEFT_EYE],
                                   CROP_SCALE_LANDMARKS if dense else CROP_SCALE_KEYPOINTS)
            reuse = face.presence is not None and face.presence >= REUSE_PRESENCE and len(points) >= 468
            transforms += [m] if reuse else [m, m]
            mirrored += [True] if reuse else [False, True]
            reused.append(reuse)
            extent = float(np.max(points.max(0) - points.min(0)))
            widths.append(extent * (1.0 if dense else 1.3))
            sizes.append(max(extent * (1.0 if dense else 1.3), 1e-6))
            # the mesh's own nose and eyes where there is a mesh (the face_mesh source may move its keypoints:
            # nose_raise), so that the check compares like with like
            found.append(np.stack([points[list(idx)].mean(0) for idx in nose_eyes]) if len(points) >= 468
                         else xy[[NOSE, RIGHT_EYE, LEFT_EYE]])
        points, presence = self._run(image_bgr, transforms, mirrored)
        out, run = [], 0  # run: index of the face's first mesh run
        for i, size in enumerate(sizes):
            flip = run if reused[i] else run + 1
            flipped = np.stack([points[flip, list(idx)].mean(0) for idx in nose_eyes])[[0, 2, 1]]
            mirror = float(np.linalg.norm(flipped - found[i], axis=1).mean() / size)
            if reused[i]:
                repeat, pres = None, max(float(faces[i].presence), float(presence[flip]))
            else:
                plain = np.stack([points[run, list(idx)].mean(0) for idx in nose_eyes])
                repeat = float(np.linalg.norm(plain - found[i], axis=1).mean() / size)
                pres = float(presence[run: run + 2].max())
            run = flip + 1
            score = float(scores[i])
            profile = profile_of_face(faces[i])
            quality = quality_from(mirror, pres, score, widths[i], profile, bool(unsure[i]) if unsure else False)
            out.append(FaceEvidence(mirror, repeat, pres, score, quality, profile))
        return out

    def assess(self, image_bgr: np.ndarray, faces: Sequence[FaceKeypoints], scores: Sequence[float],
               unsure: Optional[Sequence[bool]] = None) -> np.ndarray:
        """Quality (N,) in [0, 1) of N faces' keypoints found in ``image_bgr``, given their detector scores (and
        which boxes are ``unsure``)."""
        return np.array([e.quality for e in self.evidence(image_bgr, faces, scores, unsure)], dtype=np.float64)

    def close(self) -> None:
        if self._owned:
            self._model.close()


__all__ = ["FaceQuality", "FaceEvidence", "quality_from", "mirrored_profile", "seen_profile", "profile_of",
           "profile_of_face", "frontal_doubt", "SCORE_CAP", "SECOND_READING_QUALITY", "SECOND_READING_PRESENCE",
           "SMALL_FACE_PX", "UNSURE_PRESENCE", "UNSURE_PROFILE", "UNSURE_PROFILE_PRESENCE", "UNSURE_PROFILE_SCORE",
           "PROFILE_MIRROR", "PROFILE_MIRROR_SCORE", "SURE_PROFILE_MIRROR", "SURE_PROFILE_MIRROR_SCORE",
           "SEEN_PROFILE_PRESENCE", "SEEN_PROFILE_SCORE"]
