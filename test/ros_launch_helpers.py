"""Helpers of the tests that run headpose_node in its own process (launch file, middleware between processes).

The node runs this checkout's code: the tests include this checkout's launch file and parameters file by path
and put the checkout first on the node's PYTHONPATH. Only the package's ament index entry and its
``lib/headpose_ros/headpose_node`` script come from the installed package (``pip install .``, then the test
kit's ``setup-venv.sh``, as README.md's install command does).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

CHECKOUT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = CHECKOUT / "launch" / "headpose.launch.py"
PARAMS_FILE = CHECKOUT / "config" / "headpose.yaml"
TIMEOUT = 180.0  # the node loads TensorFlow and MediaPipe first: 10-30 s on 2 busy cores


def node_environment() -> dict[str, str]:
    """Environment additions for the launched node: this checkout's code, one TensorFlow thread each."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(CHECKOUT) + (os.pathsep + path if path else ""),
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def scene_bgr(width: int = 640, height: int = 480) -> np.ndarray:
    """A ``width`` x ``height`` BGR frame with the public-domain astronaut portrait (scikit-image) in its middle."""
    from skimage import data

    face = data.astronaut()[:, :, ::-1]
    frame = np.full((height, width, 3), 90, np.uint8)
    h, w = min(height, face.shape[0]), min(width, face.shape[1])
    y, x = (height - h) // 2, (width - w) // 2
    frame[y:y + h, x:x + w] = face[:h, :w]
    return frame


def image_message(bgr: np.ndarray, encoding: str, frame_id: str, sec: int, nanosec: int = 0) -> Any:
    """An rclpy ``sensor_msgs/Image`` of a BGR frame in ``encoding`` (bgr8, rgb8 or mono8)."""
    import cv2
    from sensor_msgs.msg import Image

    if encoding == "bgr8":
        pixels = bgr
    elif encoding == "rgb8":
        pixels = bgr[:, :, ::-1]
    elif encoding == "mono8":
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    else:
        raise ValueError(encoding)
    pixels = np.ascontiguousarray(pixels)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=0,
                step=pixels.shape[1] * (1 if pixels.ndim == 2 else 3), data=pixels.tobytes())
    msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec = frame_id, sec, nanosec
    return msg


def jpeg_message(bgr: np.ndarray, frame_id: str, sec: int, nanosec: int = 0) -> Any:
    """An rclpy ``sensor_msgs/CompressedImage`` (JPEG), as image_transport's compressed plugin sends."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    msg = CompressedImage(format="bgr8; jpeg compressed bgr8", data=data.tobytes())
    msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec = frame_id, sec, nanosec
    return msg


def camera_info_message(frame_id: str, width: int = 640, height: int = 480, focal: float = 600.0) -> Any:
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5,
                     k=[focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0])
    msg.header.frame_id = frame_id
    return msg


def rotation_matrix(q: Any) -> np.ndarray:
    """3x3 rotation of a geometry_msgs Quaternion (independent of the package's geometry module)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()


class Follower:
    """Behaves like pyhri's HRIListener: follows /humans/faces/tracked, subscribes to each new face's ``kinds``
    of topics as its id appears and drops those subscriptions when the id goes. ``tracked`` holds (stamp seconds,
    ids) of every IdsList, ``received[id][kind]`` the messages, ``subs`` the live subscriptions per id.

    Its subscriptions have no QoS-event handlers: rclpy 7.1's executor raises InvalidHandle (and its spin thread
    dies) when a subscription with the default handlers is destroyed while it builds a wait set, as happens here
    when an id goes."""

    KINDS = ("roi", "landmarks", "cropped", "aligned")

    def __init__(self, node: Any, kinds: tuple[str, ...] = KINDS):
        from hri_msgs.msg import FacialLandmarks, IdsList, NormalizedRegionOfInterest2D
        from rclpy.event_handler import SubscriptionEventCallbacks
        from sensor_msgs.msg import Image

        from headpose_ros.ros import hri

        types = {"roi": NormalizedRegionOfInterest2D, "landmarks": FacialLandmarks, "cropped": Image,
                 "aligned": Image}
        self.node, self.lock, self.hri = node, threading.Lock(), hri
        self.kinds = {k: types[k] for k in kinds}
        self.events = SubscriptionEventCallbacks(use_default_callbacks=False)
        self.subs: dict[str, list] = {}
        self.received: dict[str, dict[str, list]] = {}
        self.tracked: list[tuple[int, list[str]]] = []
        node.create_subscription(IdsList, hri.TRACKED_TOPIC, self.on_tracked, 10)

    def on_tracked(self, msg: Any) -> None:
        ids = list(msg.ids)
        with self.lock:
            self.tracked.append((msg.header.stamp.sec, ids))
            for face_id in [i for i in self.subs if i not in ids]:
                for sub in self.subs.pop(face_id):
                    self.node.destroy_subscription(sub)
            for face_id in [i for i in ids if i not in self.subs]:
                got = self.received.setdefault(face_id, {k: [] for k in self.kinds})
                self.subs[face_id] = [
                    self.node.create_subscription(cls, self.hri.face_topic(face_id, key),
                                                  lambda m, got=got, key=key: got[key].append(m), 10,
                                                  event_callbacks=self.events)
                    for key, cls in self.kinds.items()]


class Probe:
    """A test-side node in a context of its own, spun in a background thread: collects every message of the
    topics it subscribes to (also while the node under test shuts down) and publishes test input."""

    def __init__(self, name: str = "headpose_test_probe"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context going down at close
                if self._stop.is_set():
                    return
                raise

    def collect(self, msg_type: type, topic: str, qos: Any = 100) -> list:
        got: list = []
        self.node.create_subscription(msg_type, topic, got.append, qos)
        return got

    def publisher(self, msg_type: type, topic: str, qos: Any = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    @staticmethod
    def wait_for(condition: Callable[[], Any], timeout: float = TIMEOUT, every: Optional[Callable[[], None]] = None,
                 period: float = 0.1) -> Any:
        """Poll ``condition`` (calling ``every`` first each round, e.g. publish a frame) until it is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if every is not None:
                every()
            value = condition()
            if value:
                return value
            time.sleep(period)
        return condition()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
