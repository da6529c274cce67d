"""The offline bag tool: write a rosbag2 with a real face image, process it in-process, read the result back."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from scipy.spatial.transform import Rotation

from headpose_ros.estimator.errors import HeadPoseError
from headpose_ros.ros import messages
from headpose_ros.ros.messages import HeaderData, RosbagsTypes
from headpose_ros.tools import bag

from ros_test_helpers import BoxKeypoints, FixedDetector, astronaut_bgr, make_model

FRAME = "camera_color_optical_frame"
STAMPS = [(100, 5), (100, 33_000_005), (100, 66_000_005)]


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    """The real regressor (temporary random weights) behind stand-in detector and keypoint backends."""
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator

    model = make_model(tmp_path_factory.mktemp("model"))
    est = HeadPoseEstimator(EstimatorConfig(model=str(model), device="cpu"), detector=FixedDetector(),
                            keypoint_source=BoxKeypoints())
    yield est
    est.close()


def write_input_bag(path: Path, compressed: bool = False, storage: str = "sqlite3", bad_frame: bool = False) -> None:
    """Three astronaut frames (+ an optional corrupt one), a CameraInfo and an unrelated topic."""
    types = RosbagsTypes()
    img = astronaut_bgr()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        itype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
        conn = writer.add_connection(topic, itype, typestore=types.typestore)
        info = writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo", typestore=types.typestore)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=types.typestore)
        t0 = 1_000_000_000
        k = [500.0, 0.0, 256.0, 0.0, 500.0, 256.0, 0.0, 0.0, 1.0]
        cam = types.make("sensor_msgs/msg/CameraInfo", header=messages.header_msg(types, HeaderData(100, 0, FRAME)),
                         height=512, width=512, distortion_model="plumb_bob", d=np.zeros(5), k=np.array(k),
                         r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                         roi=types.make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0,
                                        width=0, do_rectify=False))
        writer.write(info, t0, types.serialize(cam))
        writer.write(other, t0, types.serialize(types.make("std_msgs/msg/String", data="hello")))
        for i, (sec, nsec) in enumerate(STAMPS):
            header = messages.header_msg(types, HeaderData(sec, nsec, FRAME))
            if compressed:
                data = cv2.imencode(".jpg", img)[1].ravel()
                msg = types.make(itype, header=header, format="bgr8; jpeg compressed bgr8", data=data)
            else:
                msg = messages.image_msg(types, HeaderData(sec, nsec, FRAME), img)
            writer.write(conn, t0 + (i + 1) * 33_000_000, types.serialize(msg))
        if bad_frame:
            bad = types.make("sensor_msgs/msg/Image", header=messages.header_msg(types, HeaderData(101, 0, FRAME)),
                             height=10, width=10, encoding="bgr8", is_bigendian=0, step=30,
                             data=np.zeros(7, np.uint8))
            writer.write(conn, t0 + 10 * 33_000_000, types.serialize(bad))


def read_bag(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def stamp(msg) -> tuple[int, int]:
    """The header stamp of a message (a MarkerArray: of its markers, which must agree)."""
    if hasattr(msg, "markers"):
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in msg.markers}
        assert len(stamps) == 1
        return stamps.pop()
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def frame_ids(msg) -> set[str]:
    return {m.header.frame_id for m in msg.markers} if hasattr(msg, "markers") else {msg.header.frame_id}


def test_bag_round_trip_adds_every_output_with_the_input_stamps(tmp_path, estimator):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_input_bag(src)
    summary = bag.process_bag(src, dst, bag.BagOptions(progress=False), estimator=estimator)
    assert (summary.images, summary.processed, summary.bad_images, summary.faces) == (3, 3, 0, 3)
    topics = read_bag(dst)
    assert {"/camera/image_raw", "/camera/camera_info", "/chatter", "/head_pose", "/head_poses", "/tf",
            "/headpose_node/markers", "/headpose_node/debug_image"} <= set(topics)
    image_times = [t for t, _ in topics["/camera/image_raw"]]
    for topic in ("/head_pose", "/head_poses", "/headpose_node/markers", "/headpose_node/debug_image",
                  "/humans/faces/tracked"):
        assert [t for t, _ in topics[topic]] == image_times, topic  # logged at the image's bag time
        assert [stamp(m) for _, m in topics[topic]] == STAMPS, topic
        assert set().union(*(frame_ids(m) for _, m in topics[topic])) == {FRAME}, topic
    (face_id,) = {i for _, m in topics["/humans/faces/tracked"] for i in m.ids}  # one face, one REP-155 id
    tfs = [tf for _, m in topics["/tf"] for tf in m.transforms]
    assert {(tf.header.frame_id, tf.child_frame_id) for tf in tfs} == {(FRAME, f"face_{face_id}"),
                                                                       (f"face_{face_id}", f"gaze_{face_id}")}
    assert sorted({(tf.header.stamp.sec, tf.header.stamp.nanosec) for tf in tfs}) == STAMPS
    pose = topics["/head_pose"][0][1].pose
    assert 0.3 < pose.position.z < 5.0  # metric (camera_info was in the bag), not the unit-depth ray
    q = pose.orientation
    assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1) < 1e-9
    face_tf = next(tf for tf in tfs if tf.child_frame_id == f"face_{face_id}").transform.rotation
    assert abs((Rotation.from_quat([q.x, q.y, q.z, q.w]).inv() * Rotation.from_quat(
        [face_tf.x, face_tf.y, face_tf.z, face_tf.w])).magnitude()) < 1e-9  # /head_pose and face_<id> agree
    debug = topics["/headpose_node/debug_image"][0][1]
    assert (debug.height, debug.width, debug.encoding) == (512, 512, "bgr8")
    assert not np.array_equal(np.asarray(debug.data).reshape(512, 512, 3), astronaut_bgr())  # something drawn
    assert [m.data for _, m in topics["/chatter"]] == ["hello"]


def test_compressed_mcap_input_and_a_bad_frame_is_skipped(tmp_path, estimator):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_input_bag(src, compressed=True, storage="mcap")
    summary = bag.process_bag(src, dst, bag.BagOptions(progress=False, debug_image=False, copy_input=False),
                              estimator=estimator)
    assert summary.processed == 3 and summary.image_topic == "/camera/image_raw/compressed"
    topics = read_bag(dst)
    assert "/camera/image_raw/compressed" not in topics and "/headpose_node/debug_image" not in topics
    assert [stamp(m) for _, m in topics["/head_pose"]] == STAMPS
    assert any(dst.glob("*.mcap"))

    src2, dst2 = tmp_path / "in2", tmp_path / "out2"
    write_input_bag(src2, bad_frame=True)
    summary = bag.process_bag(src2, dst2, bag.BagOptions(progress=False), estimator=estimator)
    assert (summary.images, summary.processed, summary.bad_images) == (4, 3, 1)


def test_clear_errors_for_missing_input_existing_output_and_ambiguous_topics(tmp_path, estimator):
    with pytest.raises(bag.BagError, match="does not exist"):
        bag.process_bag(tmp_path / "nope", tmp_path / "out", bag.BagOptions(progress=False), estimator=estimator)
    src = tmp_path / "in"
    write_input_bag(src)
    (tmp_path / "exists").mkdir()
    with pytest.raises(bag.BagError, match="exists already"):
        bag.process_bag(src, tmp_path / "exists", bag.BagOptions(progress=False), estimator=estimator)
    with pytest.raises(bag.BagError, match="no Image or CompressedImage topic '/nope'"):
        bag.process_bag(src, tmp_path / "o2", bag.BagOptions(image_topic="/nope", progress=False),
                        estimator=estimator)
    assert isinstance(bag.BagError("x"), HeadPoseError)


def test_command_line_registration_and_defaults():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    bag.register(sub)
    args = parser.parse_args(["bag", "in", "out", "--image-topic", "/cam/image", "--no-debug-image", "-q"])
    assert args.func is bag.run and args.image_topic == "/cam/image" and args.no_debug_image and args.quiet
    assert bag.default_camera_info_topic("/cam/image_raw") == "/cam/camera_info"
    assert bag.default_camera_info_topic("/cam/image_raw/compressed") == "/cam/camera_info"


def test_default_backends_find_the_astronaut_in_a_bag(tmp_path):
    """The real default detector and keypoint source (mediapipe, face_mesh) with a temporary model file."""
    from headpose_ros.estimator.errors import BackendUnavailableError

    src, dst = tmp_path / "in", tmp_path / "out"
    write_input_bag(src)
    model = make_model(tmp_path)
    options = bag.BagOptions(values={"model": str(model), "device": "cpu"}, progress=False, debug_image=False)
    try:
        summary = bag.process_bag(src, dst, options)
    except BackendUnavailableError as exc:
        pytest.skip(f"default backends unavailable here: {exc}")
    assert (summary.processed, summary.frames_with_faces) == (3, 3)
    topics = read_bag(dst)
    assert [stamp(m) for _, m in topics["/head_pose"]] == STAMPS
    face_tfs = {tf.child_frame_id for _, m in topics["/tf"] for tf in m.transforms}
    tracked = [m.ids for _, m in topics["/humans/faces/tracked"]]
    assert len(tracked) == 3 and tracked[0] == tracked[1] == tracked[2] and len(tracked[0]) == 1
    face_id = tracked[0][0]
    assert face_tfs == {f"face_{face_id}", f"gaze_{face_id}"}  # one face, the same id in all three frames
    landmarks = topics[f"/humans/faces/{face_id}/landmarks"][0][1]
    assert sum(p.c > 0 for p in landmarks.landmarks) == 70  # the mesh fills every code on this frontal face


def test_rep155_face_topics_in_the_bag_decode_with_independent_readers(tmp_path, estimator):
    """The bag carries /humans/faces/tracked and the face's roi, landmarks, cropped and aligned, named by the
    same id as its TF frames; every message decodes with readers that do not use this package's typestore:
    rosbags' AnyReader (the definitions the bag itself stores) and, where ROS 2 is installed, rclpy's own
    deserialiser with the hri_msgs package's classes."""
    from rosbags.rosbag2 import Reader

    src, dst = tmp_path / "in", tmp_path / "out"
    write_input_bag(src)
    summary = bag.process_bag(src, dst, bag.BagOptions(progress=False, id_seed=4), estimator=estimator)
    assert summary.face_ids == 1 and summary.written["/humans/faces/*/cropped"] == 3
    topics = read_bag(dst)  # AnyReader: every message deserialised with the bag's own definitions
    (face_id,) = {i for _, m in topics["/humans/faces/tracked"] for i in m.ids}
    assert face_id[0].isalpha()
    ns = f"/humans/faces/{face_id}"
    assert {f"{ns}/roi", f"{ns}/landmarks", f"{ns}/cropped", f"{ns}/aligned"} <= set(topics)
    image_times = [t for t, _ in topics["/camera/image_raw"]]
    for sub in ("roi", "landmarks", "cropped", "aligned"):
        assert [t for t, _ in topics[f"{ns}/{sub}"]] == image_times, sub
        assert [stamp(m) for _, m in topics[f"{ns}/{sub}"]] == STAMPS, sub
        assert {m.header.frame_id for _, m in topics[f"{ns}/{sub}"]} == {FRAME}, sub
    crop = topics[f"{ns}/cropped"][0][1]
    assert (crop.width, crop.height, crop.encoding) == (128, 128, "bgr8") and np.asarray(crop.data).any()
    roi = topics[f"{ns}/roi"][0][1]
    assert 0 <= roi.xmin < roi.xmax <= 1 and 0 <= roi.ymin < roi.ymax <= 1
    assert f"face_{face_id}" in {tf.child_frame_id for _, m in topics["/tf"] for tf in m.transforms}

    with Reader(dst) as reader:  # the types recorded in the bag are the hri_msgs ones
        kinds = {c.topic: c.msgtype for c in reader.connections}
    assert kinds["/humans/faces/tracked"] == "hri_msgs/msg/IdsList"
    assert kinds[f"{ns}/roi"] == "hri_msgs/msg/NormalizedRegionOfInterest2D"
    assert kinds[f"{ns}/landmarks"] == "hri_msgs/msg/FacialLandmarks"

    try:
        from rclpy.serialization import deserialize_message
        from rosidl_runtime_py.utilities import get_message
        get_message("hri_msgs/msg/IdsList")
    except (ImportError, AttributeError, ModuleNotFoundError, ValueError):
        return
    count = 0
    with Reader(dst) as reader:
        for conn, _, raw in reader.messages():
            msg = deserialize_message(bytes(raw), get_message(conn.msgtype))
            count += 1
            if conn.topic == "/humans/faces/tracked":
                assert list(msg.ids) == [face_id]
            elif conn.topic == f"{ns}/landmarks":
                assert len(msg.landmarks) == 70 and (msg.width, msg.height) == (512, 512)
    assert count == sum(len(v) for v in topics.values())


def test_hri_off_writes_no_rep155_topics(tmp_path, estimator):
    src, dst = tmp_path / "in", tmp_path / "out"
    write_input_bag(src)
    bag.process_bag(src, dst, bag.BagOptions(progress=False, values={"hri.enabled": False}), estimator=estimator)
    assert not any(t.startswith("/humans/") for t in read_bag(dst))
