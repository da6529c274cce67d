"""The ROS 2 node in this process (rclpy, its own context and domain): outputs, TF without tf2_ros, the debug
image, parameters, and start-up failures. Needs rclpy and the message packages (a ROS 2 install, or the PyPI
wheels with the test kit: see README.md); outside CI these tests skip where ROS 2 is missing, in CI
(``HEADPOSE_REQUIRE_ROS=1``) a skip is a failure (test/conftest.py). The node's own process, its launch file and
the middleware between processes are tested in test_launch_ros.py and test_launch_signals_ros.py."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time

import pytest

from headpose_ros.ros.messages import HeaderData

from ros_test_helpers import BoxKeypoints, FixedDetector, astronaut_bgr, make_model

HAVE_ROS = all(importlib.util.find_spec(m) is not None for m in ("rclpy", "sensor_msgs", "tf2_msgs"))
needs_ros = pytest.mark.skipif(not HAVE_ROS, reason="needs ROS 2 Python (rclpy, sensor_msgs, tf2_msgs): a ROS 2 "
                               "install or the PyPI wheels with the test kit (README.md)")
TIMEOUT = 120.0
FRAME = "test_camera_optical_frame"


def test_without_ros_main_exits_1_with_one_clear_line():
    code = ("import sys; sys.modules['rclpy'] = None; from headpose_ros.ros import node; "
            "sys.exit(node.main([]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1
    assert len(err) == 1 and "rclpy" in err[0] and "setup.bash" in err[0], proc.stderr


@pytest.fixture()
def ros_context():
    """An rclpy context of its own, on a domain no other test uses; always shut down, even when a test fails."""
    rclpy = pytest.importorskip("rclpy", reason="needs ROS 2")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(100, 200))
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture()
def ros_node(tmp_path, ros_context):
    """A started HeadPoseNode with the real regressor (temporary weights) behind stand-in backends."""
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator
    from headpose_ros.ros.node import HeadPoseNode

    estimator = HeadPoseEstimator(EstimatorConfig(model=str(make_model(tmp_path)), device="cpu"),
                                  detector=FixedDetector(), keypoint_source=BoxKeypoints())
    node = HeadPoseNode(estimator=estimator, context=ros_context)
    try:
        yield node
    finally:
        node.close()
        node.destroy_node()


class Probe:
    """A test node beside the node under test: one executor for both, subscriptions that collect messages."""

    def __init__(self, ros_node, context):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node("headpose_probe", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(ros_node)
        self.executor.add_node(self.node)
        self.ros_node = ros_node

    def collect(self, msg_type, topic: str, depth: int = 100) -> list:
        got: list = []
        self.node.create_subscription(msg_type, topic, got.append, depth)
        return got

    def publish_until(self, publisher, msg, done, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            publisher.publish(msg)
            for _ in range(5):
                self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.executor.remove_node(self.ros_node)
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture()
def probe(ros_node, ros_context):
    p = Probe(ros_node, ros_context)
    try:
        yield p
    finally:
        p.close()


def _astronaut_msg():
    from headpose_ros.ros import messages
    from headpose_ros.ros.node import RclpyTypes

    return messages.image_msg(RclpyTypes(), HeaderData(42, 7, FRAME), astronaut_bgr())


@needs_ros
def test_node_publishes_head_pose_and_face_tf_with_the_image_header(probe):
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    poses = probe.collect(PoseStamped, "head_pose")
    tf_msgs = probe.collect(TFMessage, "/tf")
    pub = probe.node.create_publisher(Image, "image", qos_profile_sensor_data)
    tfs = lambda: [t for m in tf_msgs for t in m.transforms]  # noqa: E731
    probe.publish_until(pub, _astronaut_msg(),
                        lambda: poses and any(t.child_frame_id.startswith("gaze_") for t in tfs()))
    assert poses, "no /head_pose received"
    pose = poses[0]
    assert (pose.header.stamp.sec, pose.header.stamp.nanosec, pose.header.frame_id) == (42, 7, FRAME)
    face = [t for t in tfs() if t.child_frame_id.startswith("face_")]
    assert face and face[0].header.frame_id == FRAME and (face[0].header.stamp.sec, face[0].header.stamp.nanosec) \
        == (42, 7)
    face_id = face[0].child_frame_id[len("face_"):]
    assert face_id[:1].isalpha(), "REP-155 ids must be valid ROS name tokens"
    gaze = [t for t in tfs() if t.child_frame_id == f"gaze_{face_id}"]
    assert gaze and gaze[0].header.frame_id == f"face_{face_id}"


@needs_ros
def test_without_tf2_ros_the_node_publishes_tf_messages_itself(monkeypatch, tmp_path, ros_context):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # `import tf2_ros` now raises ImportError
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator
    from headpose_ros.ros.node import HeadPoseNode

    estimator = HeadPoseEstimator(EstimatorConfig(model=str(make_model(tmp_path)), device="cpu"),
                                  detector=FixedDetector(), keypoint_source=BoxKeypoints())
    node = HeadPoseNode(estimator=estimator, context=ros_context)
    probe = Probe(node, ros_context)
    try:
        tf_msgs = probe.collect(TFMessage, "/tf")
        pub = probe.node.create_publisher(Image, "image", qos_profile_sensor_data)
        probe.publish_until(pub, _astronaut_msg(), lambda: any(m.transforms for m in tf_msgs))
    finally:
        probe.close()
        node.close()
        node.destroy_node()
    children = {t.child_frame_id for m in tf_msgs for t in m.transforms}
    assert any(c.startswith("face_") for c in children) and any(c.startswith("gaze_") for c in children)


@needs_ros
def test_debug_image_is_drawn_only_while_someone_subscribes(probe, monkeypatch):
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from headpose_ros.ros import draw

    calls = []
    real = draw.draw_debug
    monkeypatch.setattr(draw, "draw_debug", lambda *a, **k: calls.append(1) or real(*a, **k))
    poses = probe.collect(PoseStamped, "head_pose")
    pub = probe.node.create_publisher(Image, "image", qos_profile_sensor_data)
    probe.publish_until(pub, _astronaut_msg(), lambda: len(poses) >= 3)
    assert len(poses) >= 3 and not calls, "drew debug images with no subscriber"
    debug = probe.collect(Image, "headpose_node/debug_image", depth=2)
    probe.publish_until(pub, _astronaut_msg(), lambda: bool(debug))
    assert calls and debug, "no debug image while subscribed"
    assert (debug[0].header.stamp.sec, debug[0].header.frame_id) == (42, FRAME)
    assert (debug[0].width, debug[0].height, debug[0].encoding) == (512, 512, "bgr8")


@needs_ros
def test_parameters_are_validated_at_run_time(ros_node):
    from rclpy.parameter import Parameter

    ok = ros_node.set_parameters([Parameter("max_rate", value=5.0), Parameter("primary_face", value="longest_tracked")])
    assert all(r.successful for r in ok)
    assert ros_node.processor.max_rate == 5.0 and ros_node.core.values["primary_face"] == "longest_tracked"
    refused = {
        "primary_face": "nearest",  # not a choice
        "tf_prefix": "cam/1",  # not a valid id prefix
        "max_rate": -1.0,  # out of range
        "device": "cpu",  # read-only after start-up
        "max_faces": 2.5,  # wrong type
    }
    for name, value in refused.items():
        try:
            result = ros_node.set_parameters([Parameter(name, value=value)])[0]
        except Exception as exc:  # noqa: BLE001 - some rclpy versions raise on a type mismatch instead
            assert str(exc), name
            continue
        assert not result.successful and result.reason, name
    assert ros_node.values["primary_face"] == "longest_tracked"


def _run_node(*ros_args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
    return subprocess.run([sys.executable, "-m", "headpose_ros.ros.node", "--ros-args", *ros_args],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)


@needs_ros
@pytest.mark.parametrize("ros_args,message", [
    (("-p", "model:=/nonexistent/none.weights.h5"), "does not exist"),
    (("-p", "max_faces:=1000"), "max_faces"),
    (("-p", "primary_face:=nearest"), "primary_face"),
])
def test_bad_start_up_exits_1_with_a_clear_message_and_no_traceback(ros_args, message):
    proc = _run_node(*ros_args)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert message in output and "cannot start" in output
    assert "Traceback" not in output


@needs_ros
def test_close_sends_deleteall_markers_while_its_own_context_is_up(probe):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import Marker, MarkerArray

    markers = probe.collect(MarkerArray, "headpose_node/markers")
    pub = probe.node.create_publisher(Image, "image", qos_profile_sensor_data)
    probe.publish_until(pub, _astronaut_msg(), lambda: bool(markers))
    assert markers, "no markers"
    probe.ros_node.close()  # the node's context is the test's own, not rclpy's default one
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not any(m.action == Marker.DELETEALL for a in markers for m in a.markers):
        probe.executor.spin_once(timeout_sec=0.05)
    assert any(m.action == Marker.DELETEALL for a in markers for m in a.markers)
