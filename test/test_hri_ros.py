"""The REP-155 publisher manager on a real rclpy node (one process, discovery off): messages arrive with the
hri_msgs types, a pyhri-like follower sees every face, and 1000 faces in sequence leave the node's publishers
and topic list bounded. Skips without rclpy and hri_msgs."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from headpose_ros.estimator.types import FaceBox, FaceResult, HeadPose, Keypoints
from headpose_ros.ros import hri
from headpose_ros.ros.messages import HeaderData

from ros_launch_helpers import Follower
from ros_test_helpers import ASTRONAUT_FACE, astronaut_bgr

pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy)")
pytest.importorskip("hri_msgs.msg", reason="needs the hri_msgs package")

HEADER = HeaderData(100, 5, "cam_optical")


def a_face(box: FaceBox = ASTRONAUT_FACE) -> FaceResult:
    frac = np.array([[0.5, 0.65], [0.35, 0.45], [0.65, 0.45], [0.05, 0.5], [0.95, 0.5]])
    xy = np.array([box.x0, box.y0]) + frac * np.array([box.width, box.height])
    return FaceResult(box=box, keypoints=Keypoints(xy, np.ones(5)), pose=HeadPose(0, 0, 0),
                      position=np.array([0.0, 0.0, 1.0]), position_is_ray=True)


@pytest.fixture()
def ros():
    """An rclpy context and node of its own, spun by a MultiThreadedExecutor in a background thread (the node
    publishes from its worker thread too). Discovery is off: nothing leaves this process."""
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") not in ("OFF", "LOCALHOST"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "OFF"
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="ros_log_"))
    os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from headpose_ros.ros.node import RclpyTypes

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("hri_test", context=context)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield SimpleNamespace(node=node, types=RclpyTypes(), rclpy=rclpy, spinner=spinner)
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5.0)


def node_publishers(ros) -> hri.NodePublishers:
    """As the node makes them: publishers without QoS-event handlers (see NodePublishers), since they are
    created and destroyed while an executor spins in another thread."""
    from rclpy.event_handler import PublisherEventCallbacks

    return hri.NodePublishers(ros.node, ros.types, event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def face_topic_names(node) -> set[str]:
    return {name for name, _ in node.get_topic_names_and_types() if name.startswith(hri.FACES_NS + "/")}


def test_messages_arrive_typed_and_a_follower_sees_every_face_as_it_comes_and_goes(ros):
    follower = Follower(ros.node, kinds=("roi", "landmarks", "cropped"))
    topics = hri.FaceTopics(ros.types, node_publishers(ros))
    ids = hri.FaceIds(seed=11)
    image = astronaut_bgr()
    people = {0: range(0, 40), 1: range(10, 60), 2: range(50, 90)}  # who is in view in which frames
    seen_ids: dict[int, str] = {}
    for t in range(100):
        present = [p for p, frames in people.items() if t in frames]
        tokens = ids.update(present, alive=present)  # max_missed 0: a person leaving is forgotten at once
        seen_ids.update(zip(present, tokens))
        result = SimpleNamespace(header=HeaderData(100 + t, 0, "cam_optical"), image=image,
                                 faces=[a_face()] * len(present), face_ids=tokens, live_face_ids=tokens)
        topics.update(result)
        time.sleep(0.03)
    assert wait_for(lambda: len(follower.tracked) >= 95)
    assert len(seen_ids) == 3
    for person, face_id in seen_ids.items():
        got = follower.received.get(face_id)
        assert got is not None, f"person {person} ({face_id}) never listed in /humans/faces/tracked"
        assert wait_for(lambda: all(got[k] for k in got)), f"{face_id}: {[(k, len(v)) for k, v in got.items()]}"
        # the follower subscribes once it reads the id: it misses the first frames, then receives the rest
        assert len(got["roi"]) >= len(people[person]) // 2
        landmarks, crop = got["landmarks"][-1], got["cropped"][-1]
        assert len(landmarks.landmarks) == 70 and landmarks.header.frame_id == "cam_optical"
        assert (crop.width, crop.height, crop.encoding) == (128, 128, "bgr8")
    assert ros.spinner.is_alive()  # the executor survived the publishers made and destroyed beside it
    assert wait_for(lambda: follower.subs == {})  # everyone left: the follower dropped them all
    assert wait_for(lambda: face_topic_names(ros.node) == {hri.TRACKED_TOPIC})  # their topics are gone
    topics.close()


def test_a_thousand_faces_in_sequence_keep_publishers_and_topics_bounded(ros):
    """1000 different faces, one after the other with overlaps (face n in frames 2n .. 2n + 4), each forgotten
    two frames after it was last seen. Nobody subscribes, so no image is built."""
    topics = hri.FaceTopics(ros.types, node_publishers(ros))
    ids = hri.FaceIds(seed=0)
    image = np.zeros((480, 640, 3), np.uint8)
    box = FaceBox(100, 100, 200, 200)
    last_seen: dict[int, int] = {}
    peak_publishers = peak_topics = 0
    start = time.perf_counter()
    for t in range(2 * 1000 + 10):
        present = [n for n in range(max(0, t // 2 - 3), t // 2 + 1) if n < 1000 and 2 * n <= t <= 2 * n + 4]
        last_seen.update({n: t for n in present})
        alive = [n for n, seen in last_seen.items() if t - seen <= 2]
        last_seen = {n: last_seen[n] for n in alive}
        tokens = ids.update(present, alive)
        topics.update(SimpleNamespace(header=HEADER, image=image, faces=[a_face(box)] * len(present),
                                      face_ids=tokens, live_face_ids=ids.live()))
        peak_publishers = max(peak_publishers, len(list(ros.node.publishers)))
        if t % 100 == 0:
            peak_topics = max(peak_topics, len(face_topic_names(ros.node)))
    elapsed = time.perf_counter() - start
    assert ros.spinner.is_alive()  # the executor survived 4000 publishers made and destroyed beside it
    print(f"\n1000 faces: {elapsed:.1f} s, {1e3 * elapsed / 1000:.1f} ms per face (4 publishers made and released)")
    bound = 4 * 5 + 1  # at most 5 faces alive at once (3 seen + 2 missed), four topics each, plus tracked
    baseline = len([p for p in ros.node.publishers if not p.topic_name.startswith(hri.FACES_NS)])
    assert topics.publisher_count == 1
    assert peak_publishers - baseline <= bound
    assert peak_topics <= bound
    assert wait_for(lambda: face_topic_names(ros.node) <= {hri.TRACKED_TOPIC})
    assert len([p for p in ros.node.publishers if p.topic_name.startswith(hri.FACES_NS)]) == 1
    topics.close()
    assert not [p for p in ros.node.publishers if p.topic_name.startswith(hri.FACES_NS)]
