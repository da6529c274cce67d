"""headpose_node started by its launch file in its own process, driven through the middleware (launch_testing).

The real default pipeline runs on the astronaut portrait. A probe node in this process publishes raw bgr8, rgb8 and
mono8 frames (reliable and best-effort publishers), malformed frames between good ones, and camera_info; it changes
parameters through the node's parameter services and collects every output. When the tests are done,
launch_testing stops the launch with SIGINT; the post-shutdown tests check the exit code, the log and the last
markers; a pyhri-like consumer follows the REP-155 face topics through a scene of people entering and
leaving. Launch arguments used here: image, camera_info, params_file, namespace, device, rviz:=false,
use_sim_time:=false (test_launch_signals_ros.py runs the others: image_transport, use_sim_time:=true).
"""

from __future__ import annotations

import math
import unittest

import numpy as np
import pytest

launch_testing = pytest.importorskip("launch_testing", reason="needs launch_testing (ROS 2 or the test kit)")
rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 Python")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from ros_launch_helpers import (LAUNCH_FILE, PARAMS_FILE, TIMEOUT, Follower, Probe,  # noqa: E402
                                camera_info_message, image_message, node_environment, rotation_matrix,
                                scene_bgr)

NAMESPACE = "robot"
NODE = f"/{NAMESPACE}/headpose_node"
IMAGE = "/cam/image_raw"
INFO = "/cam/camera_info"
FRAME = "cam_optical_frame"
PROBE: dict = {}


@pytest.mark.launch_test
def generate_test_description():
    """The package's launch file from this checkout, with the arguments a robot integrator would pass."""
    arguments = {"image": IMAGE, "camera_info": INFO, "params_file": str(PARAMS_FILE), "namespace": NAMESPACE,
                 "device": "cpu", "rviz": "false", "use_sim_time": "false"}
    return launch.LaunchDescription([
        *(SetEnvironmentVariable(k, v) for k, v in node_environment().items()),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
                                 launch_arguments=arguments.items()),
        launch_testing.actions.ReadyToTest(),
    ])


def probe() -> dict:
    """One probe for the module: created at the first test, kept through the launch's shutdown."""
    if not PROBE:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray, PoseStamped
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage
        from visualization_msgs.msg import MarkerArray

        p = Probe()
        PROBE.update(
            probe=p,
            pose=p.collect(PoseStamped, f"/{NAMESPACE}/head_pose"),
            poses=p.collect(PoseArray, f"/{NAMESPACE}/head_poses"),
            tf=p.collect(TFMessage, "/tf"),
            markers=p.collect(MarkerArray, f"{NODE}/markers"),
            diagnostics=p.collect(DiagnosticArray, "/diagnostics"),
            reliable=p.publisher(Image, IMAGE, 10),
            best_effort=p.publisher(Image, IMAGE, qos_profile_sensor_data),
            info=p.publisher(CameraInfo, INFO, 10),
        )
    return PROBE


def send_until_posed(publisher, msg, timeout: float = TIMEOUT):
    """Publish ``msg`` every 0.2 s until a /head_pose with its stamp arrives; that pose (None on timeout)."""
    poses = probe()["pose"]
    stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)

    def answered():
        return next((p for p in poses if (p.header.stamp.sec, p.header.stamp.nanosec) == stamp), None)

    return Probe.wait_for(answered, timeout, every=lambda: publisher.publish(msg), period=0.2)


def transforms_at(sec: int) -> dict:
    return {t.child_frame_id: t for m in probe()["tf"] for t in m.transforms if t.header.stamp.sec == sec}


class TestNodeThroughTheMiddleware(unittest.TestCase):
    """Runs while the launch is up; methods run in name order."""

    @classmethod
    def setUpClass(cls):
        cls.frame = scene_bgr()

    def test_1_raw_frames_of_each_encoding_are_posed_with_their_header(self):
        p = probe()
        cases = [("bgr8", "reliable", 100), ("rgb8", "best_effort", 101), ("mono8", "reliable", 102),
                 ("bgr8", "best_effort", 103)]
        for encoding, qos, sec in cases:
            with self.subTest(encoding=encoding, qos=qos):
                msg = image_message(self.frame, encoding, FRAME, sec, 250)
                pose = send_until_posed(p[qos], msg)
                self.assertIsNotNone(pose, f"no /head_pose for a {encoding} frame from a {qos} publisher")
                self.assertEqual(pose.header.frame_id, FRAME)
                q = pose.pose.orientation
                self.assertAlmostEqual(math.sqrt(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2), 1.0, places=6)
                # no camera_info yet: the position is the unit-depth ray through the face
                self.assertAlmostEqual(pose.pose.position.z, 1.0, places=6)
                arrays = [a for a in p["poses"] if a.header.stamp.sec == sec]
                self.assertTrue(arrays and arrays[0].header.frame_id == FRAME and len(arrays[0].poses) >= 1)

    def test_2_tf_frames_follow_rep155(self):
        tfs = Probe.wait_for(lambda: transforms_at(100), 10.0)
        faces = {k: t for k, t in tfs.items() if k.startswith("face_")}
        self.assertTrue(faces, f"no face_<id> frame at the stamp of the first frame: {sorted(tfs)}")
        name, face = next(iter(faces.items()))
        self.assertEqual(face.header.frame_id, FRAME)  # parent: the image's optical frame
        self.assertEqual((face.header.stamp.sec, face.header.stamp.nanosec), (100, 250))
        gaze = tfs.get("gaze_" + name[len("face_"):])
        self.assertIsNotNone(gaze, "no gaze_<id> beside face_<id>")
        self.assertEqual(gaze.header.frame_id, name)
        r_face = rotation_matrix(face.transform.rotation)
        # REP-155: x out of the face. The astronaut faces the camera: x points back toward it (optical -z) ...
        self.assertGreater(-r_face[2, 0], 0.8)
        # ... and z toward the scalp: up in the image (optical -y).
        self.assertGreater(-r_face[1, 2], 0.8)
        # gaze_<id>: collocated, z along the gaze (face x), x to the right (face -y), y down (face -z).
        t = gaze.transform.translation
        self.assertEqual((t.x, t.y, t.z), (0.0, 0.0, 0.0))
        expected = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]  # columns: gaze x, y, z in the face frame
        for row, want in zip(rotation_matrix(gaze.transform.rotation).round(6).tolist(), expected):
            self.assertEqual(row, want)

    def test_3_the_node_warns_when_camera_info_never_comes(self, proc_output):
        msg = image_message(self.frame, "bgr8", FRAME, 110)
        found = Probe.wait_for(lambda: any("but nothing on" in o.text.decode(errors="replace")
                                           for o in proc_output), 30.0,
                               every=lambda: probe()["reliable"].publish(msg), period=0.2)
        self.assertTrue(found, "no warning about the missing camera_info")

    def test_4_camera_info_gives_metric_positions(self):
        p = probe()
        p["info"].publish(camera_info_message(FRAME))
        attempts = iter(range(1, 1000))

        def metric():  # a new stamp each attempt: poses of frames sent before the camera_info are rays
            p["info"].publish(camera_info_message(FRAME))
            msg = image_message(self.frame, "bgr8", FRAME, 120, next(attempts))
            pose = send_until_posed(p["reliable"], msg, 5.0)
            return pose if pose is not None and abs(pose.pose.position.z - 1.0) > 1e-6 else None

        pose = Probe.wait_for(metric, 60.0, period=0.0)
        self.assertIsNotNone(pose, "positions stayed unit-depth rays after camera_info")
        # a 512-px portrait whose eyes are ~60 px apart, f = 600 px: about 0.5-0.8 m away
        self.assertTrue(0.2 < pose.pose.position.z < 3.0, pose.pose.position)

    def test_5_malformed_frames_are_counted_and_the_next_good_frame_is_posed(self):
        p = probe()
        good = image_message(self.frame, "bgr8", FRAME, 130)
        bad = []
        wrong_step = image_message(self.frame, "bgr8", FRAME, 131)
        wrong_step.step = 100
        bad.append(wrong_step)
        truncated = image_message(self.frame, "bgr8", FRAME, 132)
        truncated.data = truncated.data[: len(truncated.data) // 2]
        bad.append(truncated)
        unknown = image_message(self.frame, "bgr8", FRAME, 133)
        unknown.encoding = "weird42"
        bad.append(unknown)
        empty = image_message(self.frame, "bgr8", FRAME, 134)
        empty.height = empty.width = empty.step = 0
        empty.data = b""
        bad.append(empty)
        for msg in bad:
            p["reliable"].publish(msg)
            Probe.wait_for(lambda: False, 0.4)
        for msg in bad:
            self.assertFalse([x for x in p["pose"] if x.header.stamp.sec == msg.header.stamp.sec])
        self.assertIsNotNone(send_until_posed(p["reliable"], good, 30.0), "no pose after malformed frames")

        def bad_images():
            for array in reversed(p["diagnostics"]):
                for status in array.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if "headpose_node" in status.name and "bad_images" in values:
                        return int(values["bad_images"]) or None
            return None

        count = Probe.wait_for(bad_images, 10.0)
        self.assertTrue(count and count >= 1, "malformed frames not counted in /diagnostics")

    def test_6_parameters_are_set_and_refused_through_the_parameter_service(self):
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient

        client = AsyncParameterClient(probe()["probe"].node, NODE)
        self.assertTrue(client.wait_for_services(timeout_sec=30.0))

        def call(future):
            Probe.wait_for(future.done, 30.0, period=0.05)
            return future.result()

        ok = call(client.set_parameters([Parameter("max_faces", value=1),
                                         Parameter("primary_face", value="longest_tracked")])).results
        self.assertTrue(all(r.successful for r in ok), ok)
        for name, value in [("primary_face", "nearest"), ("device", "gpu"), ("max_rate", -1.0),
                            ("tf_prefix", "cam/1")]:
            result = call(client.set_parameters([Parameter(name, value=value)])).results[0]
            self.assertFalse(result.successful, name)
            self.assertTrue(result.reason, name)
        got = call(client.get_parameters(["max_faces", "primary_face", "device"])).values
        self.assertEqual((got[0].integer_value, got[1].string_value, got[2].string_value),
                         (1, "longest_tracked", "cpu"))
        restored = call(client.set_parameters([Parameter("max_faces", value=16)])).results  # for the tests below
        self.assertTrue(restored[0].successful)

    def test_7_markers_and_diagnostics(self):
        p = probe()
        markers = [m for a in p["markers"] for m in a.markers if m.header.stamp.sec == 100]
        self.assertTrue(markers, "no markers for the first frame")
        self.assertTrue({m.header.frame_id for m in markers} == {FRAME})
        statuses = [s for a in p["diagnostics"] for s in a.status if "headpose_node" in s.name]
        self.assertTrue(statuses)
        values = {kv.key: kv.value for kv in statuses[-1].values}
        self.assertGreater(int(values["frames_processed"]), 0)
        self.assertIn("CPU", values["device"].upper())  # device: cpu from the launch argument

    def test_8_rep155_faces_follow_a_scene_of_people_entering_and_leaving(self):
        """A pyhri-like consumer: follows /humans/faces/tracked, subscribes to each new face's topics as its id
        appears and drops them when it goes; ids agree with the TF frames; lost faces' topics disappear."""
        from headpose_ros.tools.bench import make_frames

        p = probe()
        node = p["probe"].node
        follower = Follower(node)
        tracked, seen = follower.tracked, follower.received
        scene = [(200, scene_bgr()), (210, make_frames(4, 1, seed=3)[0]), (220, np.full((480, 640, 3), 90, np.uint8))]
        for sec, frame in scene:
            msg = image_message(frame, "bgr8", FRAME, sec)
            want = 0 if sec == 220 else (1 if sec == 200 else 4)

            def counted(sec=sec, want=want):
                return [ids for s, ids in tracked if s == sec and len(ids) == want]

            Probe.wait_for(counted, 60.0, every=lambda m=msg: p["reliable"].publish(m), period=0.3)
            self.assertTrue(counted(), f"/humans/faces/tracked at {sec}: {[t for t in tracked if t[0] == sec][-3:]}")
            if want:
                ids = counted()[-1]
                self.assertEqual(len(set(ids)), want)
                for face_id in ids:
                    self.assertTrue(face_id[0].isalpha() and face_id.isalnum(), face_id)
                    got = Probe.wait_for(lambda f=face_id: all(seen[f].values()) and seen[f], 20.0,
                                         every=lambda m=msg: p["reliable"].publish(m), period=0.3)
                    self.assertTrue(got, f"face {face_id}: {[(k, len(v)) for k, v in seen[face_id].items()]}")
                    roi, crop = seen[face_id]["roi"][-1], seen[face_id]["cropped"][-1]
                    self.assertEqual(roi.header.frame_id, FRAME)
                    self.assertTrue(0 <= roi.xmin < roi.xmax <= 1 and 0 <= roi.ymin < roi.ymax <= 1)
                    self.assertEqual((crop.width, crop.height, crop.encoding), (128, 128, "bgr8"))
                    self.assertGreater(len(seen[face_id]["landmarks"][-1].landmarks), 60)
                    self.assertIn(f"face_{face_id}", transforms_at(sec), "TF and topic ids differ")
        # nobody in view: after max_missed frames the node destroys the lost faces' publishers
        gone = set(seen)

        def topics_gone():
            names = [n for n, _ in node.get_topic_names_and_types()]
            return not [n for n in names if any(f"/humans/faces/{i}/" in n for i in gone)]

        empty = image_message(scene[-1][1], "bgr8", FRAME, 230)
        self.assertTrue(Probe.wait_for(topics_gone, 30.0, every=lambda: p["reliable"].publish(empty), period=0.3),
                        "lost faces' topics still advertised")
        self.assertFalse(follower.subs)


@launch_testing.post_shutdown_test()
class TestAfterSigint(unittest.TestCase):
    """launch_testing has sent SIGINT to the launch: the node has exited."""

    def test_exit_code_is_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_no_traceback_in_the_log(self, proc_output):
        text = "".join(o.text.decode(errors="replace") for o in proc_output)
        self.assertNotIn("Traceback", text)
        self.assertIn("ready:", text)

    def test_markers_were_deleted_on_the_way_out(self):
        from visualization_msgs.msg import Marker

        p = probe()
        try:
            self.assertTrue(Probe.wait_for(
                lambda: any(m.action == Marker.DELETEALL for a in p["markers"] for m in a.markers), 5.0))
        finally:
            p["probe"].close()
            PROBE.clear()
