"""REP-155 (ROS4HRI) face outputs without ROS: face ids, the ``/humans/faces/...`` messages, and which
per-face publishers to create and destroy as faces come and go.

Topics (REP-155 "Faces"), every message stamped with the input image's header:

- ``/humans/faces/tracked`` (``hri_msgs/IdsList``): the ids of the faces seen in the frame, every frame;
- per face, under ``/humans/faces/<id>/``: ``roi`` (``hri_msgs/NormalizedRegionOfInterest2D``: the detector's
  box over the image size, clipped to [0, 1], confidence = detector score), ``landmarks``
  (``hri_msgs/FacialLandmarks``: the 70 codes filled from the 468-point face mesh, see
  :data:`MESH_LANDMARKS`), ``cropped`` and ``aligned`` (``sensor_msgs/Image``, ``bgr8``, ``face_size``
  pixels, 128 x 128 by default as REP-155's ``/humans/faces/width`` and ``height``: the box scaled to fit,
  centred and 0-padded; ``aligned`` is the same turned about the box centre so that the eyes are level).

Ids: each tracked face gets a *token* of five random lowercase letters (as ROS4HRI's hri_face_detect does),
never reused among the last :data:`RECENT_IDS` tokens of the run, kept while the tracker follows the face
and dropped when it forgets it (:class:`FaceIds`). The face's id is ``tf_prefix`` + token (e.g. ``abcde`` or
``cam1_abcde``), the same in topic names, ``face_<id>``/``gaze_<id>`` TF frames and marker labels
(:func:`headpose_ros.ros.frames.face_id`). Ids start with a letter: valid ROS name tokens.

Publishers: :class:`FaceTopics` creates a face's four publishers when it first appears and destroys them
when the tracker forgets it (``tracking.max_missed`` frames unseen), through a three-call
:class:`PublisherBackend` (the node passes rclpy's calls, the bag tool a writer), so that the number of
publishers stays bounded however many people come and go. Image cropping here is plain numpy/OpenCV.
"""

from __future__ import annotations

import functools
import math
import random
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Protocol, Sequence

import numpy as np

from ..estimator import geometry
from ..estimator.keypoints.face_mesh import LANDMARKS as MESH_KEYPOINT_LANDMARKS
from ..estimator.types import LEFT_EAR, LEFT_EYE, NOSE, RIGHT_EAR, RIGHT_EYE, FaceBox, FaceResult
from . import frames
from .messages import HeaderData, MessageTypes, header_msg, image_msg

FACES_NS = "/humans/faces"
TRACKED_TOPIC = f"{FACES_NS}/tracked"
IDS_LIST = "hri_msgs/msg/IdsList"
ROI = "hri_msgs/msg/NormalizedRegionOfInterest2D"
FACIAL_LANDMARKS = "hri_msgs/msg/FacialLandmarks"
POINT = "hri_msgs/msg/NormalizedPointOfInterest2D"
IMAGE = "sensor_msgs/msg/Image"
#: Per-face subtopics and their message types, in publishing order.
FACE_TOPICS: dict[str, str] = {"roi": ROI, "landmarks": FACIAL_LANDMARKS, "cropped": IMAGE, "aligned": IMAGE}
#: Subtopics carrying images.
IMAGE_TOPICS = ("cropped", "aligned")
#: Subtopics built and published only while someone subscribes, when the backend can tell: the images, and the
#: 70 landmarks (building one FacialLandmarks message cost about 0.5 ms per face per frame, in Python).
ON_DEMAND_TOPICS = ("landmarks",) + IMAGE_TOPICS
#: (width, height) of ``cropped`` and ``aligned``: REP-155's ``/humans/faces/width`` and ``height`` defaults.
DEFAULT_FACE_SIZE = (128, 128)
#: Face tokens: this many letters from this alphabet (26^5 = 11.9 million tokens).
ID_LETTERS = string.ascii_lowercase
ID_LENGTH = 5
#: A token is not reissued while it is among the last this many issued (memory stays bounded).
RECENT_IDS = 10_000
#: Number of points in ``FacialLandmarks.landmarks``.
NUM_FACIAL_LANDMARKS = 70
#: Number of points of the face mesh the estimator's face_mesh source gives (MediaPipe's order).
MESH_POINTS = 468

#: FacialLandmarks code name -> the face-mesh points (MediaPipe's 468-point order) averaged into it. The codes
#: follow the dlib/OpenPose 68-point layout (subject's right = image left on a frontal face; the jaw from the
#: right "ear" 0 through the menton 8 to the left "ear" 16; contours numbered outward-in as hri_msgs names
#: them); points were chosen on MediaPipe's mesh topology (FACEMESH_* contours) at the matching positions, the
#: jaw points at equal arc length along the face oval from the tragus-level outline point (234/454, the
#: estimator's ear keypoints) to the chin (152). The mesh has no iris: each pupil is the eye centre the
#: estimator uses as its eye keypoint (corners and lids), with confidence scaled by PUPIL_CONFIDENCE.
MESH_LANDMARKS: dict[str, tuple[int, ...]] = {
    "RIGHT_EAR": (234,), "RIGHT_PROFILE_1": (93,), "RIGHT_PROFILE_2": (132,), "RIGHT_PROFILE_3": (58,),
    "RIGHT_PROFILE_4": (172,), "RIGHT_PROFILE_5": (150,), "RIGHT_PROFILE_6": (149,), "RIGHT_PROFILE_7": (148,),
    "MENTON": (152,),
    "LEFT_PROFILE_7": (377,), "LEFT_PROFILE_6": (378,), "LEFT_PROFILE_5": (379,), "LEFT_PROFILE_4": (397,),
    "LEFT_PROFILE_3": (288,), "LEFT_PROFILE_2": (361,), "LEFT_PROFILE_1": (323,), "LEFT_EAR": (454,),
    "RIGHT_EYEBROW_OUTSIDE": (70,), "RIGHT_EYEBROW_1": (63,), "RIGHT_EYEBROW_2": (105,), "RIGHT_EYEBROW_3": (66,),
    "RIGHT_EYEBROW_INSIDE": (107,),
    "LEFT_EYEBROW_INSIDE": (336,), "LEFT_EYEBROW_3": (296,), "LEFT_EYEBROW_2": (334,), "LEFT_EYEBROW_1": (293,),
    "LEFT_EYEBROW_OUTSIDE": (300,),
    "SELLION": (168,), "NOSE_1": (197,), "NOSE_2": (5,), "NOSE": (1,),
    "NOSTRIL_1": (98,), "NOSTRIL_2": (97,), "NOSTRIL_3": (2,), "NOSTRIL_4": (326,), "NOSTRIL_5": (327,),
    "RIGHT_EYE_OUTSIDE": (33,), "RIGHT_EYE_TOP_1": (160,), "RIGHT_EYE_TOP_2": (158,), "RIGHT_EYE_INSIDE": (133,),
    "RIGHT_EYE_BOTTOM_2": (153,), "RIGHT_EYE_BOTTOM_1": (144,),
    "LEFT_EYE_INSIDE": (362,), "LEFT_EYE_TOP_2": (385,), "LEFT_EYE_TOP_1": (387,), "LEFT_EYE_OUTSIDE": (263,),
    "LEFT_EYE_BOTTOM_1": (373,), "LEFT_EYE_BOTTOM_2": (380,),
    "MOUTH_OUTER_RIGHT": (61,), "MOUTH_OUTER_TOP_1": (40,), "MOUTH_OUTER_TOP_2": (37,), "MOUTH_OUTER_TOP_3": (0,),
    "MOUTH_OUTER_TOP_4": (267,), "MOUTH_OUTER_TOP_5": (270,), "MOUTH_OUTER_LEFT": (291,),
    "MOUTH_OUTER_BOTTOM_5": (321,), "MOUTH_OUTER_BOTTOM_4": (314,), "MOUTH_OUTER_BOTTOM_3": (17,),
    "MOUTH_OUTER_BOTTOM_2": (84,), "MOUTH_OUTER_BOTTOM_1": (91,),
    "MOUTH_INNER_RIGHT": (78,), "MOUTH_INNER_TOP_1": (81,), "MOUTH_INNER_TOP_2": (13,), "MOUTH_INNER_TOP_3": (311,),
    "MOUTH_INNER_LEFT": (308,), "MOUTH_INNER_BOTTOM_3": (402,), "MOUTH_INNER_BOTTOM_2": (14,),
    "MOUTH_INNER_BOTTOM_1": (178,),
    "RIGHT_PUPIL": tuple(MESH_KEYPOINT_LANDMARKS[RIGHT_EYE]), "LEFT_PUPIL": tuple(MESH_KEYPOINT_LANDMARKS[LEFT_EYE]),
}
#: Confidence factor of the pupils estimated as eye centres (the mesh has no iris points).
PUPIL_CONFIDENCE = 0.5
#: Codes filled from the five keypoints when the keypoint source has no mesh (keypoint rows averaged); the
#: others stay (0, 0) with confidence 0, FacialLandmarks' value for a point not found.
KEYPOINT_LANDMARKS: dict[str, tuple[int, ...]] = {
    "NOSE": (NOSE,), "RIGHT_PUPIL": (RIGHT_EYE,), "LEFT_PUPIL": (LEFT_EYE,), "RIGHT_EAR": (RIGHT_EAR,),
    "LEFT_EAR": (LEFT_EAR,), "SELLION": (RIGHT_EYE, LEFT_EYE),
}


# --- ids --------------------------------------------------------------------------------------------------

class FaceIds:
    """Track id -> face token (:data:`ID_LENGTH` random letters), stable while the track lives.

    ``seed`` makes the tokens reproducible (tests, offline runs); None draws them from the OS's entropy, so
    that two runs (or two nodes) do not hand out the same tokens.
    """

    def __init__(self, seed: Optional[int] = None, length: int = ID_LENGTH, remember: int = RECENT_IDS):
        self._rng = random.Random(seed)
        self.length = int(length)
        self._by_track: dict[int, str] = {}
        self._recent: deque[str] = deque()
        self._recent_set: set[str] = set()
        self._remember = int(remember)

    def _new_token(self) -> str:
        live = set(self._by_track.values())
        while True:
            token = "".join(self._rng.choices(ID_LETTERS, k=self.length))
            if token not in self._recent_set and token not in live:
                break
        self._recent.append(token)
        self._recent_set.add(token)
        while len(self._recent) > self._remember:
            self._recent_set.discard(self._recent.popleft())
        return token

    def update(self, track_ids: Sequence[int], alive: Iterable[int]) -> list[str]:
        """Tokens of ``track_ids`` (new tracks get new tokens); tracks not in ``alive`` (the tracker's live
        tracks) are forgotten first."""
        alive = set(alive) | set(track_ids)
        for gone in [t for t in self._by_track if t not in alive]:
            del self._by_track[gone]
        out = []
        for track_id in track_ids:
            token = self._by_track.get(track_id)
            if token is None:
                token = self._by_track[track_id] = self._new_token()
            out.append(token)
        return out

    def live(self) -> list[str]:
        """Tokens of every track still alive (seen in this frame or within the tracker's ``max_missed``)."""
        return list(self._by_track.values())


def face_ids(tokens: Sequence[str], prefix: str = "") -> list[str]:
    """The REP-155 ids (``prefix`` + token) of ``tokens``."""
    return [frames.face_id(t, prefix) for t in tokens]


def face_topic(face_id: str, subtopic: str) -> str:
    """``/humans/faces/<face_id>/<subtopic>``."""
    return f"{FACES_NS}/{face_id}/{subtopic}"


# --- geometry of the crops ------------------------------------------------------------------------------

def crop_transform(box: FaceBox, size: tuple[int, int] = DEFAULT_FACE_SIZE, angle_rad: float = 0.0) -> np.ndarray:
    """2x3 affine from image pixel indices to the ``size`` (width, height) output's: the box scaled to fit
    (aspect kept), its centre on the output's centre, turned by ``-angle_rad`` (an image direction at
    ``angle_rad`` becomes the output's x axis)."""
    width, height = size
    scale = min(width / max(box.width, 1e-6), height / max(box.height, 1e-6))
    c, s = math.cos(angle_rad) * scale, math.sin(angle_rad) * scale
    a = np.array([[c, s], [-s, c]])  # scale * R(-angle)
    cx, cy = box.center  # continuous coordinates (origin at the top-left pixel's corner)
    b = np.array([width / 2.0, height / 2.0]) - a @ np.array([cx, cy])
    b += a @ np.array([0.5, 0.5]) - 0.5  # pixel index i covers [i, i + 1): continuous = index + 0.5
    return np.hstack([a, b[:, None]])


def warp(image_bgr: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image_bgr`` through the 2x3 affine ``m`` (image -> output pixel indices) into a ``size`` (width,
    height) image, 0 outside the input. Shrinking by more than 2x first area-averages the region used, so
    that large faces do not alias."""
    import cv2

    width, height = size
    scale = math.sqrt(abs(float(np.linalg.det(m[:, :2]))))
    src = image_bgr
    if scale < 0.5:
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64) @ inv[:, :2].T
        corners += inv[:, 2]
        h, w = image_bgr.shape[:2]
        x0, y0 = (max(0, int(math.floor(v)) - 1) for v in corners.min(axis=0))
        x1, y1 = min(w, int(math.ceil(corners[:, 0].max())) + 2), min(h, int(math.ceil(corners[:, 1].max())) + 2)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((height, width, 3), np.uint8)
        roi = image_bgr[y0:y1, x0:x1]
        new_w, new_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        src = cv2.resize(roi, (new_w, new_h), interpolation=cv2.INTER_AREA)
        fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
        a = m[:, :2] @ np.diag([1.0 / fx, 1.0 / fy])
        b = m[:, :2] @ np.array([0.5 / fx - 0.5 + x0, 0.5 / fy - 0.5 + y0]) + m[:, 2]
        m = np.hstack([a, b[:, None]])
    return cv2.warpAffine(src, m, (int(width), int(height)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def eye_angle(face: FaceResult, threshold: float = 0.3) -> Optional[float]:
    """Image angle (radians, x right, y down) of the line from the subject's right eye to the left eye, or
    None when either eye's confidence is below ``threshold``."""
    kp = face.keypoints
    if kp.confidence[RIGHT_EYE] < threshold or kp.confidence[LEFT_EYE] < threshold:
        return None
    dx, dy = kp.xy[LEFT_EYE] - kp.xy[RIGHT_EYE]
    if not (math.isfinite(dx) and math.isfinite(dy)) or dx == dy == 0:
        return None
    return float(geometry.eye_angle(kp.xy[RIGHT_EYE], kp.xy[LEFT_EYE]))


def cropped_face(image_bgr: np.ndarray, face: FaceResult, size: tuple[int, int] = DEFAULT_FACE_SIZE) -> np.ndarray:
    """The face's box scaled to fit ``size`` (width, height), centred and 0-padded (REP-155 ``cropped``)."""
    return warp(image_bgr, crop_transform(face.box, size), size)


def aligned_face(image_bgr: np.ndarray, face: FaceResult, size: tuple[int, int] = DEFAULT_FACE_SIZE,
                 threshold: float = 0.3) -> Optional[np.ndarray]:
    """:func:`cropped_face` turned about the box centre so that the eyes are level, the subject's right eye on
    the left (REP-155 ``aligned``); None when the eyes are not known."""
    angle = eye_angle(face, threshold)
    if angle is None:
        return None
    return warp(image_bgr, crop_transform(face.box, size, angle), size)


# --- messages ---------------------------------------------------------------------------------------------

def ids_list_msg(types: MessageTypes, header: HeaderData, ids: Sequence[str]) -> Any:
    """``/humans/faces/tracked``: the faces seen in the frame."""
    return types.make(IDS_LIST, header=header_msg(types, header), ids=[str(i) for i in ids])


def _unit(v: float) -> float:
    return float(min(1.0, max(0.0, v))) if math.isfinite(v) else 0.0


def roi_msg(types: MessageTypes, header: HeaderData, face: FaceResult, image_size: tuple[int, int]) -> Any:
    """``roi``: the face box over the image ``(width, height)``, clipped to [0, 1]; c = the detector's score."""
    width, height = image_size
    box = face.box
    return types.make(ROI, header=header_msg(types, header), xmin=_unit(box.x0 / width), ymin=_unit(box.y0 / height),
                      xmax=_unit(box.x1 / width), ymax=_unit(box.y1 / height), c=_unit(float(box.score)))


def facial_landmark_codes(cls: Any) -> dict[str, int]:
    """Code name -> index in ``FacialLandmarks.landmarks``, read from the message class's constants."""
    return {name: int(getattr(cls, name)) for name in MESH_LANDMARKS}


@functools.lru_cache(maxsize=8)
def _mesh_table(codes: tuple[tuple[str, int], ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per code: the mesh points averaged (padded), their weights and the confidence factor."""
    width = max(len(points) for points in MESH_LANDMARKS.values())
    index = np.zeros((NUM_FACIAL_LANDMARKS, width), dtype=np.intp)
    weight = np.zeros((NUM_FACIAL_LANDMARKS, width))
    factor = np.zeros(NUM_FACIAL_LANDMARKS)
    for name, code in codes:
        points = MESH_LANDMARKS[name]
        index[code, :] = points[0]
        index[code, :len(points)] = points
        weight[code, :len(points)] = 1.0 / len(points)
        factor[code] = PUPIL_CONFIDENCE if name.endswith("_PUPIL") else 1.0
    return index, weight, factor


def landmark_points(face: FaceResult, codes: dict[str, int],
                    image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(70, 2) normalised points and (70,) confidences per FacialLandmarks code (``codes``: name -> index,
    :func:`facial_landmark_codes`). From the mesh when the face has one, else the few codes the five
    keypoints give; a point not found or outside the image is (0, 0) with confidence 0."""
    width, height = image_size
    kp = face.keypoints
    mesh = face.landmarks
    if mesh is not None and len(mesh) >= MESH_POINTS:
        index, weight, factor = _mesh_table(tuple(codes.items()))
        xy = (np.asarray(mesh, dtype=np.float64)[index] * weight[:, :, None]).sum(axis=1)
        conf = factor * float(np.mean(kp.confidence))
    else:
        xy = np.zeros((NUM_FACIAL_LANDMARKS, 2))
        conf = np.zeros(NUM_FACIAL_LANDMARKS)
        for name, rows in KEYPOINT_LANDMARKS.items():
            xy[codes[name]] = kp.xy[list(rows)].mean(axis=0)
            conf[codes[name]] = float(np.min(kp.confidence[list(rows)]))
    with np.errstate(invalid="ignore"):
        xy = xy / np.array([width, height], dtype=np.float64)
        inside = np.all(np.isfinite(xy) & (xy >= 0.0) & (xy <= 1.0), axis=1)
    conf = np.where(inside, np.clip(np.nan_to_num(conf, nan=0.0), 0.0, 1.0), 0.0)
    xy = np.where(conf[:, None] > 0, xy, 0.0)  # not found or outside the image: (0, 0), confidence 0
    return xy, conf


def landmarks_msg(types: MessageTypes, header: HeaderData, face: FaceResult, image_size: tuple[int, int]) -> Any:
    """``landmarks``: ``hri_msgs/FacialLandmarks`` in normalised image coordinates (see :data:`MESH_LANDMARKS`)."""
    xy, conf = landmark_points(face, facial_landmark_codes(types.get(FACIAL_LANDMARKS)), image_size)
    points = [types.make(POINT, x=x, y=y, c=c) for (x, y), c in zip(xy.tolist(), conf.tolist())]
    width, height = image_size
    return types.make(FACIAL_LANDMARKS, header=header_msg(types, header), landmarks=points, height=int(height),
                      width=int(width))


def face_messages(types: MessageTypes, header: HeaderData, image_bgr: np.ndarray, face: FaceResult,
                  size: tuple[int, int] = DEFAULT_FACE_SIZE, threshold: float = 0.3,
                  wanted: Iterable[str] = tuple(FACE_TOPICS)) -> dict[str, Any]:
    """The per-face messages (subtopic -> message) among ``wanted``; ``aligned`` is left out when the eyes
    are not known (below ``threshold``), both images when the box is not finite or empty."""
    wanted = set(wanted)
    box = face.box
    if not (np.all(np.isfinite([box.x0, box.y0, box.x1, box.y1])) and box.width >= 1 and box.height >= 1):
        wanted -= set(IMAGE_TOPICS)
    image_size = (int(image_bgr.shape[1]), int(image_bgr.shape[0]))
    out: dict[str, Any] = {}
    if "roi" in wanted:
        out["roi"] = roi_msg(types, header, face, image_size)
    if "landmarks" in wanted:
        out["landmarks"] = landmarks_msg(types, header, face, image_size)
    if "cropped" in wanted:
        out["cropped"] = image_msg(types, header, cropped_face(image_bgr, face, size))
    if "aligned" in wanted:
        aligned = aligned_face(image_bgr, face, size, threshold)
        if aligned is not None:
            out["aligned"] = image_msg(types, header, aligned)
    return out


# --- publishers -------------------------------------------------------------------------------------------

class PublisherBackend(Protocol):
    """What :class:`FaceTopics` needs from ROS (or a bag writer, or a test fake).

    An optional fourth method, ``subscribed(handle) -> bool``, tells whether anyone listens; when it is
    there, the images are built only for topics with subscribers.
    """

    def create(self, msg_type: str, topic: str) -> Any:
        """A publisher of ``msg_type`` (``pkg/msg/Name``) on ``topic``."""
        ...

    def destroy(self, handle: Any) -> None:
        """Release a publisher made by :meth:`create`."""
        ...

    def publish(self, handle: Any, msg: Any) -> None:
        """Send ``msg`` on the publisher ``handle``."""
        ...


class NodePublishers:
    """The :class:`PublisherBackend` of an rclpy node (duck-typed, so this module imports no ROS): publishers
    with a history of ``depth`` (reliable, volatile: rclpy's default for an integer QoS), message classes from
    ``types`` (the node's provider); ``subscribed`` asks DDS whether anyone listens. ``publisher_kwargs`` go to
    ``create_publisher``.

    When publishers are created and destroyed outside the executor's thread (the node's worker), pass
    ``event_callbacks=PublisherEventCallbacks(use_default_callbacks=False)``: rclpy's default QoS-event
    handlers are waitables of the node, and rclpy (Jazzy 7.1) adds a waitable destroyed while the executor
    builds its wait set anyway, which raises InvalidHandle in the executor and ends its spin (seen in
    test_hri_ros.py's churn test). Without event handlers a publisher never enters a wait set.
    """

    def __init__(self, node: Any, types: MessageTypes, depth: int = 1, **publisher_kwargs: Any):
        self.node, self.types, self.depth = node, types, int(depth)
        self.publisher_kwargs = publisher_kwargs

    def create(self, msg_type: str, topic: str) -> Any:
        return self.node.create_publisher(self.types.get(msg_type), topic, self.depth, **self.publisher_kwargs)

    def destroy(self, handle: Any) -> None:
        self.node.destroy_publisher(handle)

    def publish(self, handle: Any, msg: Any) -> None:
        handle.publish(msg)

    def subscribed(self, handle: Any) -> bool:
        return handle.get_subscription_count() > 0


@dataclass
class HriStep:
    """What one :meth:`FaceTopics.update` did: ``tracked`` the ids published on /humans/faces/tracked,
    ``created``/``destroyed`` the ids whose topic sets were made or released, ``published`` the topics
    written (in order)."""

    tracked: list[str]
    created: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)


class FaceTopics:
    """The REP-155 face topics of one node: call :meth:`update` with each processed frame (a
    :class:`~headpose_ros.ros.core.CoreResult`) and the ``tf_prefix``; :meth:`close` at shutdown.

    A face's publishers are created the first frame it is seen and destroyed once its track is no longer
    alive (so also when ``tf_prefix`` changes and its id with it). Not thread-safe: one caller.
    """

    def __init__(self, types: MessageTypes, backend: Any, face_size: tuple[int, int] = DEFAULT_FACE_SIZE,
                 keypoint_threshold: float = 0.3):
        self.types = types
        self.backend = backend
        self.face_size = (int(face_size[0]), int(face_size[1]))
        self.keypoint_threshold = float(keypoint_threshold)
        self._subscribed = getattr(backend, "subscribed", None)
        self._tracked = backend.create(IDS_LIST, TRACKED_TOPIC)
        self._faces: dict[str, dict[str, Any]] = {}

    @property
    def face_count(self) -> int:
        """Faces with live publishers."""
        return len(self._faces)

    @property
    def publisher_count(self) -> int:
        """Publishers held: four per live face, plus /humans/faces/tracked (0 after :meth:`close`)."""
        return sum(len(p) for p in self._faces.values()) + (self._tracked is not None)

    def _destroy(self, face_id: str) -> None:
        for handle in self._faces.pop(face_id).values():
            self.backend.destroy(handle)

    def update(self, result: Any, prefix: str = "") -> HriStep:
        """Publish one frame's REP-155 face topics; returns what was done."""
        if self._tracked is None:
            raise RuntimeError("FaceTopics is closed")
        present = face_ids(result.face_ids, prefix)
        live = set(face_ids(getattr(result, "live_face_ids", result.face_ids), prefix)) | set(present)
        step = HriStep(tracked=present)
        for face_id in sorted(set(self._faces) - live):
            self._destroy(face_id)
            step.destroyed.append(face_id)
        header = result.header
        for face, face_id in zip(result.faces, present):
            pubs = self._faces.get(face_id)
            if pubs is None:
                pubs = self._faces[face_id] = {sub: self.backend.create(kind, face_topic(face_id, sub))
                                               for sub, kind in FACE_TOPICS.items()}
                step.created.append(face_id)
            wanted = [sub for sub in FACE_TOPICS if sub not in ON_DEMAND_TOPICS or self._subscribed is None
                      or self._subscribed(pubs[sub])]
            msgs = face_messages(self.types, header, result.image, face, self.face_size, self.keypoint_threshold,
                                 wanted)
            for sub, msg in msgs.items():
                self.backend.publish(pubs[sub], msg)
                step.published.append(face_topic(face_id, sub))
        self.backend.publish(self._tracked, ids_list_msg(self.types, header, present))
        step.published.append(TRACKED_TOPIC)
        return step

    def close(self) -> list[str]:
        """Destroy every publisher (faces and /humans/faces/tracked); returns the face ids released."""
        released = sorted(self._faces)
        for face_id in released:
            self._destroy(face_id)
        if self._tracked is not None:
            self.backend.destroy(self._tracked)
            self._tracked = None
        return released


# --- cost -------------------------------------------------------------------------------------------------

def time_face_messages(types: MessageTypes, result: Any, size: tuple[int, int] = DEFAULT_FACE_SIZE,
                       threshold: float = 0.3) -> dict[str, float]:
    """Milliseconds spent building each per-face message kind (roi, landmarks, cropped, aligned) for every
    face of one processed frame, summed over its faces, plus ``faces`` (their number): for benchmarks."""
    out = dict.fromkeys(FACE_TOPICS, 0.0)
    for face in result.faces:
        for sub in FACE_TOPICS:
            t0 = time.perf_counter()
            face_messages(types, result.header, result.image, face, size, threshold, (sub,))
            out[sub] += (time.perf_counter() - t0) * 1e3
    out["faces"] = float(len(result.faces))
    return out
