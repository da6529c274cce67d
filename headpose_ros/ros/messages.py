"""Building every message the node and the bag tool publish: one function per message, no ROS import.

Each function takes a *message types provider* (:class:`MessageTypes`): :class:`RosbagsTypes` here (the
``rosbags`` typestore's dataclasses, used offline and by the tests) or the node's rclpy provider (the ROS
Python message modules). Every message is built with all its fields as keyword arguments and plain Python
``float``/``int``/``str`` values, which both accept; constants (``Marker.ARROW``, ``DiagnosticStatus.WARN``)
are read from the provider's classes, so they carry each implementation's own types.

Conventions:

- Every per-frame message carries the input image's header: its stamp and its optical ``frame_id``.
- The orientation of ``/head_pose``, ``/head_poses`` and the markers is the REP-155 *face frame* in the
  optical frame (x out of the face, y to the subject's left, z to the top of the head), the same rotation
  as the ``face_<id>`` TF frame: RViz's pose arrow points where the head faces. It comes from
  :func:`headpose_ros.estimator.geometry.quaternion_from_ypr` (``frame="face"``), nowhere else.
- Positions are metres in the optical frame, or the unit-depth ray (z = 1) without camera calibration.
- Faces are named by their REP-155 id (``tf_prefix`` + the face's token, see :mod:`headpose_ros.ros.frames`)
  in TF frames, marker labels and the ``/humans/faces/<id>/`` topics (:mod:`headpose_ros.ros.hri`); marker
  ids, which must be integers, are the tracker's integer ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Protocol, Sequence

import numpy as np

from ..estimator import geometry
from ..estimator.types import FaceResult, HeadPose
from . import frames
from .image_codec import bgr8_fields

#: Marker namespaces: one arrow and one text label per head, marker id = track id.
ARROW_NS = "head_pose/arrow"
LABEL_NS = "head_pose/label"
#: Arrow length, shaft and head diameters (metres, or ray units without calibration).
ARROW_SCALE = (0.15, 0.015, 0.03)
#: Label text height and its offset above the head (optical -y is up), same units.
LABEL_HEIGHT = 0.04
LABEL_OFFSET = 0.12
PRIMARY_RGBA = (0.1, 0.9, 0.2, 1.0)
OTHER_RGBA = (0.2, 0.6, 1.0, 1.0)
LABEL_RGBA = (1.0, 1.0, 1.0, 1.0)
DIAGNOSTIC_LEVELS = ("OK", "WARN", "ERROR", "STALE")


class MessageTypes(Protocol):
    """Where message classes come from: ``make('geometry_msgs/msg/Pose', position=..., orientation=...)``."""

    def get(self, typename: str) -> type:
        """The class of ``typename`` (``pkg/msg/Name``)."""
        ...

    def make(self, typename: str, **fields: Any) -> Any:
        """An instance of ``typename`` with ``fields``."""
        ...

    def uint8_array(self, data: bytes) -> Any:
        """The value a ``uint8[]`` field takes for ``data``."""
        ...


class RosbagsTypes:
    """Message classes of a ``rosbags`` typestore (default: ROS 2 Humble's definitions), with the ``hri_msgs``
    types of :mod:`headpose_ros.ros.hri_types` added.

    ``make`` passes the fields straight to the dataclass, which needs every field: a forgotten field fails
    here, in the tests, before it could on a robot.
    """

    def __init__(self, store: Any = None):
        from rosbags.typesys import Stores, get_typestore

        from . import hri_types

        self.typestore = hri_types.register(get_typestore(store if store is not None else Stores.ROS2_HUMBLE))

    def get(self, typename: str) -> type:
        return self.typestore.types[typename]

    def make(self, typename: str, **fields: Any) -> Any:
        return self.get(typename)(**fields)

    def uint8_array(self, data: bytes) -> Any:
        return np.frombuffer(bytes(data), dtype=np.uint8)

    def serialize(self, msg: Any) -> bytes:
        """CDR bytes of a message built by this provider."""
        return bytes(self.typestore.serialize_cdr(msg, msg.__msgtype__))

    def deserialize(self, data: bytes, typename: str) -> Any:
        return self.typestore.deserialize_cdr(data, typename)


@dataclass(frozen=True)
class HeaderData:
    """A ``std_msgs/Header`` without ROS: stamp (seconds and nanoseconds) and frame id."""

    sec: int
    nanosec: int
    frame_id: str

    @classmethod
    def from_ns(cls, stamp_ns: int, frame_id: str) -> "HeaderData":
        return cls(int(stamp_ns) // 1_000_000_000, int(stamp_ns) % 1_000_000_000, frame_id)

    @classmethod
    def from_msg(cls, header: Any) -> "HeaderData":
        """From any message's ``header`` (rclpy or rosbags)."""
        return cls(int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id))

    @property
    def ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec

    @property
    def seconds(self) -> float:
        return self.sec + self.nanosec * 1e-9


# --- basic types ------------------------------------------------------------------------------------------

def time_msg(types: MessageTypes, sec: int, nanosec: int) -> Any:
    return types.make("builtin_interfaces/msg/Time", sec=int(sec), nanosec=int(nanosec))


def duration_msg(types: MessageTypes, sec: int = 0, nanosec: int = 0) -> Any:
    return types.make("builtin_interfaces/msg/Duration", sec=int(sec), nanosec=int(nanosec))


def header_msg(types: MessageTypes, header: HeaderData) -> Any:
    return types.make("std_msgs/msg/Header", stamp=time_msg(types, header.sec, header.nanosec),
                      frame_id=str(header.frame_id))


def point_msg(types: MessageTypes, xyz: Sequence[float]) -> Any:
    x, y, z = (float(v) for v in xyz)
    return types.make("geometry_msgs/msg/Point", x=x, y=y, z=z)


def vector3_msg(types: MessageTypes, xyz: Sequence[float]) -> Any:
    x, y, z = (float(v) for v in xyz)
    return types.make("geometry_msgs/msg/Vector3", x=x, y=y, z=z)


def quaternion_msg(types: MessageTypes, xyzw: Sequence[float]) -> Any:
    x, y, z, w = (float(v) for v in xyzw)
    return types.make("geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def color_msg(types: MessageTypes, rgba: Sequence[float]) -> Any:
    r, g, b, a = (float(v) for v in rgba)
    return types.make("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=a)


def head_orientation(pose: HeadPose) -> np.ndarray:
    """The quaternion (x, y, z, w) every head message carries: the REP-155 face frame in the optical frame."""
    return geometry.quaternion_from_ypr(pose, frame="face")


def pose_msg(types: MessageTypes, face: FaceResult) -> Any:
    """``geometry_msgs/Pose`` of a head: position (optical frame) and face-frame orientation."""
    return types.make("geometry_msgs/msg/Pose", position=point_msg(types, face.position),
                      orientation=quaternion_msg(types, head_orientation(face.pose)))


# --- per-frame outputs ------------------------------------------------------------------------------------

def pose_stamped(types: MessageTypes, header: HeaderData, face: FaceResult) -> Any:
    """``/head_pose``: one head's pose, stamped with the image header."""
    return types.make("geometry_msgs/msg/PoseStamped", header=header_msg(types, header), pose=pose_msg(types, face))


def pose_array(types: MessageTypes, header: HeaderData, faces: Sequence[FaceResult]) -> Any:
    """``/head_poses``: every head, in the order given (the node passes them largest face first)."""
    return types.make("geometry_msgs/msg/PoseArray", header=header_msg(types, header),
                      poses=[pose_msg(types, f) for f in faces])


def transform_msg(types: MessageTypes, header: HeaderData, tf: frames.FrameTransform) -> Any:
    """``geometry_msgs/TransformStamped`` of ``tf`` at the header's stamp (its frame id is ``tf.parent``)."""
    return types.make(
        "geometry_msgs/msg/TransformStamped",
        header=header_msg(types, HeaderData(header.sec, header.nanosec, tf.parent)),
        child_frame_id=tf.child,
        transform=types.make("geometry_msgs/msg/Transform", translation=vector3_msg(types, tf.translation),
                             rotation=quaternion_msg(types, tf.rotation)),
    )


def head_transforms(types: MessageTypes, header: HeaderData, faces: Sequence[FaceResult], face_ids: Sequence[str],
                    prefix: str = "") -> list[Any]:
    """``face_<id>`` (child of the image's frame) and ``gaze_<id>`` (child of ``face_<id>``) for each head;
    ``face_ids`` are the faces' tokens (:attr:`~headpose_ros.ros.core.CoreResult.face_ids`)."""
    out: list[Any] = []
    for face, token in zip(faces, face_ids):
        for tf in frames.head_transforms(header.frame_id, token, face.pose, face.position, prefix):
            out.append(transform_msg(types, header, tf))
    return out


def tf_message(types: MessageTypes, transforms: Sequence[Any]) -> Any:
    """``tf2_msgs/TFMessage`` for ``/tf`` (the bag tool; the node uses a TransformBroadcaster)."""
    return types.make("tf2_msgs/msg/TFMessage", transforms=list(transforms))


def _marker(types: MessageTypes, header: HeaderData, ns: str, marker_id: int, *, kind: Optional[str] = None,
            action: str = "ADD", pose: Any = None, scale: Sequence[float] = (0.0, 0.0, 0.0),
            rgba: Sequence[float] = (0.0, 0.0, 0.0, 0.0), text: str = "") -> Any:
    cls = types.get("visualization_msgs/msg/Marker")
    if pose is None:
        pose = types.make("geometry_msgs/msg/Pose", position=point_msg(types, (0, 0, 0)),
                          orientation=quaternion_msg(types, (0, 0, 0, 1)))
    return types.make(
        "visualization_msgs/msg/Marker",
        header=header_msg(types, header), ns=ns, id=int(marker_id),
        type=getattr(cls, kind) if kind else cls.ARROW, action=getattr(cls, action), pose=pose,
        scale=vector3_msg(types, scale), color=color_msg(types, rgba), lifetime=duration_msg(types),
        frame_locked=False, points=[], colors=[], texture_resource="",
        texture=types.make("sensor_msgs/msg/CompressedImage", header=header_msg(types, HeaderData(0, 0, "")),
                           format="", data=types.uint8_array(b"")),
        uv_coordinates=[], text=text, mesh_resource="",
        mesh_file=types.make("visualization_msgs/msg/MeshFile", filename="", data=types.uint8_array(b"")),
        mesh_use_embedded_materials=False,
    )


def label_text(face_name: str, pose: HeadPose) -> str:
    """The text shown above a head: its id and angles in degrees (dataset convention)."""
    return f"{face_name}  yaw {pose.yaw:+.0f}  pitch {pose.pitch:+.0f}  roll {pose.roll:+.0f}"


def marker_array(types: MessageTypes, header: HeaderData, faces: Sequence[FaceResult], ids: Sequence[int],
                 face_ids: Sequence[str], gone_ids: Sequence[int] = (), primary_id: Optional[int] = None,
                 prefix: str = "") -> Any:
    """``~/markers``: an arrow (along the face frame's x) and a label (the face's REP-155 frame name) per head;
    marker ids are the integer track ``ids``, labels name the faces by ``face_ids`` (tokens). DELETE for heads
    in ``gone_ids`` (shown before, absent now). The primary head's arrow is green, the others blue."""
    markers: list[Any] = []
    for face, track_id, token in zip(faces, ids, face_ids):
        pose = pose_msg(types, face)
        rgba = PRIMARY_RGBA if track_id == primary_id else OTHER_RGBA
        markers.append(_marker(types, header, ARROW_NS, track_id, kind="ARROW", pose=pose, scale=ARROW_SCALE,
                               rgba=rgba))
        above = np.asarray(face.position, dtype=np.float64) + np.array([0.0, -LABEL_OFFSET, 0.0])
        label_pose = types.make("geometry_msgs/msg/Pose", position=point_msg(types, above),
                                orientation=quaternion_msg(types, (0, 0, 0, 1)))
        markers.append(_marker(types, header, LABEL_NS, track_id, kind="TEXT_VIEW_FACING", pose=label_pose,
                               scale=(0.0, 0.0, LABEL_HEIGHT), rgba=LABEL_RGBA,
                               text=label_text(frames.face_frame(token, prefix), face.pose)))
    for track_id in sorted(set(gone_ids) - set(ids)):
        for ns in (ARROW_NS, LABEL_NS):
            markers.append(_marker(types, header, ns, track_id, action="DELETE"))
    return types.make("visualization_msgs/msg/MarkerArray", markers=markers)


def iter_frame_outputs(types: MessageTypes, result: Any, publish_tf: bool, markers: bool,
                       prefix: str = "") -> Iterator[tuple[str, Any]]:
    """What one processed frame (a :class:`~headpose_ros.ros.core.CoreResult`) yields, as the node publishes
    it, the debug image aside, each message built only when the one before has been taken (the node publishes
    ``/head_pose`` before the others are built): ``head_pose`` (only with a primary face), ``head_poses``
    (always), ``transforms`` (a list of TransformStamped, with ``publish_tf`` and faces) and ``markers`` (with
    ``markers`` and heads present or gone)."""
    header = result.header
    if result.primary_face is not None:
        yield "head_pose", pose_stamped(types, header, result.primary_face)
    yield "head_poses", pose_array(types, header, result.faces)
    if publish_tf and result.faces:
        yield "transforms", head_transforms(types, header, result.faces, result.face_ids, prefix)
    if markers and (result.faces or result.gone_ids):
        yield "markers", marker_array(types, header, result.faces, result.ids, result.face_ids, result.gone_ids,
                                      result.primary_id, prefix)


def frame_outputs(types: MessageTypes, result: Any, publish_tf: bool, markers: bool,
                  prefix: str = "") -> dict[str, Any]:
    """:func:`iter_frame_outputs` as a dict, in publishing order (the bag tool and the soak)."""
    return dict(iter_frame_outputs(types, result, publish_tf, markers, prefix))


def delete_all_markers(types: MessageTypes, header: HeaderData) -> Any:
    """A MarkerArray clearing every marker of this node (published at shutdown)."""
    return types.make("visualization_msgs/msg/MarkerArray",
                      markers=[_marker(types, header, ns, 0, action="DELETEALL") for ns in (ARROW_NS, LABEL_NS)])


def image_msg(types: MessageTypes, header: HeaderData, bgr: np.ndarray) -> Any:
    """``sensor_msgs/Image`` (``bgr8``) of an (H, W, 3) uint8 BGR array: ``~/debug_image``."""
    height, width, step, data = bgr8_fields(bgr)
    return types.make("sensor_msgs/msg/Image", header=header_msg(types, header), height=height, width=width,
                      encoding="bgr8", is_bigendian=0, step=step, data=types.uint8_array(data))


@dataclass
class DiagnosticData:
    """One ``diagnostic_msgs/DiagnosticStatus`` without ROS; ``level`` is OK, WARN, ERROR or STALE."""

    level: str
    name: str
    message: str
    hardware_id: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)


def diagnostic_array(types: MessageTypes, header: HeaderData, statuses: Sequence[DiagnosticData]) -> Any:
    """``/diagnostics``: the statuses, values as strings (floats with 3 decimals)."""
    cls = types.get("diagnostic_msgs/msg/DiagnosticStatus")
    out = []
    for status in statuses:
        if status.level not in DIAGNOSTIC_LEVELS:
            raise ValueError(f"diagnostic level must be one of {DIAGNOSTIC_LEVELS}, not {status.level!r}")
        values = [types.make("diagnostic_msgs/msg/KeyValue", key=str(k), value=_value_text(v))
                  for k, v in status.values.items()]
        out.append(types.make("diagnostic_msgs/msg/DiagnosticStatus", level=getattr(cls, status.level),
                              name=status.name, message=status.message, hardware_id=status.hardware_id,
                              values=values))
    return types.make("diagnostic_msgs/msg/DiagnosticArray", header=header_msg(types, header), status=out)


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
