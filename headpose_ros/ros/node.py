"""``headpose_node``: camera images in, ``/head_pose``, ``/head_poses``, REP-155 TF frames, markers, a debug
image and diagnostics out. The only module of the package that imports ROS.

Threads: one executor in the main thread runs the subscriptions, the diagnostics timer and the parameter
services; its callbacks never wait on the estimator. It is rclpy's EventsExecutor where rclpy has it (Jazzy's
7.1.4 and newer; the ``executor`` parameter), else a SingleThreadedExecutor: the EventsExecutor dispatches from
C++ and lets the worker have the GIL as soon as the image callback returns, where the SingleThreadedExecutor first
rebuilds its wait set in Python (:func:`make_executor`). The estimator runs in a
:class:`~headpose_ros.estimator.stream.LatestFrameProcessor` worker that always takes the newest frame (older
pending frames are skipped and counted) and publishes its results itself, ``/head_pose`` first. A
MultiThreadedExecutor was measured to keep a core busy in its wait loop and to slow the node to a third of the
estimator's rate on 2 cores. :func:`run`, the process entry point, also sets glibc's malloc to keep image-sized
buffers (:mod:`headpose_ros.ros.memory`).

Start and stop: ``/tf`` is published with tf2_ros's TransformBroadcaster when tf2_ros is importable, else as
``tf2_msgs/TFMessage`` on ``/tf`` directly (the same QoS); without tf2_msgs the node runs without TF and says so.
SIGINT, SIGTERM and SIGHUP are handled by the node, not by rclpy: the executor stops, the worker finishes its frame,
the last messages (DELETEALL markers) go out, and only then is the context shut down.
"""

from __future__ import annotations

import array
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional

from ..estimator.errors import HeadPoseError, ImageError
from ..estimator.stream import LatestFrameProcessor
from ..estimator.types import CameraIntrinsics
from . import messages, params
from .core import CoreResult, HeadPoseCore
from .diagnostics import DiagnosticsWindow, Thresholds
from .image_codec import ImageDecodeError

NODE_NAME = "headpose_node"

try:  # ROS 2 Python; without it main() says so in one line
    import rclpy
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                    SetParametersResult)
    from rclpy.duration import Duration
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    _ROS_IMPORT_ERROR: Optional[ImportError] = None
except ImportError as _exc:  # pragma: no cover - exercised on machines without ROS
    rclpy = None  # type: ignore[assignment]
    Node = object  # type: ignore[assignment,misc]
    _ROS_IMPORT_ERROR = _exc

#: Seconds of images without any camera_info before the node warns (then at most every CAMERA_INFO_WARN_S).
CAMERA_INFO_GRACE_S = 5.0
CAMERA_INFO_WARN_S = 30.0
#: Environment variable naming a JSON file: the node then records when each frame passed each step (for
#: ``headpose-ros bench-ros``'s latency breakdown) and writes the records there when it closes.
TRACE_ENV = "HEADPOSE_TRACE_FILE"
TRACE_MAX_FRAMES = 100_000


class FrameTrace:
    """Per-frame wall-clock times (``time.time()``, seconds) of the steps from an image's arrival to its
    ``/head_pose``, keyed by the image stamp: ``received`` (image callback), ``started`` (worker takes it),
    ``processed`` (decoded, estimated, tracked), ``estimator_ms`` (the estimator's own stages),
    ``head_pose`` (``/head_pose`` published). At most :data:`TRACE_MAX_FRAMES` frames."""

    def __init__(self, path: str):
        self.path = path
        self.frames: list[dict[str, float]] = []
        self.started = 0.0

    def add(self, header: Any, received: float, processed: float, estimator_ms: float, head_pose: float) -> None:
        if len(self.frames) < TRACE_MAX_FRAMES:
            self.frames.append({"sec": header.sec, "nanosec": header.nanosec, "received": received,
                                "started": self.started, "processed": processed, "estimator_ms": estimator_ms,
                                "head_pose": head_pose})

    def write(self) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(self.frames, f)


class RclpyTypes:
    """Message classes from the ROS Python message packages (``geometry_msgs.msg`` ...), for
    :mod:`headpose_ros.ros.messages`. ``make`` drops fields a distribution's class lacks."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[type, frozenset[str]]] = {}  # class and its field names, per type

    def _entry(self, typename: str) -> tuple[type, frozenset[str]]:
        entry = self._cache.get(typename)
        if entry is None:
            package, kind, name = typename.split("/")
            cls = getattr(importlib.import_module(f"{package}.{kind}"), name)
            entry = self._cache[typename] = (cls, frozenset(cls.get_fields_and_field_types()))
        return entry

    def get(self, typename: str) -> type:
        return self._entry(typename)[0]

    def make(self, typename: str, **fields: Any) -> Any:
        cls, known = self._entry(typename)
        return cls(**{k: v for k, v in fields.items() if k in known})

    def uint8_array(self, data: bytes) -> Any:
        return array.array("B", data)


def _descriptor(spec: params.ParamSpec) -> "ParameterDescriptor":
    """The ROS descriptor of a spec: its type fixed (a YAML 5 for a double is refused), range, read-only flag."""
    text = spec.description + (f" Range: {spec.describe_range()}." if spec.describe_range() else "")
    text += "" if spec.runtime else " Read-only after start-up."
    kind = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
            float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}[spec.type]
    descriptor = ParameterDescriptor(name=spec.name, type=kind, description=text, read_only=not spec.runtime,
                                     additional_constraints=spec.describe_range())
    if spec.type is float and spec.min is not None and spec.max is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max),
                                                              step=0.0)]
    elif spec.type is int and spec.min is not None and spec.max is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return descriptor


class HeadPoseNode(Node):  # type: ignore[misc,valid-type]
    """The node; raises (HeadPoseError, rclpy's parameter exceptions, ImportError) when it cannot start.

    ``estimator`` replaces the one the parameters describe (tests, embedding); ``node_kwargs`` go to
    ``rclpy.node.Node`` (e.g. ``parameter_overrides``).
    """

    def __init__(self, estimator: Any = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.types = RclpyTypes()
        self.values = self._declare_parameters()
        if estimator is None:
            config = params.estimator_config(self.values)
            self.get_logger().info(f"loading the estimator: detector={config.detector}, keypoints="
                                   f"{config.keypoints}, model={config.model}, device={config.device}")
            from ..estimator.pipeline import HeadPoseEstimator

            estimator = HeadPoseEstimator(config)
        self.core = HeadPoseCore(estimator, self.values)
        self.describe = self.core.estimator.describe()
        self.get_logger().info("ready: " + ", ".join(f"{k}={v}" for k, v in self.describe.items()))
        self.window = DiagnosticsWindow()
        self._intrinsics: Optional[CameraIntrinsics] = None
        self._camera_info_seen = False
        self._first_image_time: Optional[float] = None
        self._last_info_warning = -math.inf
        self._lock = threading.Lock()
        self.trace = FrameTrace(os.environ[TRACE_ENV]) if os.environ.get(TRACE_ENV) else None
        self._make_publishers()
        self.hri_topics = self._make_hri_topics()
        self.processor: LatestFrameProcessor[tuple[Any, Optional[CameraIntrinsics], float], CoreResult] = \
            LatestFrameProcessor(self._process, self._publish, self._on_frame_error,
                                 max_rate=self.values["max_rate"], name="headpose-worker")
        self.processor.start()
        self._make_subscriptions()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # --- set-up ----------------------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        for spec in params.SPECS.values():
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        values = {name: self.get_parameter(name).value for name in params.SPECS}
        return params.validate_all(values)

    def _make_publishers(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray, PoseStamped
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        self.pub_pose = self.create_publisher(PoseStamped, "head_pose", 10)
        self.pub_poses = self.create_publisher(PoseArray, "head_poses", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", 10)
        self.pub_debug = self.create_publisher(Image, "~/debug_image", 2)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.send_transforms = self._make_tf_sender()

    def _make_hri_topics(self) -> Any:
        """The REP-155 face topics (/humans/faces/...), or None when hri.enabled is false or hri_msgs is missing."""
        if not self.values["hri.enabled"]:
            return None
        try:
            import hri_msgs.msg  # noqa: F401
        except ImportError:
            self.get_logger().warning("hri_msgs is not installed: the REP-155 face topics (/humans/faces/...) are "
                                      "off; install hri_msgs or set hri.enabled: false to silence this")
            return None
        from rclpy.event_handler import PublisherEventCallbacks

        from . import hri

        # No QoS-event handlers on these publishers: they are created and destroyed in the worker thread, and rclpy
        # 7.1 kills an executor's spin (InvalidHandle) when an event handler is destroyed while it builds a wait set.
        backend = hri.NodePublishers(self, self.types,
                                     event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
        return hri.FaceTopics(self.types, backend, (self.values["hri.face_width"], self.values["hri.face_height"]),
                              self.values["keypoint_threshold"])

    def _make_tf_sender(self) -> Optional[Callable[[list[Any]], None]]:
        """A function that publishes TransformStamped messages on /tf, or None when TF cannot be published."""
        try:
            from tf2_ros import TransformBroadcaster

            return TransformBroadcaster(self).sendTransform
        except ImportError:
            pass
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.get_logger().warning("tf2_msgs is not importable: no TF frames (face_<id>, gaze_<id>) are published")
            return None
        publisher = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))  # as TransformBroadcaster

        def send(transforms: list[Any]) -> None:
            publisher.publish(TFMessage(transforms=transforms))

        return send

    def _image_qos(self) -> "QoSProfile":
        reliability = (ReliabilityPolicy.RELIABLE if self.values["qos.reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.values["qos.depth"], reliability=reliability,
                          durability=DurabilityPolicy.VOLATILE)

    def _make_subscriptions(self) -> None:
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        qos = self._image_qos()
        compressed = self.values["image_transport"] == "compressed"
        topic = "image/compressed" if compressed else "image"
        self.sub_image = self.create_subscription(
            CompressedImage if compressed else Image, topic, self._on_image, qos)
        self.sub_info = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
        self.timer = self.create_timer(self.values["diagnostics.period_s"], self._publish_diagnostics)
        self.get_logger().info(
            f"subscribed to {self.sub_image.topic_name} ({'CompressedImage' if compressed else 'Image'}, "
            f"{self.values['qos.reliability']}, depth {self.values['qos.depth']}) and {self.sub_info.topic_name}")

    # --- callbacks (executor threads; never wait on the estimator) -----------------------------------
    def _on_image(self, msg: Any) -> None:
        received = time.time()
        self.window.input()
        with self._lock:
            intrinsics = self._intrinsics
        if intrinsics is None and not self._camera_info_seen and self.values["use_camera_info"]:
            self._warn_no_camera_info()
        self.processor.submit((msg, intrinsics, received))

    def _warn_no_camera_info(self) -> None:
        """Images arrive but camera_info never came (often a wrong remapping): say what that means, throttled."""
        now = time.monotonic()
        if self._first_image_time is None:
            self._first_image_time = now
        if now - self._first_image_time < CAMERA_INFO_GRACE_S or now - self._last_info_warning < CAMERA_INFO_WARN_S:
            return
        self._last_info_warning = now
        self.get_logger().warning(
            f"images arrive on {self.sub_image.topic_name} but nothing on {self.sub_info.topic_name}: poses are "
            f"relative to each face's line of sight (not the camera frame) and positions are unit-depth rays. "
            f"Check the camera_info remapping, or set use_camera_info false to silence this.")

    def _on_camera_info(self, msg: Any) -> None:
        self._camera_info_seen = True
        try:
            intrinsics = CameraIntrinsics.from_k(list(msg.k))
        except (ValueError, TypeError):
            intrinsics = None
        if intrinsics is None or not intrinsics.is_valid():
            self.get_logger().warning(
                f"camera_info has no valid intrinsics (K = {list(msg.k)}); positions are unit-depth rays",
                throttle_duration_sec=10.0)
            intrinsics = None
        with self._lock:
            self._intrinsics = intrinsics

    def _on_set_parameters(self, parameters: list["Parameter"]) -> "SetParametersResult":
        changes = {p.name: p.value for p in parameters}
        try:
            merged = params.validate_update(self.values, changes, running=True)
        except params.ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        applied = {k: merged[k] for k in changes if k in params.SPECS}
        self.values = merged
        self.core.apply(applied)
        if "max_rate" in applied:
            self.processor.set_max_rate(merged["max_rate"])
        if applied:
            self.get_logger().info("parameters changed: " + ", ".join(f"{k}={v!r}" for k, v in applied.items()))
        return SetParametersResult(successful=True)

    def _publish_diagnostics(self) -> None:
        status = self.window.report(self.processor.stats(), Thresholds.from_values(self.values),
                                    name=f"{self.get_name()}: head pose", hardware_id=self.describe["device"],
                                    info=self.describe)
        sec, nanosec = self.get_clock().now().seconds_nanoseconds()
        header = messages.HeaderData(int(sec), int(nanosec), "")
        self.pub_diag.publish(messages.diagnostic_array(self.types, header, [status]))

    # --- worker thread ---------------------------------------------------------------------------------
    def _process(self, item: tuple[Any, Optional[CameraIntrinsics], float]) -> CoreResult:
        msg, intrinsics, _ = item
        if self.trace is not None:
            self.trace.started = time.time()
        return self.core.process_msg(msg, intrinsics)

    def _publish(self, item: tuple[Any, Optional[CameraIntrinsics], float], result: CoreResult) -> None:
        t, v, h = self.types, self.values, result.header
        processed = time.time() if self.trace is not None else 0.0
        publishers = {"head_pose": self.pub_pose.publish, "head_poses": self.pub_poses.publish,
                      "transforms": self.send_transforms, "markers": self.pub_markers.publish}
        for name, msg in messages.iter_frame_outputs(t, result, v["publish_tf"], v["markers"], v["tf_prefix"]):
            if publishers[name] is not None:  # no TF sender without tf2_msgs
                publishers[name](msg)
            if name == "head_pose" and self.trace is not None:
                self.trace.add(h, item[2], processed, result.frame.stages_ms.get("total", 0.0), time.time())
        if v["debug_image"] and self.pub_debug.get_subscription_count() > 0:
            from .draw import draw_debug

            drawn = draw_debug(result.image, result.faces, result.face_ids, result.primary_face_id,
                               result.intrinsics, v["keypoint_threshold"], v["tf_prefix"])
            self.pub_debug.publish(messages.image_msg(t, h, drawn))
        if self.hri_topics is not None:
            self.hri_topics.keypoint_threshold = v["keypoint_threshold"]
            self.hri_topics.update(result, v["tf_prefix"])
        self.window.result(result.frame.stages_ms, len(result.faces))

    def _on_frame_error(self, item: Any, exc: BaseException) -> None:
        if not self.context.ok():  # shutting down: publishing failed because the context is gone
            return
        bad_image = isinstance(exc, (ImageDecodeError, ImageError))
        self.window.failure(bad_image, f"{type(exc).__name__}: {exc}")
        what = "bad image" if bad_image else f"processing failed ({type(exc).__name__})"
        self.get_logger().warning(f"frame skipped, {what}: {exc}", throttle_duration_sec=5.0)

    # --- shutdown --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker (after its current frame), clear the markers, release the backends."""
        if not self.processor.stop(timeout=10.0):
            self.get_logger().warning("the estimator worker did not stop within 10 s; exiting anyway")
        if self.hri_topics is not None:
            try:
                self.hri_topics.close()  # the worker, the only other user, has stopped
            except Exception:  # noqa: BLE001 - the context may be gone already
                pass
        try:
            if self.context.ok():
                self.pub_markers.publish(messages.delete_all_markers(self.types, messages.HeaderData(0, 0, "")))
                self.pub_markers.wait_for_all_acked(Duration(seconds=1.0))  # delivered before the context goes
        except Exception:  # noqa: BLE001 - the context may be gone already
            pass
        self.core.close()
        if self.trace is not None:
            self.trace.write()


def make_executor(choice: str, logger: Any = None) -> Any:
    """The executor the ``executor`` parameter names: rclpy's EventsExecutor for ``events`` and ``auto`` where
    rclpy has it (7.1.4 and newer), else a SingleThreadedExecutor (``events`` without it is logged as a warning).

    The EventsExecutor dispatches callbacks from C++ and releases the GIL as soon as a callback returns, so the
    estimator's worker thread starts on a frame at once; the SingleThreadedExecutor rebuilds its wait set in
    Python after every callback first (see docs/speed.md for the measured difference).
    """
    if choice in ("auto", "events"):
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            if choice == "events" and logger is not None:
                logger.warning("executor: events needs rclpy's EventsExecutor (rclpy 7.1.4 or newer); using the "
                               "SingleThreadedExecutor")
        else:
            if logger is not None:
                logger.info("executor: rclpy's EventsExecutor")
            return EventsExecutor()
    if logger is not None:
        logger.info("executor: rclpy's SingleThreadedExecutor")
    return SingleThreadedExecutor()


def _fail(message: str) -> int:
    if rclpy is not None:
        rclpy.logging.get_logger(NODE_NAME).fatal(message)
    else:
        print(f"[FATAL] [{NODE_NAME}]: {message}", file=sys.stderr)
    return 1


def stop_with_parent(stop: threading.Event) -> bool:
    """Ask Linux to send this process SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``); True if set.

    The launch file asks for it (``HEADPOSE_STOP_WITH_PARENT=1``): ``ros2 launch`` on Jazzy answers SIGTERM by
    exiting at once without stopping its processes ("using SIGTERM can result in orphaned processes"). With this
    the node then gets SIGTERM too and stops cleanly instead of running on as an orphan.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
        return False
    if os.getppid() != parent:  # the parent died before prctl took effect
        stop.set()
    return True


def main(args: Optional[list[str]] = None) -> int:
    """Console entry point: runs the node, then ends the process at once with :func:`run`'s exit status.

    Everything the node owns is released by then; what is skipped is the interpreter's own teardown of
    TensorFlow and MediaPipe, which took 2.5 s here, so that a stopped node exits well within ``ros2 launch``'s
    5 s before it escalates SIGINT to SIGTERM.
    """
    code = run(args)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(args: Optional[list[str]] = None) -> int:
    """The node's life: 0 after a clean shutdown (SIGINT, SIGTERM, SIGHUP), 1 when it cannot start."""
    from ..estimator.quiet import quiet_logs
    from .memory import keep_image_buffers

    keep_image_buffers()  # images reuse freed buffers instead of page-faulting fresh ones (see memory.py)
    quiet_logs()  # before TensorFlow and MediaPipe load: the node speaks through ROS logging only
    if rclpy is None:
        return _fail(f"ROS 2 Python (rclpy) is not importable ({_ROS_IMPORT_ERROR}); source "
                     f"/opt/ros/<distro>/setup.bash and your workspace's install/setup.bash")
    stop = threading.Event()
    # Our handlers, not rclpy's: rclpy's would shut the context down before close() could publish. A second
    # signal (a terminal's Ctrl-C reaches both ros2 launch and the node) only sets the same flag again.
    # SIGHUP too: a launch that dies takes the node's terminal with it.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    if os.environ.get("HEADPOSE_STOP_WITH_PARENT") == "1":
        stop_with_parent(stop)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node: Optional[HeadPoseNode] = None
    try:
        node = HeadPoseNode()
    except (HeadPoseError, ImportError, OSError) as exc:
        code = _fail(f"cannot start: {exc}")
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback wall
        code = _fail(f"cannot start: {type(exc).__name__}: {exc}")
    else:
        code = 0
    if node is None:
        rclpy.try_shutdown()
        return code
    executor = make_executor(node.values["executor"], node.get_logger())
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.2)  # Python runs the signal handlers between two waits
    except ExternalShutdownException:
        pass
    finally:
        node.close()  # the worker finishes its frame, the DELETEALL markers go out: the context is still up
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0  # the handlers stay: a late SIGTERM from ros2 launch must not kill the exiting process


if __name__ == "__main__":
    sys.exit(main())
