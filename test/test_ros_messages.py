"""Message building: every message serialised with the ROS 2 definitions of rosbags' typestore and read back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from headpose_ros.estimator import geometry
from headpose_ros.estimator.types import HeadPose
from headpose_ros.ros import messages
from headpose_ros.ros.messages import DiagnosticData, HeaderData, RosbagsTypes

from ros_test_helpers import sample_face

HEADER = HeaderData(1700000000, 123456789, "camera_color_optical_frame")
_FLOATS = {"float32", "float64"}
_INTS = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "byte", "char"}


class StrictTypes(RosbagsTypes):
    """RosbagsTypes that also checks what rclpy's generated classes assert: every field present, floats are
    Python floats, integers Python ints (not bool, not numpy), strings str, nested messages the right class."""

    def make(self, typename, **fields):
        defs = dict(self.typestore.fielddefs[typename][1])
        assert set(fields) == set(defs), f"{typename}: fields {sorted(fields)} != {sorted(defs)}"
        for name, value in fields.items():
            kind, spec = defs[name]
            if kind.name == "BASE":
                base = spec[0]
                if base in _FLOATS:
                    assert type(value) is float, f"{typename}.{name} = {value!r} is not a float"
                elif base in _INTS:
                    assert type(value) is int, f"{typename}.{name} = {value!r} is not an int"
                elif base == "bool":
                    assert type(value) is bool, f"{typename}.{name} = {value!r} is not a bool"
                elif base == "string":
                    assert type(value) is str, f"{typename}.{name} = {value!r} is not a str"
            elif kind.name == "NAME":
                assert getattr(value, "__msgtype__", None) == spec, f"{typename}.{name} is not a {spec}"
            elif kind.name == "SEQUENCE" and spec[0][0].name == "NAME":
                assert isinstance(value, list), f"{typename}.{name} must be a list"
                assert all(v.__msgtype__ == spec[0][1] for v in value)
        return super().make(typename, **fields)


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def types(request) -> StrictTypes:
    from rosbags.typesys import Stores

    return StrictTypes(Stores.ROS2_HUMBLE if request.param == "humble" else Stores.ROS2_JAZZY)


def roundtrip(types: RosbagsTypes, msg):
    data = types.serialize(msg)
    assert len(data) > 0
    return types.deserialize(data, msg.__msgtype__)


def stamp_of(msg) -> tuple[int, int, str]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id


def quat(q) -> np.ndarray:
    return np.array([q.x, q.y, q.z, q.w])


def axes(q) -> np.ndarray:
    """Columns: the rotated frame's x, y, z axes in the parent frame."""
    return Rotation.from_quat(quat(q)).as_matrix()


def test_pose_stamped_roundtrip_keeps_header_position_and_face_orientation(types):
    face = sample_face(yaw=20, pitch=-5, roll=3, position=(0.1, -0.05, 1.2))
    back = roundtrip(types, messages.pose_stamped(types, HEADER, face))
    assert stamp_of(back) == (HEADER.sec, HEADER.nanosec, HEADER.frame_id)
    p = back.pose.position
    assert (p.x, p.y, p.z) == pytest.approx((0.1, -0.05, 1.2))
    expected = geometry.quaternion_from_ypr(HeadPose(20, -5, 3), frame="face")
    assert geometry.quaternion_angle_deg(quat(back.pose.orientation), expected) < 1e-6


def test_frontal_face_frame_axes_follow_rep155():
    q = messages.head_orientation(HeadPose(0, 0, 0))
    r = Rotation.from_quat(q).as_matrix()
    np.testing.assert_allclose(r[:, 0], [0, 0, -1], atol=1e-9)  # x out of the face: toward the camera
    np.testing.assert_allclose(r[:, 1], [1, 0, 0], atol=1e-9)  # y to the subject's left: image right
    np.testing.assert_allclose(r[:, 2], [0, -1, 0], atol=1e-9)  # z to the top of the head: image up


def test_yaw_positive_points_face_x_to_image_left_and_pitch_positive_up(types):
    left = roundtrip(types, messages.pose_stamped(types, HEADER, sample_face(yaw=30)))
    assert axes(left.pose.orientation)[0, 0] < -0.4  # optical x of the facing direction < 0: image left
    up = roundtrip(types, messages.pose_stamped(types, HEADER, sample_face(pitch=30)))
    assert axes(up.pose.orientation)[1, 0] < -0.4  # optical y < 0: image up
    cw = roundtrip(types, messages.pose_stamped(types, HEADER, sample_face(roll=30)))
    z = axes(cw.pose.orientation)[:, 2]  # top of the head turns clockwise on screen: toward image right
    assert z[0] > 0.4 and z[1] < 0


@settings(max_examples=40, deadline=None)
@given(st.floats(-80, 80), st.floats(-60, 60), st.floats(-60, 60))
def test_orientation_roundtrips_to_the_same_angles(yaw, pitch, roll):
    types = RosbagsTypes()
    back = roundtrip(types, messages.pose_stamped(types, HEADER, sample_face(yaw, pitch, roll)))
    pose = geometry.ypr_from_quaternion(quat(back.pose.orientation), frame="face")
    assert pose.as_array() == pytest.approx([yaw, pitch, roll], abs=1e-6)


def test_pose_array_keeps_order_and_header(types):
    faces = [sample_face(yaw=10, position=(0, 0, 1)), sample_face(yaw=-40, position=(0.5, 0, 2))]
    back = roundtrip(types, messages.pose_array(types, HEADER, faces))
    assert stamp_of(back) == (HEADER.sec, HEADER.nanosec, HEADER.frame_id)
    assert [p.position.z for p in back.poses] == [1.0, 2.0]
    empty = roundtrip(types, messages.pose_array(types, HEADER, []))
    assert empty.poses == []


def test_tf_message_has_face_child_of_camera_and_gaze_child_of_face(types):
    faces = [sample_face(yaw=25, pitch=10, position=(0.2, 0.1, 1.5)), sample_face(yaw=-10)]
    tfs = messages.head_transforms(types, HEADER, faces, ["abcde", "fghij"], prefix="cam1_")
    back = roundtrip(types, messages.tf_message(types, tfs))
    names = [(t.header.frame_id, t.child_frame_id) for t in back.transforms]
    assert names == [(HEADER.frame_id, "face_cam1_abcde"), ("face_cam1_abcde", "gaze_cam1_abcde"),
                     (HEADER.frame_id, "face_cam1_fghij"), ("face_cam1_fghij", "gaze_cam1_fghij")]
    assert all((t.header.stamp.sec, t.header.stamp.nanosec) == (HEADER.sec, HEADER.nanosec) for t in back.transforms)
    face_tf, gaze_tf = back.transforms[0].transform, back.transforms[1].transform
    t = face_tf.translation
    assert (t.x, t.y, t.z) == pytest.approx((0.2, 0.1, 1.5))
    g = gaze_tf.translation
    assert (g.x, g.y, g.z) == (0.0, 0.0, 0.0)  # collocated
    # gaze z (in the camera) = face x = the facing direction; gaze x = subject's right = -face y
    r_face = axes(face_tf.rotation)
    r_gaze = r_face @ axes(gaze_tf.rotation)
    np.testing.assert_allclose(r_gaze[:, 2], r_face[:, 0], atol=1e-9)
    np.testing.assert_allclose(r_gaze[:, 0], -r_face[:, 1], atol=1e-9)
    np.testing.assert_allclose(r_face[:, 0], geometry.facing_direction(HeadPose(25, 10, 0)), atol=1e-9)


def test_markers_add_arrow_and_label_and_delete_heads_that_left(types):
    faces = [sample_face(yaw=15, position=(0, 0, 1))]
    back = roundtrip(types, messages.marker_array(types, HEADER, faces, [4], ["vwxyz"], gone_ids=[2, 4],
                                                  primary_id=4))
    cls = types.get("visualization_msgs/msg/Marker")
    kinds = [(m.ns, m.id, m.type, m.action) for m in back.markers]
    assert kinds == [
        (messages.ARROW_NS, 4, cls.ARROW, cls.ADD), (messages.LABEL_NS, 4, cls.TEXT_VIEW_FACING, cls.ADD),
        (messages.ARROW_NS, 2, cls.ARROW, cls.DELETE), (messages.LABEL_NS, 2, cls.ARROW, cls.DELETE),
    ]
    arrow, label = back.markers[0], back.markers[1]
    assert stamp_of(arrow) == (HEADER.sec, HEADER.nanosec, HEADER.frame_id)
    assert (arrow.color.r, arrow.color.g, arrow.color.b) == pytest.approx(messages.PRIMARY_RGBA[:3])
    assert geometry.quaternion_angle_deg(quat(arrow.pose.orientation), messages.head_orientation(HeadPose(15, 0, 0))) \
        < 1e-6
    assert "face_vwxyz" in label.text and "yaw +15" in label.text  # named like its TF frame
    assert label.pose.position.y < 0  # above the head (optical -y is up)
    assert all(stamp_of(m) == (HEADER.sec, HEADER.nanosec, HEADER.frame_id) for m in back.markers)
    cleared = roundtrip(types, messages.delete_all_markers(types, HEADER))
    assert {m.action for m in cleared.markers} == {cls.DELETEALL}


def test_debug_image_is_bgr8_with_the_input_header(types):
    img = np.zeros((3, 4, 3), np.uint8)
    img[1, 2] = (10, 20, 30)
    back = roundtrip(types, messages.image_msg(types, HEADER, img))
    assert stamp_of(back) == (HEADER.sec, HEADER.nanosec, HEADER.frame_id)
    assert (back.height, back.width, back.step, back.encoding, back.is_bigendian) == (3, 4, 12, "bgr8", 0)
    np.testing.assert_array_equal(np.asarray(back.data).reshape(3, 4, 3), img)


def test_diagnostics_levels_and_values(types):
    status = DiagnosticData("WARN", "headpose_node: head pose", "slow", "/CPU:0",
                            {"total_ms_mean": 12.3456, "faces": 2, "device": "/CPU:0"})
    back = roundtrip(types, messages.diagnostic_array(types, HeaderData(5, 6, ""), [status]))
    cls = types.get("diagnostic_msgs/msg/DiagnosticStatus")
    s = back.status[0]
    assert (s.level, s.name, s.message, s.hardware_id) == (cls.WARN, "headpose_node: head pose", "slow", "/CPU:0")
    assert {kv.key: kv.value for kv in s.values} == {"total_ms_mean": "12.346", "faces": "2", "device": "/CPU:0"}
    with pytest.raises(ValueError, match="level"):
        messages.diagnostic_array(types, HEADER, [DiagnosticData("BAD", "n", "m")])


def test_header_data_conversions():
    h = HeaderData.from_ns(1_700_000_000_123_456_789, "cam")
    assert (h.sec, h.nanosec, h.ns) == (1_700_000_000, 123_456_789, 1_700_000_000_123_456_789)
    assert h.seconds == pytest.approx(1_700_000_000.123456789)


def test_frame_outputs_yields_what_the_node_publishes(types) -> None:
    from types import SimpleNamespace

    header = HeaderData(5, 6, "cam_optical")
    face = sample_face(yaw=20.0)
    seen = SimpleNamespace(header=header, faces=[face], ids=[3], face_ids=["abcde"], gone_ids=[], primary_id=3,
                           primary_face=face)
    out = messages.frame_outputs(types, seen, publish_tf=True, markers=True, prefix="")
    assert list(out) == ["head_pose", "head_poses", "transforms", "markers"]
    assert [tf.child_frame_id for tf in out["transforms"]] == ["face_abcde", "gaze_abcde"]
    for key in ("head_pose", "head_poses"):
        assert roundtrip(types, out[key]).header.stamp.sec == 5
    assert all(m.header.stamp.sec == 5 for m in roundtrip(types, out["markers"]).markers)
    tf = roundtrip(types, messages.tf_message(types, out["transforms"]))
    assert tf.transforms[0].header.frame_id == "cam_optical"
    # no face now, one gone: poses (empty) and the DELETE markers; no head_pose, no transforms
    empty = SimpleNamespace(header=header, faces=[], ids=[], face_ids=[], gone_ids=[3], primary_id=None,
                            primary_face=None)
    out = messages.frame_outputs(types, empty, publish_tf=True, markers=True)
    assert list(out) == ["head_poses", "markers"] and len(out["head_poses"].poses) == 0
    assert {m.action for m in out["markers"].markers} == {2}  # visualization_msgs/Marker DELETE
    # nothing to show, TF and markers off
    assert list(messages.frame_outputs(types, seen, publish_tf=False, markers=False)) == ["head_pose", "head_poses"]
