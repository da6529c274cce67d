"""Synthetic training data: five-keypoint geometry of random heads, poses and cameras, rendered as heatmaps.

Each sample is a head (the package's mean keypoint model, scaled and perturbed per person), a pose drawn
uniformly over yaw +-90, pitch +-60, roll +-45 degrees, and a pinhole camera at 0.4-3 m that sees the head
up to 25 degrees off its axis. The label is the pose relative to the line of sight (what a crop of the face
shows; with calibrated intrinsics the pipeline turns it into the camera frame with
:func:`geometry.camera_pose_from_apparent`, without them it reports it as it is). The
projected keypoints get the pose distortions, noise, confidence and self-occlusion of a keypoint source (a
:class:`SourceProfile`), and the same renderer as inference turns them into heatmaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..estimator import geometry
from ..estimator.heatmaps import keypoints_to_heatmaps
from ..estimator.types import HEATMAP_SIZE, NUM_KEYPOINTS, CameraIntrinsics

#: Outward surface normals of the five keypoints in the head frame (x subject's left, y chin, z back).
NORMALS = np.array([[0, 0, -1], [-0.35, 0, -1], [0.35, 0, -1], [-1, 0, 0.1], [1, 0, 0.1]], dtype=np.float64)
NORMALS /= np.linalg.norm(NORMALS, axis=1, keepdims=True)


@dataclass(frozen=True)
class SourceProfile:
    """How a keypoint source places and scores keypoints, for the generator to imitate.

    - ``noise_iod``: per-keypoint position noise (std), in units of the inter-ocular distance in pixels;
    - ``pitch_gain``: range of the factor by which the source's keypoints follow pitch (< 1: it compresses
      pitch; fitted on development data, see README);
    - ``yaw_knee_deg``, ``yaw_soft_deg``: beyond the knee (a range, drawn per sample) the keypoints stop
      following yaw and saturate softly, ``knee + soft * (1 - exp(-(|yaw| - knee) / soft))``: a face mesh cannot
      represent a profile, so its keypoints at 80 deg look like a 55 deg face (measured on development data);
      ``None`` for sources that follow yaw to the profile;
    - ``places_hidden``: True when the source places keypoints it cannot see (a face mesh extrapolates an ear
      turned away), False when such keypoints weaken and vanish (OpenPose, MediaPipe pose);
    - ``confidence``: range of a visible keypoint's confidence.
    """

    name: str
    noise_iod: tuple[float, float, float, float, float]
    pitch_gain: tuple[float, float]
    yaw_knee_deg: "tuple[float, float] | None"
    yaw_soft_deg: float
    places_hidden: bool
    confidence: tuple[float, float]


PROFILES = {
    "face_mesh": SourceProfile("face_mesh", (0.04, 0.035, 0.035, 0.09, 0.09), (0.7, 0.9), (42.0, 48.0), 10.0,
                               True, (0.7, 1.0)),
    "mediapipe_pose": SourceProfile("mediapipe_pose", (0.06, 0.05, 0.05, 0.12, 0.12), (0.5, 0.8), None, 10.0,
                                    False, (0.5, 1.0)),
}
#: Pose ranges of the generator, degrees (yaw, pitch, roll), drawn uniformly in [-r, r].
POSE_RANGE_DEG = (90.0, 60.0, 45.0)


@dataclass
class SyntheticSet:
    """Keypoints ``xy`` (N, 5, 2) pixels, ``confidence`` (N, 5), labels ``ypr`` (N, 3) degrees."""

    xy: np.ndarray
    confidence: np.ndarray
    ypr: np.ndarray

    def __len__(self) -> int:
        return len(self.ypr)

    def heatmaps(self, index: np.ndarray, threshold: float) -> np.ndarray:
        """Rendered heatmaps (len(index), 96, 96, 5) float32 of the chosen samples."""
        maps, _ = keypoints_to_heatmaps(self.xy[index], self.confidence[index], threshold)
        return maps


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def tilt_share(yaw_deg: np.ndarray) -> np.ndarray:
    """1 - cos(yaw): the share of an in-plane tilt range that a head drawn in (yaw, pitch, roll) cannot show.

    The roll turns the head about its own front-to-back axis, which leaves the image plane as the head turns:
    drawn in Euler angles a profile barely tilts in the image (at 70 deg of yaw a 15 deg tilt is already pitch 35
    and roll 38; at 80 deg, pitch 56 and roll 57, beyond the roll range), a frontal face tilts by its roll."""
    return 1.0 - np.cos(np.radians(np.asarray(yaw_deg, dtype=np.float64)))


def generate(n: int, seed: int, profile: SourceProfile, tilt_deg: float = 0.0,
             level_deg: "float | None" = None, min_yaw_deg: float = 0.0) -> SyntheticSet:
    """``n`` samples drawn with ``numpy.random.default_rng(seed)``: the same arguments give the same set.

    ``tilt_deg`` > 0 turns each head further about its line of sight (an in-plane tilt of the face in the image,
    clockwise), by up to ``tilt_deg`` times :func:`tilt_share` of its yaw, drawn uniformly from a second stream
    seeded ``[seed, 1]`` (0 where the turned pose would leave the benchmarks' +-99 deg). The tilt is shown as it is
    (an image rotation: a keypoint source follows it whole); the rest of the pose gets the source's pitch gain and
    yaw saturation. Off by default (the shipped models); tried in docs/accuracy.md.

    ``level_deg`` levels each head's keypoints as the ``face_mesh`` source levels them at inference with
    ``level_beyond_deg`` = ``level_deg`` (:func:`~headpose_ros.estimator.keypoints.face_mesh.levelled`), and
    turns the label with them, so that the model learns the heatmaps that source shows and the pose their
    frame shows (the pipeline turns it back). None: keypoints as the camera sees them.

    ``min_yaw_deg`` > 0 draws only turned heads: each yaw's magnitude is mapped linearly from [0, 90] onto
    [``min_yaw_deg``, 90] degrees, its sign kept (the same heads otherwise).
    """
    rng = np.random.default_rng(seed)
    ypr = rng.uniform(-1.0, 1.0, (n, 3)) * np.array(POSE_RANGE_DEG)
    if min_yaw_deg > 0.0:
        top = POSE_RANGE_DEG[0]
        ypr[:, 0] = np.sign(ypr[:, 0]) * (min_yaw_deg + np.abs(ypr[:, 0]) * (top - min_yaw_deg) / top)
    # People: overall size (IOD 63 +- 3.5 mm) and per-keypoint offsets (mm) with some asymmetry.
    scale = rng.normal(63.0, 3.5, n).clip(52, 75) / 63.0
    offsets = rng.normal(0.0, 1.0, (n, NUM_KEYPOINTS, 3)) * np.array([[2, 4, 4], [1, 1, 1.5], [1, 1, 1.5],
                                                                      [5, 5, 6], [5, 5, 6]])
    model = geometry.HEAD_MODEL_MM[None] * scale[:, None, None] + offsets
    # What the source shows: pitch with a gain, yaw saturating beyond a knee (labelled with the true pose).
    shown = ypr.copy()
    shown[:, 1] *= rng.uniform(*profile.pitch_gain, n)
    if profile.yaw_knee_deg is not None:
        knee, soft = rng.uniform(*profile.yaw_knee_deg, n), profile.yaw_soft_deg
        over = np.abs(ypr[:, 0]) - knee
        shown[:, 0] = np.where(over > 0, np.sign(ypr[:, 0]) * (knee + soft * (1 - np.exp(-over / soft))), ypr[:, 0])
    if tilt_deg > 0.0:
        tilt = np.random.default_rng([seed, 1]).uniform(-tilt_deg, tilt_deg, n) * tilt_share(ypr[:, 0])
        from .datasets import within_range

        tilted = geometry.compose_line_of_sight_roll(ypr, tilt)
        keep = within_range(tilted)
        ypr = np.where(keep[:, None], tilted, ypr)
        shown = np.where(keep[:, None], geometry.compose_line_of_sight_roll(shown, tilt), shown)
    # Cameras: distance, off-axis direction, focal length; the head turns with its line of sight.
    dist = rng.uniform(0.4, 3.0, n)
    off = np.tan(np.radians(rng.uniform(-25.0, 25.0, (n, 2))))
    centre = np.stack([off[:, 0] * dist, off[:, 1] * dist, dist], axis=1)
    rot = np.einsum("nij,njk->nik", geometry.rotations_onto(centre), geometry.rotations_from_ypr(shown))
    points = np.einsum("nij,nkj->nki", rot, model / 1000.0) + centre[:, None, :]
    focal = rng.uniform(400.0, 1400.0, n)
    xy = np.empty((n, NUM_KEYPOINTS, 2))
    for i in range(n):
        xy[i] = geometry.project_points(points[i], CameraIntrinsics(focal[i], focal[i], 320.0, 240.0))
    iod_px = focal * 0.063 * scale / dist
    noise = rng.standard_normal((n, NUM_KEYPOINTS, 2)) * np.array(profile.noise_iod)[None, :, None]
    heavy = rng.random((n, NUM_KEYPOINTS, 1)) < 0.05  # occasional gross misplacements
    xy += (noise * np.where(heavy, 3.0, 1.0)) * iod_px[:, None, None]
    conf = rng.uniform(*profile.confidence, (n, 1)) * np.ones((n, NUM_KEYPOINTS))
    if not profile.places_hidden:
        view = points / np.linalg.norm(points, axis=2, keepdims=True)
        facing = -np.einsum("nki,nki->nk", np.einsum("nij,kj->nki", rot, NORMALS), view)
        conf *= _sigmoid((facing + 0.3) / 0.08)  # an ear seen edge-on (frontal face) is still found
        conf[conf < 0.15] = 0.0
    if level_deg is not None:
        from ..estimator.keypoints.face_mesh import levelled

        xy, turn, _ = levelled(xy, level_deg)
        ypr = geometry.compose_line_of_sight_roll(ypr, -np.degrees(turn))
    return SyntheticSet(xy=xy, confidence=conf, ypr=ypr)


__all__ = ["PROFILES", "POSE_RANGE_DEG", "SourceProfile", "SyntheticSet", "generate", "tilt_share", "HEATMAP_SIZE"]
