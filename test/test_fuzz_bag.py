"""Fuzzing the offline bag tool (headpose_ros.tools.bag) with bags that hold unexpected and corrupt records.

Each example writes a rosbag2 (sqlite3 or mcap, with rosbags) whose image topic carries a random sequence
of good frames and bad ones: truncated or oversized data, an unknown encoding, a wrong step, a 0x0 frame,
garbage or truncated CDR bytes, a CompressedImage with random or truncated bytes or an unknown format, and
messages of another type on the image topic itself; beside it, camera_info records (good, NaN, zero or
corrupt), a topic of a custom message type, /chatter and /tf. The tool must process every good frame
(one /head_poses message each, with its stamp), skip and count every bad one (``bad_images`` + ``failed``),
copy every input record, and never raise. Stand-in detector, keypoints and regressor: no TensorFlow.

Also: unreadable bags, a bag without image topic and a wrong ``--image-topic``: a BagError saying so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from fuzz_support import COUNTS, count, fuzz_settings, make_report_fixture, run_counted

bag = pytest.importorskip("headpose_ros.tools.bag", reason="headpose_ros/tools/bag.py (the offline bag tool) is not "
                          "written yet")
from headpose_ros.estimator.pipeline import HeadPoseEstimator  # noqa: E402
from headpose_ros.ros import messages  # noqa: E402
from headpose_ros.ros.messages import HeaderData, RosbagsTypes  # noqa: E402
from tools_fakes import CentreDetector, ConstantRegressor, LayoutKeypoints  # noqa: E402

MODULE = "test_fuzz_bag"
_fuzz_counts_report = make_report_fixture(MODULE)
FRAME = "camera_optical"
IMAGE_TOPIC = "/camera/image_raw"
W, H = 64, 48
CUSTOM_MSGDEF = "string name\nfloat64[] values\nuint8[] blob\n"

GOOD = "good"
BAD_RAW = ["truncated data", "oversized data", "unknown encoding", "wrong step", "0x0 frame", "garbage CDR",
           "truncated CDR", "another type on the image topic"]
BAD_COMPRESSED = ["random bytes", "truncated JPEG", "unknown format", "garbage CDR", "PNG said to be JPEG"]
INFO_KINDS = ["good K", "NaN K", "zero K", "corrupt CameraInfo CDR"]


@pytest.fixture(scope="module")
def types() -> RosbagsTypes:
    return RosbagsTypes()


def estimator() -> HeadPoseEstimator:
    return HeadPoseEstimator(detector=CentreDetector(), keypoint_source=LayoutKeypoints(),
                             regressor=ConstantRegressor())


def _frame(i: int) -> np.ndarray:
    img = np.full((H, W, 3), 40 + (7 * i) % 200, np.uint8)
    img[H // 4: 3 * H // 4, W // 4: 3 * W // 4] = 220
    return img


def _header(types, i: int):
    return messages.header_msg(types, HeaderData(1000 + i, 5, FRAME))


def _image_record(types, kind: str, i: int) -> tuple[str, bytes]:
    """(message type, serialised bytes) of one raw-image record of ``kind``."""
    img = _frame(i)
    fields = dict(header=_header(types, i), height=H, width=W, encoding="bgr8", is_bigendian=0, step=W * 3,
                  data=np.frombuffer(img.tobytes(), np.uint8))
    if kind == "truncated data":
        fields["data"] = fields["data"][: W * 3 * H // 2]
    elif kind == "oversized data":
        fields["data"] = np.concatenate([fields["data"], np.zeros(17, np.uint8)])
    elif kind == "unknown encoding":
        fields["encoding"] = "32FC1"
    elif kind == "wrong step":
        fields["step"] = W * 3 - 3
    elif kind == "0x0 frame":
        fields.update(height=0, width=0, step=0, data=np.zeros(0, np.uint8))
    elif kind == "another type on the image topic":
        return "std_msgs/msg/String", types.serialize(types.make("std_msgs/msg/String", data=f"not an image {i}"))
    raw = types.serialize(types.make("sensor_msgs/msg/Image", **fields))
    if kind == "garbage CDR":
        raw = np.random.default_rng(i).integers(0, 256, 64, dtype=np.uint8).tobytes()
    elif kind == "truncated CDR":
        raw = raw[: len(raw) // 3]
    return "sensor_msgs/msg/Image", raw


def _compressed_record(types, kind: str, i: int) -> tuple[str, bytes]:
    img = _frame(i)
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    fmt, data = "bgr8; jpeg compressed bgr8", jpeg
    if kind == "random bytes":
        data = np.random.default_rng(i).integers(0, 256, 300, dtype=np.uint8).tobytes()
    elif kind == "truncated JPEG":
        data = jpeg[: len(jpeg) // 2]
    elif kind == "unknown format":
        fmt = "theora"
    elif kind == "PNG said to be JPEG":
        data = cv2.imencode(".png", img)[1].tobytes()
    raw = types.serialize(types.make("sensor_msgs/msg/CompressedImage", header=_header(types, i), format=fmt,
                                     data=np.frombuffer(data, np.uint8)))
    if kind == "garbage CDR":
        raw = np.random.default_rng(i).integers(0, 256, 40, dtype=np.uint8).tobytes()
    return "sensor_msgs/msg/CompressedImage", raw


def _camera_info(types, kind: str, i: int) -> bytes:
    k = {"good K": [80.0, 0, W / 2, 0, 80.0, H / 2, 0, 0, 1], "NaN K": [np.nan] * 9, "zero K": [0.0] * 9}.get(
        kind, [80.0, 0, W / 2, 0, 80.0, H / 2, 0, 0, 1])
    msg = types.make("sensor_msgs/msg/CameraInfo", header=_header(types, i), height=H, width=W,
                     distortion_model="plumb_bob", d=np.zeros(5), k=np.array(k, dtype=np.float64),
                     r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                     roi=types.make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0,
                                    do_rectify=False))
    raw = types.serialize(msg)
    return raw[: len(raw) // 2] if kind == "corrupt CameraInfo CDR" else raw


def write_bag(path: Path, types, records: list[str], infos: list[str], compressed: bool, storage: str) -> dict:
    """Write the bag; the expected counts per topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_types_from_msg

    store = types.typestore
    if "my_pkgs/msg/Thing" not in store.types:
        store.register(get_types_from_msg(CUSTOM_MSGDEF, "my_pkgs/msg/Thing"))
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    topic = IMAGE_TOPIC + ("/compressed" if compressed else "")
    written: dict[str, int] = {}
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        conns: dict[tuple[str, str], object] = {}

        def write(topic_name: str, msgtype: str, t: int, raw: bytes) -> None:
            key = (topic_name, msgtype)
            if key not in conns:
                conns[key] = writer.add_connection(topic_name, msgtype, typestore=store)
            writer.write(conns[key], t, raw)
            written[topic_name] = written.get(topic_name, 0) + 1

        t0 = 2_000_000_000
        write("/chatter", "std_msgs/msg/String", t0, types.serialize(types.make("std_msgs/msg/String", data="hi")))
        thing = store.types["my_pkgs/msg/Thing"](name="x", values=np.array([1.0, 2.0]), blob=np.zeros(3, np.uint8))
        write("/custom", "my_pkgs/msg/Thing", t0, bytes(store.serialize_cdr(thing, "my_pkgs/msg/Thing")))
        for j, kind in enumerate(infos):
            write("/camera/camera_info", "sensor_msgs/msg/CameraInfo", t0 + j, _camera_info(types, kind, j))
        for i, kind in enumerate(records):
            msgtype, raw = (_compressed_record if compressed else _image_record)(types, kind, i)
            write(topic, msgtype, t0 + 1000 + i * 33_000_000, raw)
    return written


@st.composite
def bag_plans(draw):
    compressed = draw(st.booleans())
    kinds = [GOOD] * 3 + (BAD_COMPRESSED if compressed else BAD_RAW)
    records = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=12))
    if GOOD not in records:
        records.append(GOOD)  # a good frame to show that the tool still processes frames after bad ones
    infos = draw(st.lists(st.sampled_from(INFO_KINDS), max_size=3))
    storage = draw(st.sampled_from(["sqlite3", "mcap"]))
    note(f"compressed={compressed} storage={storage} records={records} camera_info={infos}")
    return compressed, records, infos, storage


@fuzz_settings(50)
@given(bag_plans())
def _bag_property(plan):
    compressed, records, infos, storage = plan
    types = RosbagsTypes()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        written = write_bag(src, types, records, infos, compressed, storage)
        topic = IMAGE_TOPIC + ("/compressed" if compressed else "")
        summary = bag.process_bag(src, dst, bag.BagOptions(image_topic=topic, progress=False, debug_image=False),
                                  estimator=estimator())
        images = [r for r in records if r != "another type on the image topic"]
        good = [i for i, r in enumerate(records) if r == GOOD]
        assert summary.images == len(images)
        assert summary.processed == len(good)
        assert summary.bad_images + summary.failed == len(images) - len(good)
        out = read_bag(dst)
        for name, n in written.items():  # every input record is copied, corrupt ones too
            assert len(out.get(name, [])) == n, name
        poses = out["/head_poses"]
        assert [m.header.stamp.sec for _, m in poses] == [1000 + i for i in good]
        assert all(len(m.poses) == 1 for _, m in poses)
    count(f"{MODULE}::bags", f"{'compressed' if compressed else 'raw'} images, {storage}")
    for kind in records + [f"camera_info: {k}" for k in infos]:  # records of each kind over all bags
        COUNTS[f"{MODULE}::bag_records"][kind] += 1


def read_bag(path: Path) -> dict[str, list]:
    from rosbags.highlevel import AnyReader

    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception:  # noqa: BLE001 - the corrupt input records, copied as they were
                msg = None
            out.setdefault(conn.topic, []).append((t, msg))
    return out


def test_bags_with_unexpected_and_corrupt_records():
    """Random mixes of good and bad records: good frames processed, bad ones counted, everything copied."""
    kinds_before = sum(COUNTS[f"{MODULE}::bag_records"].values())
    tried = run_counted(f"{MODULE}::bags", _bag_property)
    assert sum(tried.values()) >= 40 and len(tried) == 4, tried  # raw / compressed x sqlite3 / mcap
    kinds = COUNTS[f"{MODULE}::bag_records"]
    assert sum(kinds.values()) - kinds_before >= 150
    assert set(BAD_RAW) | set(BAD_COMPRESSED) | {f"camera_info: {k}" for k in INFO_KINDS} <= set(kinds), kinds


@pytest.mark.parametrize("kind", ["corrupt CameraInfo CDR", "NaN K", "zero K"])
def test_bad_camera_info_does_not_stop_the_bag(tmp_path, types, kind):
    """A camera_info record that cannot be used: the frames are still processed (unit-depth rays)."""
    src, dst = tmp_path / "in", tmp_path / "out"
    write_bag(src, types, [GOOD, GOOD], [kind], compressed=False, storage="sqlite3")
    summary = bag.process_bag(src, dst, bag.BagOptions(image_topic=IMAGE_TOPIC, progress=False, debug_image=False),
                              estimator=estimator())
    assert summary.processed == 2
    pose = read_bag(dst)["/head_pose"][0][1].pose
    assert pose.position.z == pytest.approx(1.0)  # the documented unit-depth ray


def test_a_bag_without_image_topic(tmp_path, types):
    src = tmp_path / "in"
    write_bag(src, types, [], ["good K"], compressed=False, storage="sqlite3")
    with pytest.raises(bag.BagError, match="image topic"):
        bag.process_bag(src, tmp_path / "out", bag.BagOptions(progress=False), estimator=estimator())


def test_a_wrong_image_topic_lists_the_image_topics(tmp_path, types):
    src = tmp_path / "in"
    write_bag(src, types, [GOOD], [], compressed=False, storage="sqlite3")
    with pytest.raises(bag.BagError, match=IMAGE_TOPIC.replace("/", "/")):
        bag.process_bag(src, tmp_path / "out", bag.BagOptions(image_topic="/chatter", progress=False),
                        estimator=estimator())


@pytest.mark.parametrize("damage", ["garbage db3", "garbage metadata", "empty folder", "truncated db3"])
def test_unreadable_bags_are_a_bag_error(tmp_path, types, damage):
    src = tmp_path / "in"
    write_bag(src, types, [GOOD, GOOD], [], compressed=False, storage="sqlite3")
    db3 = next(src.glob("*.db3"))
    if damage == "garbage db3":
        db3.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif damage == "truncated db3":
        db3.write_bytes(db3.read_bytes()[:1000])
    elif damage == "garbage metadata":
        (src / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    else:
        for f in src.iterdir():
            f.unlink()
    with pytest.raises(bag.BagError):
        bag.process_bag(src, tmp_path / "out", bag.BagOptions(image_topic=IMAGE_TOPIC, progress=False),
                        estimator=estimator())
