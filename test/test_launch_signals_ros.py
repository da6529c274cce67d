"""`ros2 launch` of the node as a user runs it, stopped by SIGTERM or by a terminal's Ctrl-C (SIGINT to the whole
process group, so the node gets it twice: from the terminal and from ros2 launch). Also runs the launch
arguments test_launch_ros.py does not: image_transport:=compressed (JPEG frames on <image>/compressed) and
use_sim_time:=true (the node's clock follows /clock).

SIGTERM to ``ros2 launch`` alone: Jazzy's launch exits at once (status -15) without stopping its processes; the
node, started with HEADPOSE_STOP_WITH_PARENT=1 by the launch file, then gets SIGTERM from the kernel and must stop
cleanly on its own: gone within seconds, its DELETEALL markers sent.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 Python")
pytest.importorskip("launch_ros", reason="needs launch_ros (ROS 2 or the test kit)")

from ros_launch_helpers import LAUNCH_FILE, TIMEOUT, Probe, jpeg_message, node_environment, scene_bgr  # noqa: E402

IMAGE = "/cam2/image_raw"
FRAME = "cam2_optical_frame"
SIM_SEC = 5000


def ros2_command() -> list[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "ros2")
    found = beside if os.path.exists(beside) else shutil.which("ros2")
    if found is None:
        pytest.skip("no ros2 command (ros2cli)")
    return [found]


@pytest.mark.parametrize("how", ["sigterm_to_launch", "sigint_to_process_group"])
def test_ros2_launch_compressed_sim_time_and_clean_stop(how):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage
    from visualization_msgs.msg import Marker, MarkerArray

    command = ros2_command() + ["launch", str(LAUNCH_FILE), f"image:={IMAGE}", "image_transport:=compressed",
                                "use_sim_time:=true", "rviz:=false", "device:=cpu"]
    env = dict(os.environ, **node_environment())
    launch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    probe = Probe()
    try:
        poses = probe.collect(PoseStamped, "/head_pose")
        markers = probe.collect(MarkerArray, "/headpose_node/markers")
        diagnostics = probe.collect(DiagnosticArray, "/diagnostics")
        images = probe.publisher(CompressedImage, IMAGE + "/compressed", qos_profile_sensor_data)
        clock = probe.publisher(Clock, "/clock", 10)
        frame = jpeg_message(scene_bgr(), FRAME, 77, 5)
        corrupt = jpeg_message(scene_bgr(), FRAME, 66, 0)
        corrupt.data = bytes(corrupt.data[:200]) + bytes(300)  # a JPEG header, then zeros

        def tick():
            msg = Clock()
            msg.clock.sec = SIM_SEC
            clock.publish(msg)
            images.publish(corrupt)  # each good frame follows a corrupt one
            images.publish(frame)

        assert Probe.wait_for(lambda: poses, TIMEOUT, every=tick, period=0.2), "no /head_pose for JPEG frames"
        assert (poses[0].header.stamp.sec, poses[0].header.stamp.nanosec, poses[0].header.frame_id) == (77, 5, FRAME)
        assert all(p.header.stamp.sec == 77 for p in poses)  # the corrupt frames were never posed
        # use_sim_time: the diagnostics are stamped with the simulated clock, not the wall clock
        stamped = Probe.wait_for(lambda: [a for a in diagnostics if a.header.stamp.sec > 0], 15.0, every=tick)
        assert stamped and abs(stamped[-1].header.stamp.sec - SIM_SEC) <= 1, [a.header.stamp for a in diagnostics]

        if how == "sigterm_to_launch":
            launch.send_signal(signal.SIGTERM)
        else:
            os.killpg(launch.pid, signal.SIGINT)
        output, _ = launch.communicate(timeout=60)
        text = output.decode(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        pid = int(re.search(r"process started with pid \[(\d+)\]", text).group(1))
        assert Probe.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30.0), "the node outlived its launch"
        if how == "sigterm_to_launch":
            assert launch.returncode == -signal.SIGTERM, text[-3000:]  # ros2 launch's own answer to SIGTERM
        else:
            assert launch.returncode == 0, text[-3000:]
            assert "process has finished cleanly" in text, text[-3000:]
        assert Probe.wait_for(lambda: any(m.action == Marker.DELETEALL for a in markers for m in a.markers), 5.0), \
            "no DELETEALL markers at shutdown"
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait()
        probe.close()
        time.sleep(0.5)
