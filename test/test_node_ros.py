"""The ROS 2 node itself. These tests need rclpy and the message packages: they run under ``colcon test`` on a
ROS 2 Humble or Jazzy machine and skip cleanly elsewhere (with the reason); one test checks the message
printed where ROS 2 is absent."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from headpose_ros.ros.messages import HeaderData

from ros_test_helpers import BoxKeypoints, FixedDetector, astronaut_bgr, make_model

HAVE_ROS = importlib.util.find_spec("rclpy") is not None
needs_ros = pytest.mark.skipif(not HAVE_ROS, reason="needs ROS 2 (rclpy, sensor_msgs, tf2_ros): these tests run with "
                               "colcon test on a ROS 2 Humble/Jazzy machine")
TIMEOUT = 120.0
FRAME = "test_camera_optical_frame"


@pytest.mark.skipif(HAVE_ROS, reason="checks the start-up message where ROS 2 is absent")
def test_without_ros_main_exits_1_with_one_clear_line(capsys):
    from headpose_ros.ros import node

    assert node.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rclpy" in err[0] and "setup.bash" in err[0]


@pytest.fixture()
def ros_node(tmp_path):
    """A started HeadPoseNode with the real regressor (temporary weights) behind stand-in backends."""
    rclpy = pytest.importorskip("rclpy", reason="needs ROS 2")
    from headpose_ros.estimator.config import EstimatorConfig
    from headpose_ros.estimator.pipeline import HeadPoseEstimator
    from headpose_ros.ros.node import HeadPoseNode

    estimator = HeadPoseEstimator(EstimatorConfig(model=str(make_model(tmp_path)), device="cpu"),
                                  detector=FixedDetector(), keypoint_source=BoxKeypoints())
    rclpy.init()
    node = HeadPoseNode(estimator=estimator)
    try:
        yield node
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()


@needs_ros
def test_node_publishes_head_pose_and_face_tf_with_the_image_header(ros_node):
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from headpose_ros.ros import messages
    from headpose_ros.ros.node import RclpyTypes

    probe = rclpy.create_node("headpose_probe")
    poses: list = []
    tfs: list = []
    probe.create_subscription(PoseStamped, "head_pose", poses.append, 10)
    probe.create_subscription(TFMessage, "/tf", lambda m: tfs.extend(m.transforms), 100)
    pub = probe.create_publisher(Image, "image", qos_profile_sensor_data)
    image = messages.image_msg(RclpyTypes(), HeaderData(42, 7, FRAME), astronaut_bgr())
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(ros_node)
    executor.add_node(probe)
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and not (poses and any(t.child_frame_id == "gaze_1" for t in tfs)):
            pub.publish(image)
            for _ in range(5):
                executor.spin_once(timeout_sec=0.05)
    finally:
        executor.remove_node(probe)
        executor.remove_node(ros_node)
        probe.destroy_node()
    assert poses, "no /head_pose received"
    pose = poses[0]
    assert (pose.header.stamp.sec, pose.header.stamp.nanosec, pose.header.frame_id) == (42, 7, FRAME)
    face = [t for t in tfs if t.child_frame_id == "face_1"]
    gaze = [t for t in tfs if t.child_frame_id == "gaze_1"]
    assert face and face[0].header.frame_id == FRAME and (face[0].header.stamp.sec, face[0].header.stamp.nanosec) \
        == (42, 7)
    assert gaze and gaze[0].header.frame_id == "face_1"


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
