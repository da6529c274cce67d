"""Video mode: follow faces from frame to frame with the face mesh, running the detector only when needed.

As MediaPipe's own face-mesh graph does for streams: after a frame where the detector ran, each face's next
crop is set by its previous mesh (:meth:`FaceMeshKeypoints.mesh_from_landmarks`: centred on the landmarks,
turned by their eye line, so a head may roll freely), and the detector runs again only when

- no face is being followed,
- a followed face was lost (the mesh's face-presence score fell below ``min_presence``, e.g. it left the
  frame or turned away) — the detector then runs on that same frame, so no frame goes without its faces,
- ``redetect_every`` frames have passed since the last detection (a new face may have entered). Such a
  periodic detection, while every followed face is still found, may search less than a single image's
  (a detector's ``detect_stream``: BlazeFace then looks at the upright image and one of its three quarter
  turns, a different one each time, so a rolled newcomer is found within three detections), and faces it finds
  where a followed face is are not put through the face-quality check again (they passed it when first found).
  A followed face that such a partial search does not see (the ``tiled`` detector's periodic steps search only
  some of its tiles) is kept: its followed box goes to the face mesh with the search's boxes.

While no face is in view (the last frame's detection found none), a detector with ``detect_idle`` searches
each frame in such steps too (the ``tiled`` detector: the whole frame and a subset of its tiles, cycling, so a
small newcomer is found within a cycle of frames, at a fraction of a full tiled search per frame); other
detectors search each such frame in full. The first frame of a stream, and a frame where a followed face was
lost, always get the full search.

Single images never use this: :meth:`HeadPoseEstimator.process` detects on every frame unless ``video=True``.
The box of a followed face keeps the detector's habits: it is placed and sized relative to the bounds of the
face's mesh as the detector's box was on the frame where the face was detected (so that box-overlap tracking
sees the same box from frame to frame), with the score of that detection. Frames are assumed consecutive;
:meth:`VideoState.reset` forgets everything (call it when the stream jumps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import ConfigError
from .types import FaceBox


@dataclass
class VideoState:
    """What video mode remembers between frames: each followed face's mesh (M, 2) image pixels and score."""

    redetect_every: int = 10
    min_presence: float = 0.5
    landmarks: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    #: Each followed face's detector box relative to its mesh bounds: (dx, dy, sx, sy), see :func:`box_of`.
    relations: list[tuple[float, float, float, float]] = field(default_factory=list)
    since_detection: int = 0
    #: Each followed face's detector keypoints (K, 2) image pixels (None: the box had none) and its mesh (M, 2) on
    #: the frame where it was detected: :meth:`followed_keypoints` moves the first with the mesh.
    detections: list[tuple[Optional[np.ndarray], np.ndarray]] = field(default_factory=list)
    #: Searches in steps so far (periodic and idle ones): a stream detector's search step, see ``detect_stream``.
    search_steps: int = 0
    #: How the last frame was processed: "detect" or "track" (for statistics and tests).
    last_mode: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.redetect_every, int) or self.redetect_every < 1:
            raise ConfigError(f"video redetect_every must be an integer >= 1, not {self.redetect_every!r}")
        if not 0.0 <= float(self.min_presence) <= 1.0:
            raise ConfigError(f"video min_presence must lie in [0, 1], not {self.min_presence!r}")

    def reset(self) -> None:
        """Forget the followed faces: the next frame runs the detector."""
        self.landmarks, self.scores, self.relations, self.since_detection, self.last_mode = [], [], [], 0, None
        self.search_steps, self.detections = 0, []

    def wants_detection(self) -> bool:
        """Whether the next frame must run the detector (nothing followed, or ``redetect_every`` frames passed)."""
        return not self.landmarks or self.since_detection >= self.redetect_every

    def periodic(self) -> bool:
        """Whether the next detection is a periodic one (faces followed, ``redetect_every`` frames passed)."""
        return bool(self.landmarks) and self.since_detection >= self.redetect_every

    def idle(self) -> bool:
        """Whether the next detection is an idle one: no face followed, and the last frame's detection found none."""
        return not self.landmarks and self.last_mode == "detect"

    def followed_boxes(self, width: int, height: int) -> list[FaceBox]:
        """The boxes (image pixels) of the faces followed on the last frame."""
        return [box_of(m, s, width, height, r) for m, s, r in zip(self.landmarks, self.scores, self.relations)]

    def detected(self, landmarks: list[np.ndarray], boxes: list[FaceBox]) -> None:
        """Record the faces (meshes and detector boxes) of a frame where the detector ran."""
        self.landmarks, self.scores = list(landmarks), [b.score for b in boxes]
        self.relations = [relation(m, b) for m, b in zip(landmarks, boxes)]
        self.detections = [(b.keypoints, m) for m, b in zip(landmarks, boxes)]
        self.since_detection, self.last_mode = 1, "detect"

    def followed_keypoints(self) -> list[Optional[np.ndarray]]:
        """Each followed face's detector keypoints (K, 2) image pixels, moved from the frame where it was detected
        by the similarity that best maps its mesh there onto its last one (:func:`moved`); None where the
        detector gave none."""
        return [None if kps is None else moved(kps, then, now)
                for (kps, then), now in zip(self.detections, self.landmarks)]

    def tracked(self, landmarks: list[np.ndarray]) -> None:
        """Record the meshes of a frame where every followed face was found again."""
        self.landmarks, self.since_detection, self.last_mode = list(landmarks), self.since_detection + 1, "track"


def _bounds(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return 0.5 * (lo + hi), np.maximum(hi - lo, 1e-6)


def relation(landmarks: np.ndarray, box: FaceBox) -> tuple[float, float, float, float]:
    """A detector box relative to a mesh's bounds: centre offset and size, in units of the bounds' size."""
    centre, size = _bounds(landmarks)
    return (float((box.center[0] - centre[0]) / size[0]), float((box.center[1] - centre[1]) / size[1]),
            float(box.width / size[0]), float(box.height / size[1]))


def moved(points: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``points`` (K, 2) moved by the 2D similarity (turn, scale and shift) that best maps the landmarks ``before``
    (M, 2) onto ``after`` (M, 2) in the least-squares sense; all in image pixels."""
    zb, za, zp = (np.asarray(a, dtype=np.float64) @ np.array([1.0, 1j]) for a in (before, after, points))
    mb, ma = zb.mean(), za.mean()
    spread = float(np.vdot(zb - mb, zb - mb).real)
    scale = np.vdot(zb - mb, za - ma) / spread if spread > 1e-12 else 1.0  # complex: turn and scale together
    out = scale * (zp - mb) + ma
    return np.stack([out.real, out.imag], axis=1)


def box_of(landmarks: np.ndarray, score: float, width: int, height: int,
           rel: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> FaceBox:
    """The face box of a followed face: its mesh's bounds moved and scaled by ``rel`` (:func:`relation`; the
    default is the bounds themselves), image pixels, clipped to the image."""
    centre, size = _bounds(landmarks)
    cx, cy = centre + np.array(rel[:2]) * size
    half = 0.5 * np.array(rel[2:]) * size
    return FaceBox(float(cx - half[0]), float(cy - half[1]), float(cx + half[0]), float(cy + half[1]),
                   float(score)).clipped(width, height)
