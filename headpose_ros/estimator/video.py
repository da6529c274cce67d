"""Video mode: follow faces from frame to frame with the face mesh, running the detector only when needed.

As MediaPipe's own face-mesh graph does for streams: after a frame where the detector ran, each face's next
crop is set by its previous mesh (:meth:`FaceMeshKeypoints.mesh_from_landmarks`: centred on the landmarks,
turned by their eye line, so a head may roll freely), and the detector runs again only when

- no face is being followed,
- a followed face was lost (the mesh's face-presence score fell below ``min_presence``, e.g. it left the
  frame or turned away) — the detector then runs on that same frame, so no frame goes without its faces,
- ``redetect_every`` frames have passed since the last detection (a new face may have entered).

Single images never use this: :meth:`HeadPoseEstimator.process` detects on every frame unless ``video=True``.
The box of a followed face is the bounding box of its mesh (tighter than the detector's), with the score of
the detection that started it. Frames are assumed consecutive; :meth:`VideoState.reset` forgets everything
(call it when the stream jumps).
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
    since_detection: int = 0
    #: How the last frame was processed: "detect" or "track" (for statistics and tests).
    last_mode: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.redetect_every, int) or self.redetect_every < 1:
            raise ConfigError(f"video redetect_every must be an integer >= 1, not {self.redetect_every!r}")
        if not 0.0 <= float(self.min_presence) <= 1.0:
            raise ConfigError(f"video min_presence must lie in [0, 1], not {self.min_presence!r}")

    def reset(self) -> None:
        """Forget the followed faces: the next frame runs the detector."""
        self.landmarks, self.scores, self.since_detection, self.last_mode = [], [], 0, None

    def wants_detection(self) -> bool:
        """Whether the next frame must run the detector (nothing followed, or ``redetect_every`` frames passed)."""
        return not self.landmarks or self.since_detection >= self.redetect_every

    def detected(self, landmarks: list[np.ndarray], scores: list[float]) -> None:
        """Record the faces of a frame where the detector ran."""
        self.landmarks, self.scores, self.since_detection, self.last_mode = list(landmarks), list(scores), 1, "detect"

    def tracked(self, landmarks: list[np.ndarray]) -> None:
        """Record the meshes of a frame where every followed face was found again."""
        self.landmarks, self.since_detection, self.last_mode = list(landmarks), self.since_detection + 1, "track"


def box_of(landmarks: np.ndarray, score: float, width: int, height: int) -> FaceBox:
    """The face box of a followed face: its mesh's bounds (image pixels, clipped to the image)."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return FaceBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), float(score)).clipped(width, height)
