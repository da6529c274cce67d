"""``headpose-ros bag INPUT_BAG OUTPUT_BAG``: run the estimator over a rosbag2 offline, without ROS.

Reads ``sensor_msgs/Image`` or ``CompressedImage`` messages (sqlite3 or mcap storage) with ``rosbags``,
processes every frame with the node's core (same decoding, estimator, tracking, smoothing and messages as
``headpose_node``; no frame is skipped offline) and writes a new bag holding the input's topics plus
``/head_pose``, ``/head_poses``, ``/tf``, ``/<node>/markers``, ``/<node>/debug_image`` and the REP-155 face
topics (``/humans/faces/tracked`` and ``/humans/faces/<id>/roi``, ``landmarks``, ``cropped``, ``aligned``,
with ``hri.enabled``; the hri_msgs definitions shipped with the package are written into the bag). Every
output message has the input image's header (stamp and frame id) and is logged at the image's bag time, so
``ros2 bag play`` and RViz or Foxglove show the result in step with the camera.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..estimator.errors import ConfigError, HeadPoseError, ImageError
from ..estimator.types import CameraIntrinsics

LOG = logging.getLogger(__name__)
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"


class BagError(HeadPoseError):
    """The input bag cannot be processed as asked (no image topic, unreadable, output exists)."""


@dataclass
class BagOptions:
    """What to read and write; ``values`` are node parameters (defaults when empty)."""

    image_topic: Optional[str] = None
    camera_info_topic: Optional[str] = None
    values: dict[str, Any] = field(default_factory=dict)
    node_name: str = "headpose_node"
    storage: Optional[str] = None
    debug_image: bool = True
    copy_input: bool = True
    max_frames: Optional[int] = None
    progress: bool = True
    #: Seed of the faces' REP-155 tokens (None: random, as the node's; set it for reproducible output).
    id_seed: Optional[int] = None


@dataclass
class BagSummary:
    """Counts of one run: images read, processed, refused as bad, failed otherwise (corrupt record, backend
    error); heads found; REP-155 face ids given; messages written per topic (the per-face REP-155 topics
    counted together as ``/humans/faces/*/<name>``)."""

    image_topic: str
    images: int = 0
    processed: int = 0
    bad_images: int = 0
    failed: int = 0
    bad_camera_info: int = 0
    faces: int = 0
    frames_with_faces: int = 0
    face_ids: int = 0
    written: dict[str, int] = field(default_factory=dict)


def output_topics(node_name: str, debug_image: bool = True, hri_enabled: bool = False) -> dict[str, str]:
    """Output topic -> message type (the per-face REP-155 topics, named after each face, aside)."""
    topics = {
        "/head_pose": "geometry_msgs/msg/PoseStamped",
        "/head_poses": "geometry_msgs/msg/PoseArray",
        "/tf": TF_TYPE,
        f"/{node_name}/markers": "visualization_msgs/msg/MarkerArray",
    }
    if debug_image:
        topics[f"/{node_name}/debug_image"] = "sensor_msgs/msg/Image"
    if hri_enabled:
        from ..ros import hri

        topics[hri.TRACKED_TOPIC] = hri.IDS_LIST
    return topics


class _BagPublishers:
    """The :class:`~headpose_ros.ros.hri.PublisherBackend` of the bag: a topic's connection is added the first
    time it is created and kept (a bag keeps every topic it ever had); messages go at the current bag time."""

    def __init__(self, writer: Any, types: Any, summary: BagSummary):
        self.writer, self.types, self.summary = writer, types, summary
        self.connections: dict[str, Any] = {}
        self.time_ns = 0

    def create(self, msg_type: str, topic: str) -> Any:
        conn = self.connections.get(topic)
        if conn is None:
            conn = self.connections[topic] = self.writer.add_connection(topic, msg_type,
                                                                        typestore=self.types.typestore)
        return topic, conn

    def destroy(self, handle: Any) -> None:
        pass

    def publish(self, handle: Any, msg: Any) -> None:
        from ..ros.hri import FACES_NS, TRACKED_TOPIC

        topic, conn = handle
        self.writer.write(conn, self.time_ns, self.types.serialize(msg))
        key = topic if topic == TRACKED_TOPIC else f"{FACES_NS}/*/{topic.rsplit('/', 1)[-1]}"
        self.summary.written[key] = self.summary.written.get(key, 0) + 1


def _storage_of(path: Path) -> str:
    """``sqlite3`` or ``mcap``: the input bag's storage plugin."""
    meta = path / "metadata.yaml"
    if meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            return "mcap" if str(info.get("storage_identifier", "")).lower() == "mcap" else "sqlite3"
        except (yaml.YAMLError, KeyError, TypeError):
            pass
    return "mcap" if path.suffix == ".mcap" or any(path.glob("*.mcap")) else "sqlite3"


def _pick_image_topic(connections: list[Any], wanted: Optional[str]) -> str:
    topics = sorted({c.topic for c in connections if c.msgtype in IMAGE_TYPES})
    if wanted is not None:
        if wanted not in topics:
            raise BagError(f"the bag has no Image or CompressedImage topic {wanted!r}; image topics: "
                           f"{', '.join(topics) or 'none'}")
        return wanted
    if len(topics) != 1:
        raise BagError(f"the bag has {len(topics)} image topics ({', '.join(topics) or 'none'}); "
                       f"choose one with --image-topic")
    return topics[0]


def default_camera_info_topic(image_topic: str) -> str:
    """``/ns/camera_info`` for ``/ns/image_raw`` or ``/ns/image_raw/compressed`` (image_transport's layout)."""
    parts = image_topic.rstrip("/").split("/")
    if parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"])


def process_bag(input_bag: "str | Path", output_bag: "str | Path", options: Optional[BagOptions] = None,
                estimator: Any = None) -> BagSummary:
    """Process ``input_bag`` into the new bag ``output_bag``; ``estimator`` (a HeadPoseEstimator) defaults to
    one built from ``options.values``."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    from ..ros.params import estimator_config, validate_all

    opts = options or BagOptions()
    src, dst = Path(input_bag), Path(output_bag)
    if not src.exists():
        raise BagError(f"input bag {src} does not exist")
    if dst.exists():
        raise BagError(f"output bag {dst} exists already; choose a new path")
    values = validate_all(opts.values)
    storage = opts.storage or _storage_of(src)
    if storage not in ("sqlite3", "mcap"):
        raise ConfigError(f"storage must be sqlite3 or mcap, not {storage!r}")
    try:
        reader = AnyReader([src])
        reader.open()
    except (AnyReaderError, OSError, ValueError) as exc:
        raise BagError(f"cannot read {src}: {exc}") from None
    owned = estimator is None
    try:
        image_topic = _pick_image_topic(reader.connections, opts.image_topic)
        if estimator is None:
            from ..estimator.pipeline import HeadPoseEstimator

            estimator = HeadPoseEstimator(estimator_config(values))
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        try:
            with Writer(dst, version=8, storage_plugin=plugin) as writer:
                return _run(reader, writer, image_topic, opts, values, estimator)
        except WriterError as exc:
            raise BagError(f"cannot write {dst}: {exc}") from None
    finally:
        reader.close()
        if owned and estimator is not None:  # an estimator given by the caller stays the caller's
            estimator.close()


def _copy_connections(reader: Any, writer: Any, skip: set[str]) -> dict[int, Any]:
    """Writer connections for the input's connections (by input id), except topics in ``skip``."""
    out: dict[int, Any] = {}
    made: dict[tuple, Any] = {}
    for conn in reader.connections:
        if conn.topic in skip:
            continue
        ext = conn.ext
        qos = list(getattr(ext, "offered_qos_profiles", []) or [])
        fmt = getattr(ext, "serialization_format", "cdr") or "cdr"
        key = (conn.topic, conn.msgtype, fmt, repr(qos))
        if key in made:
            out[conn.id] = made[key]
            continue
        msgdef = conn.msgdef.data if conn.msgdef and conn.msgdef.data else None
        digest = conn.digest if msgdef and conn.digest and conn.digest.startswith("RIHS01_") else None
        try:
            if msgdef and digest:
                new = writer.add_connection(conn.topic, conn.msgtype, msgdef=msgdef, rihs01=digest,
                                            serialization_format=fmt, offered_qos_profiles=qos)
            else:
                new = writer.add_connection(conn.topic, conn.msgtype, typestore=reader.typestore,
                                            serialization_format=fmt, offered_qos_profiles=qos)
        except Exception as exc:  # noqa: BLE001 - an unknown type must not stop the whole bag
            LOG.warning("topic %s (%s) is not copied: %s", conn.topic, conn.msgtype, exc)
            continue
        made[key] = out[conn.id] = new
    return out


def _run(reader: Any, writer: Any, image_topic: str, opts: BagOptions, values: dict[str, Any],
         estimator: Any) -> BagSummary:
    from tqdm import tqdm

    from ..ros import messages
    from ..ros.core import HeadPoseCore
    from ..ros.draw import draw_debug
    from ..ros.image_codec import ImageDecodeError

    from ..ros import hri

    types = messages.RosbagsTypes()
    hri_on = bool(values["hri.enabled"])
    outputs = output_topics(opts.node_name, opts.debug_image, hri_on)
    input_tf = {c.topic for c in reader.connections if c.topic == "/tf" and c.msgtype == TF_TYPE}
    clashing = {c.topic for c in reader.connections if c.topic in outputs
                or hri_on and c.topic.startswith(hri.FACES_NS + "/")} - input_tf
    for topic in sorted(clashing):
        LOG.warning("input topic %s is replaced by this run's output", topic)
    copied = _copy_connections(reader, writer, clashing) if opts.copy_input else {}
    out_conn: dict[str, Any] = {}
    for topic, msgtype in outputs.items():
        reuse = [copied[c.id] for c in reader.connections if c.topic == topic and c.id in copied
                 and c.msgtype == msgtype]
        out_conn[topic] = reuse[0] if reuse else writer.add_connection(topic, msgtype, typestore=types.typestore)
    summary = BagSummary(image_topic=image_topic, written=dict.fromkeys(outputs, 0))
    hri_pubs = _BagPublishers(writer, types, summary) if hri_on else None
    face_topics = None
    if hri_pubs is not None:
        hri_pubs.connections[hri.TRACKED_TOPIC] = out_conn[hri.TRACKED_TOPIC]
        face_topics = hri.FaceTopics(types, hri_pubs, (values["hri.face_width"], values["hri.face_height"]),
                                     values["keypoint_threshold"])

    def write(topic: str, t: int, msg: Any) -> None:
        writer.write(out_conn[topic], t, types.serialize(msg))
        summary.written[topic] += 1

    info_topic = opts.camera_info_topic or default_camera_info_topic(image_topic)
    core = HeadPoseCore(estimator, values, id_seed=opts.id_seed)
    intrinsics: Optional[CameraIntrinsics] = None
    total = sum(c.msgcount for c in reader.connections)
    markers_topic, debug_topic = f"/{opts.node_name}/markers", f"/{opts.node_name}/debug_image"
    bar = tqdm(reader.messages(), total=total, unit="msg", disable=not opts.progress, desc="bag")
    for conn, t, raw in bar:
        if conn.id in copied:
            writer.write(copied[conn.id], t, raw)
        if conn.topic == info_topic and conn.msgtype == CAMERA_INFO:
            try:
                cam = CameraIntrinsics.from_k(reader.deserialize(raw, conn.msgtype).k)
            except Exception as exc:  # noqa: BLE001 - a corrupt record: keep the intrinsics we had
                summary.bad_camera_info += 1
                if summary.bad_camera_info <= 5:
                    LOG.warning("camera_info at t=%d skipped: %s: %s", t, type(exc).__name__, exc)
                continue
            intrinsics = cam if cam.is_valid() else None
            if intrinsics is None:  # zero, negative or NaN K: positions fall back to the unit-depth ray
                summary.bad_camera_info += 1
                if summary.bad_camera_info <= 5:
                    LOG.warning("camera_info at t=%d has no valid intrinsics (fx=%s, fy=%s); using unit-depth rays",
                                t, cam.fx, cam.fy)
            continue
        if conn.topic != image_topic or conn.msgtype not in IMAGE_TYPES:
            continue
        if opts.max_frames is not None and summary.images >= opts.max_frames:
            continue
        summary.images += 1
        try:
            msg = reader.deserialize(raw, conn.msgtype)
            result = core.process_msg(msg, intrinsics)
        except (ImageDecodeError, ImageError) as exc:  # a bad frame is skipped, as in the node
            summary.bad_images += 1
            if summary.bad_images <= 5:
                LOG.warning("image %d at t=%d skipped: %s", summary.images, t, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a corrupt record or a backend error: skipped and counted
            summary.failed += 1
            if summary.failed <= 5:
                LOG.warning("image %d at t=%d failed: %s: %s", summary.images, t, type(exc).__name__, exc)
            continue
        summary.processed += 1
        summary.faces += len(result.faces)
        summary.frames_with_faces += bool(result.faces)
        h, prefix = result.header, values["tf_prefix"]
        out = messages.frame_outputs(types, result, values["publish_tf"], values["markers"], prefix)
        if "transforms" in out:
            out["transforms"] = messages.tf_message(types, out["transforms"])
        topics = {"head_pose": "/head_pose", "head_poses": "/head_poses", "transforms": "/tf", "markers": markers_topic}
        for key, msg in out.items():
            write(topics[key], t, msg)
        if face_topics is not None and hri_pubs is not None:
            hri_pubs.time_ns = t
            summary.face_ids += len(face_topics.update(result, prefix).created)
        if opts.debug_image:
            drawn = draw_debug(result.image, result.faces, result.face_ids, result.primary_face_id, result.intrinsics,
                               values["keypoint_threshold"], prefix)
            write(debug_topic, t, messages.image_msg(types, h, drawn))
        bar.set_postfix(frames=summary.processed, faces=summary.faces, refresh=False)
    bar.close()
    if summary.bad_images + summary.failed > 5:
        LOG.warning("%d bad and %d failed images skipped in all", summary.bad_images, summary.failed)
    return summary


def run(args: argparse.Namespace) -> int:
    from ..ros.params import load_params_file

    values = load_params_file(args.config) if args.config else {}
    if args.device:
        values["device"] = args.device
    options = BagOptions(image_topic=args.image_topic, camera_info_topic=args.camera_info_topic, values=values,
                         node_name=args.node_name, storage=args.storage, debug_image=not args.no_debug_image,
                         copy_input=not args.outputs_only, max_frames=args.max_frames, progress=not args.quiet,
                         id_seed=args.id_seed)
    summary = process_bag(args.input_bag, args.output_bag, options)
    print(f"{summary.images} image(s) on {summary.image_topic}: {summary.processed} processed "
          f"({summary.frames_with_faces} with faces, {summary.faces} heads in all, {summary.face_ids} face ids), "
          f"{summary.bad_images} skipped "
          f"as bad, {summary.failed} failed; wrote {args.output_bag}: "
          + ", ".join(f"{k} {v}" for k, v in summary.written.items()))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``bag`` command."""
    p = subparsers.add_parser(
        "bag", help="process a rosbag2 offline: add /head_pose, /head_poses, /tf, markers, a debug image and the "
        "REP-155 face topics",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("input_bag", help="input rosbag2 (a folder with metadata.yaml; sqlite3 or mcap)")
    p.add_argument("output_bag", help="output rosbag2 folder to create (must not exist)")
    p.add_argument("--image-topic", help="Image or CompressedImage topic (default: the bag's only image topic)")
    p.add_argument("--camera-info-topic", help="CameraInfo topic for metric positions (default: camera_info "
                   "beside the image topic, e.g. /camera/camera_info for /camera/image_raw)")
    p.add_argument("--config", help="parameters YAML (the node's config/headpose.yaml format)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), help="override the config's device")
    p.add_argument("--node-name", default="headpose_node", help="namespace of the markers and debug image topics")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), help="output storage (default: the input's)")
    p.add_argument("--no-debug-image", action="store_true", help="do not write the debug image topic")
    p.add_argument("--outputs-only", action="store_true", help="write only the output topics, not the input's")
    p.add_argument("--max-frames", type=int, help="process at most this many images")
    p.add_argument("--id-seed", type=int, help="seed of the faces' REP-155 ids (default: random), for reproducible "
                   "output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
