"""REP-155 face outputs without ROS: ids, the /humans/faces messages, the crops, and the publisher lifecycle."""

from __future__ import annotations

import dataclasses
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from headpose_ros.estimator.types import FaceBox, FaceResult, HeadPose, Keypoints
from headpose_ros.ros import frames, hri
from headpose_ros.ros.messages import HeaderData, RosbagsTypes

from ros_test_helpers import ASTRONAUT_FACE, astronaut_bgr, sample_face

HEADER = HeaderData(1700000000, 5, "camera_color_optical_frame")


@pytest.fixture(scope="module", params=["humble", "jazzy"])
def types(request) -> RosbagsTypes:
    from rosbags.typesys import Stores

    from test_ros_messages import StrictTypes

    return StrictTypes(Stores.ROS2_HUMBLE if request.param == "humble" else Stores.ROS2_JAZZY)


def roundtrip(types, msg):
    return types.deserialize(types.serialize(msg), msg.__msgtype__)


def face_at(box: FaceBox, eyes=((0.35, 0.45), (0.65, 0.45)), conf: float = 1.0, mesh=None) -> FaceResult:
    """A face with its eyes at fractions of ``box`` (subject's right eye first), nose and ears placed around."""
    frac = np.array([[0.5, 0.65], eyes[0], eyes[1], [0.05, 0.5], [0.95, 0.5]])
    xy = np.array([box.x0, box.y0]) + frac * np.array([box.width, box.height])
    return FaceResult(box=box, keypoints=Keypoints(xy, np.full(5, conf)), pose=HeadPose(0, 0, 0),
                      position=np.array([0.0, 0.0, 1.0]), position_is_ray=True, landmarks=mesh)


# --- ids ----------------------------------------------------------------------------------------------------

def test_tokens_are_five_letters_unique_and_stable_while_the_track_lives():
    ids = hri.FaceIds(seed=1)
    first = ids.update([1, 2], alive=[1, 2])
    assert all(re.fullmatch(r"[a-z]{5}", t) for t in first) and len(set(first)) == 2
    assert ids.update([2], alive=[1, 2]) == [first[1]]  # 1 missed but alive: keeps its token
    assert sorted(ids.live()) == sorted(first)
    assert ids.update([1], alive=[1]) == [first[0]]
    assert ids.live() == [first[0]]  # 2 forgotten
    assert ids.update([3], alive=[1, 3])[0] not in first


def test_tokens_are_not_reissued_among_the_recent_ones_and_memory_is_bounded():
    ids = hri.FaceIds(seed=0, length=2, remember=200)  # 676 two-letter tokens: collisions would be frequent
    issued = [ids.update([i], alive=[i])[0] for i in range(1, 2001)]
    for i in range(len(issued)):
        assert issued[i] not in issued[max(0, i - 200):i]
    assert len(ids._recent_set) == 200 and len(ids.live()) == 1


def test_seeded_tokens_repeat_and_unseeded_runs_differ():
    a, b = hri.FaceIds(seed=3), hri.FaceIds(seed=3)
    assert a.update([1, 2, 3], [1, 2, 3]) == b.update([1, 2, 3], [1, 2, 3])
    runs = {tuple(hri.FaceIds().update([1, 2, 3], [1, 2, 3])) for _ in range(5)}
    assert len(runs) == 5


@pytest.mark.parametrize("prefix", ["", "cam1_", "left", "a"])
def test_ids_are_valid_ros_topic_tokens_and_frame_names(prefix):
    validate = pytest.importorskip("rclpy.validate_full_topic_name").validate_full_topic_name
    for token in hri.FaceIds(seed=5).update(list(range(50)), range(50)):
        face_id = frames.face_id(token, prefix)
        assert face_id[0].isalpha()  # REP-155: 'start with a letter'
        for sub in hri.FACE_TOPICS:
            assert validate(hri.face_topic(face_id, sub))
        assert frames.face_frame(token, prefix) == f"face_{face_id}"
    assert validate(hri.TRACKED_TOPIC)
    with pytest.raises(Exception):
        validate("/humans/faces/3/roi")  # what the integer ids would have given


# --- messages -----------------------------------------------------------------------------------------------

def test_tracked_and_roi_carry_the_image_header_and_normalised_box(types):
    tracked = roundtrip(types, hri.ids_list_msg(types, HEADER, ["abcde", "cam1_fghij"]))
    assert tracked.ids == ["abcde", "cam1_fghij"]
    assert (tracked.header.stamp.sec, tracked.header.stamp.nanosec, tracked.header.frame_id) == \
        (HEADER.sec, HEADER.nanosec, HEADER.frame_id)
    face = face_at(FaceBox(-20.0, 100.0, 300.0, 500.0, 0.8))
    roi = roundtrip(types, hri.roi_msg(types, HEADER, face, (640, 480)))
    assert roi.header.frame_id == HEADER.frame_id
    assert (roi.xmin, roi.ymin, roi.xmax, roi.ymax) == pytest.approx((0.0, 100 / 480, 300 / 640, 1.0), abs=1e-6)
    assert roi.c == pytest.approx(0.8)


def test_the_mesh_mapping_fills_all_70_codes_once_with_names_the_message_defines(types):
    cls = types.get(hri.FACIAL_LANDMARKS)
    codes = [getattr(cls, name) for name in hri.MESH_LANDMARKS]
    assert sorted(codes) == list(range(hri.NUM_FACIAL_LANDMARKS))
    assert all(0 <= i < hri.MESH_POINTS for idx in hri.MESH_LANDMARKS.values() for i in idx)
    for name, rows in hri.KEYPOINT_LANDMARKS.items():
        assert hasattr(cls, name) and all(0 <= r < 5 for r in rows)


def test_landmarks_from_a_mesh(types):
    rng = np.random.default_rng(0)
    mesh = rng.uniform([100, 100], [300, 300], size=(468, 2))
    mesh[152] = (200, 700)  # the chin below the image: not found
    face = face_at(FaceBox(100, 100, 300, 300), conf=0.9, mesh=mesh)
    msg = roundtrip(types, hri.landmarks_msg(types, HEADER, face, (640, 480)))
    cls = types.get(hri.FACIAL_LANDMARKS)
    assert (msg.width, msg.height, msg.header.frame_id) == (640, 480, HEADER.frame_id)
    assert len(msg.landmarks) == 70
    nose = msg.landmarks[cls.NOSE]
    assert (nose.x, nose.y, nose.c) == pytest.approx((mesh[1, 0] / 640, mesh[1, 1] / 480, 0.9), abs=1e-6)
    pupil = msg.landmarks[cls.RIGHT_PUPIL]
    centre = mesh[[33, 133, 159, 145]].mean(axis=0)
    assert (pupil.x, pupil.y) == pytest.approx((centre[0] / 640, centre[1] / 480), abs=1e-6)
    assert pupil.c == pytest.approx(0.9 * hri.PUPIL_CONFIDENCE)
    chin = msg.landmarks[cls.MENTON]
    assert (chin.x, chin.y, chin.c) == (0.0, 0.0, 0.0)
    found = [p for i, p in enumerate(msg.landmarks) if i != cls.MENTON]
    assert all(p.c > 0 and 0 <= p.x <= 1 and 0 <= p.y <= 1 for p in found)


def test_landmarks_from_five_keypoints_fill_only_what_they_give(types):
    face = face_at(FaceBox(100, 100, 300, 300), conf=0.8)
    face.keypoints.confidence[4] = 0.0  # left ear not found
    msg = roundtrip(types, hri.landmarks_msg(types, HEADER, face, (640, 480)))
    cls = types.get(hri.FACIAL_LANDMARKS)
    filled = {i for i, p in enumerate(msg.landmarks) if p.c > 0}
    assert filled == {cls.NOSE, cls.RIGHT_PUPIL, cls.LEFT_PUPIL, cls.RIGHT_EAR, cls.SELLION}
    sellion = msg.landmarks[cls.SELLION]
    mid = face.keypoints.xy[1:3].mean(axis=0)
    assert (sellion.x, sellion.y) == pytest.approx((mid[0] / 640, mid[1] / 480), abs=1e-6)
    assert all((p.x, p.y, p.c) == (0.0, 0.0, 0.0) for i, p in enumerate(msg.landmarks) if i not in filled)


def test_the_mapping_on_a_real_face_mesh_follows_the_68_point_layout(types):
    """On the astronaut's mesh (the default face_mesh source): sides, heights and contour orders as the
    dlib/OpenPose layout hri_msgs follows (subject's right = image left)."""
    from headpose_ros.estimator.errors import BackendUnavailableError
    from headpose_ros.estimator.keypoints.face_mesh import FaceMeshKeypoints

    try:
        source = FaceMeshKeypoints()
    except BackendUnavailableError as exc:
        pytest.skip(f"face mesh unavailable: {exc}")
    (mesh,), _ = source.mesh(astronaut_bgr(), [ASTRONAUT_FACE])
    face = dataclasses.replace(sample_face(box=ASTRONAUT_FACE), landmarks=mesh)
    msg = hri.landmarks_msg(types, HEADER, face, (512, 512))
    cls = types.get(hri.FACIAL_LANDMARKS)

    def p(name):
        pt = msg.landmarks[getattr(cls, name)]
        assert pt.c > 0, name
        return np.array([pt.x, pt.y])

    x = {n: p(n)[0] for n in hri.MESH_LANDMARKS}
    y = {n: p(n)[1] for n in hri.MESH_LANDMARKS}
    for name in hri.MESH_LANDMARKS:  # every RIGHT_ point on the image left of the midline, LEFT_ on the right
        if name.startswith(("RIGHT_", "MOUTH_OUTER_RIGHT", "MOUTH_INNER_RIGHT")) or name.endswith("_RIGHT"):
            assert x[name] < x["SELLION"], name
        if name.startswith("LEFT_") or name.endswith("_LEFT"):
            assert x[name] > x["SELLION"], name
    brows = [n for n in x if "EYEBROW" in n]
    eyes = [n for n in x if "_EYE_" in n or n.endswith("PUPIL")]
    assert max(y[n] for n in brows) < min(y[n] for n in eyes)
    assert y["SELLION"] < y["NOSE_1"] < y["NOSE_2"] < y["NOSE"]
    assert max(y[n] for n in eyes) < y["NOSE"] < min(y[n] for n in x if n.startswith("MOUTH_OUTER_TOP"))
    assert y["MENTON"] == max(y.values())
    for side in ("RIGHT", "LEFT"):
        profile = [f"{side}_EAR"] + [f"{side}_PROFILE_{i}" for i in range(1, 8)] + ["MENTON"]
        assert all(y[a] < y[b] for a, b in zip(profile, profile[1:])), side  # down the jaw to the chin
        assert y[f"{side}_EYE_TOP_1"] < y[f"{side}_EYE_BOTTOM_1"] and y[f"{side}_EYE_TOP_2"] < y[f"{side}_EYE_BOTTOM_2"]
        outside, inside = x[f"{side}_EYE_OUTSIDE"], x[f"{side}_EYE_INSIDE"]
        for part in ("TOP", "BOTTOM"):  # _1 is the one nearer the outside corner
            assert abs(x[f"{side}_EYE_{part}_1"] - outside) < abs(x[f"{side}_EYE_{part}_2"] - outside)
        assert abs(x[f"{side}_EYEBROW_1"] - x[f"{side}_EYEBROW_OUTSIDE"]) < \
            abs(x[f"{side}_EYEBROW_3"] - x[f"{side}_EYEBROW_OUTSIDE"])
        assert min(outside, inside) < x[f"{side}_PUPIL"] < max(outside, inside)
    for prefix in ("MOUTH_OUTER_TOP", "MOUTH_OUTER_BOTTOM", "MOUTH_INNER_TOP", "MOUTH_INNER_BOTTOM", "NOSTRIL"):
        row = sorted((n for n in x if n.startswith(prefix + "_")), key=lambda n: int(n.rsplit("_", 1)[1]))
        assert all(x[a] < x[b] for a, b in zip(row, row[1:])), prefix  # numbered from the subject's right
    assert y["MOUTH_OUTER_TOP_3"] < y["MOUTH_INNER_TOP_2"] < y["MOUTH_INNER_BOTTOM_2"] < y["MOUTH_OUTER_BOTTOM_3"]


# --- crops --------------------------------------------------------------------------------------------------

def test_cropped_is_the_box_scaled_centred_and_zero_padded():
    img = np.zeros((480, 640, 3), np.uint8)
    img[100:200, 200:400] = (10, 200, 30)  # a 200 x 100 box's content
    crop = hri.cropped_face(img, face_at(FaceBox(200, 100, 400, 200)))
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    rows = np.flatnonzero(crop[:, 64, 1] > 100)
    assert rows[0] in (32, 33) and rows[-1] in (94, 95)  # 200 -> 128 wide, so 100 -> 64 tall, centred
    assert not crop[:30].any() and not crop[98:].any()  # 0-padded above and below
    assert np.all(crop[40:90, 5:123] == (10, 200, 30))
    wide = hri.cropped_face(img, face_at(FaceBox(200, 100, 400, 200)), size=(64, 32))
    assert wide.shape == (32, 64, 3) and np.all(wide[2:30, 2:62] == (10, 200, 30))  # aspect kept, fills it


def test_cropped_pads_with_zeros_where_the_box_leaves_the_image():
    img = np.full((480, 640, 3), 255, np.uint8)
    crop = hri.cropped_face(img, face_at(FaceBox(-100, 0, 100, 200)))  # left half outside the image
    assert not crop[:, :60].any() and np.all(crop[:, 68:] == 255)


def test_large_faces_are_area_averaged_not_aliased():
    checker = ((np.indices((1200, 1200)).sum(axis=0) % 2) * 255).astype(np.uint8)
    img = np.repeat(checker[:, :, None], 3, axis=2)
    crop = hri.cropped_face(img, face_at(FaceBox(0, 0, 1200, 1200)))  # 1200 px -> 128 px
    inner = crop[4:-4, 4:-4].astype(float)
    assert abs(inner.mean() - 127.5) < 5 and inner.std() < 10


@pytest.mark.parametrize("roll", [0.0, 25.0, -40.0, 180.0])
def test_aligned_levels_the_eyes_with_the_subjects_right_eye_on_the_left(roll):
    img = np.zeros((480, 640, 3), np.uint8)
    centre, half = np.array([320.0, 240.0]), 50.0
    a = math.radians(roll)
    direction = np.array([math.cos(a), math.sin(a)])  # from the subject's right eye to the left eye
    right, left = centre - half * direction, centre + half * direction
    cv2 = pytest.importorskip("cv2")
    cv2.circle(img, tuple(int(round(v)) for v in right), 6, (0, 0, 255), -1)  # red: subject's right eye
    cv2.circle(img, tuple(int(round(v)) for v in left), 6, (255, 0, 0), -1)  # blue: left eye
    box = FaceBox(220, 140, 420, 340)
    face = face_at(box)
    face.keypoints.xy[1], face.keypoints.xy[2] = right, left
    out = hri.aligned_face(img, face)
    assert out.shape == (128, 128, 3)
    red = np.argwhere(out[:, :, 2] > 128).mean(axis=0)
    blue = np.argwhere(out[:, :, 0] > 128).mean(axis=0)
    assert abs(red[0] - blue[0]) < 1.0  # same row: level
    assert red[1] < blue[1]  # subject's right eye on the image left, as on an upright face
    assert abs((blue[1] - red[1]) - 2 * half * 128 / 200) < 2.0  # same scale as cropped
    face.keypoints.confidence[2] = 0.1
    assert hri.aligned_face(img, face) is None  # eyes not known: no aligned image


def test_face_messages_are_bgr8_images_with_the_image_header(types):
    img = astronaut_bgr()
    face = face_at(ASTRONAUT_FACE)
    msgs = {k: roundtrip(types, v) for k, v in hri.face_messages(types, HEADER, img, face).items()}
    assert list(msgs) == ["roi", "landmarks", "cropped", "aligned"]
    for key in ("cropped", "aligned"):
        m = msgs[key]
        assert (m.width, m.height, m.encoding, m.step) == (128, 128, "bgr8", 384)
        assert m.header.frame_id == HEADER.frame_id and m.header.stamp.nanosec == HEADER.nanosec
    bad = face_at(FaceBox(float("nan"), 10.0, 50.0, 60.0))
    assert list(hri.face_messages(types, HEADER, img, bad)) == ["roi", "landmarks"]  # no image of a broken box
    assert list(hri.face_messages(types, HEADER, img, face_at(FaceBox(10, 10, 10.5, 60)))) == ["roi", "landmarks"]
    only = hri.face_messages(types, HEADER, img, face, size=(96, 64), wanted=("cropped",))
    assert list(only) == ["cropped"] and (only["cropped"].width, only["cropped"].height) == (96, 64)


# --- the publisher manager ----------------------------------------------------------------------------------

class FakeBackend:
    """Records create/destroy/publish; ``listening`` are the topics with subscribers (None: don't say)."""

    def __init__(self, listening=None):
        self.live: dict[int, tuple[str, str]] = {}
        self.sent: list[tuple[str, object]] = []
        self.created = self.destroyed = 0
        self._next = 0
        self.listening = listening
        if listening is not None:
            self.subscribed = lambda handle: self.live[handle][1] in self.listening

    def create(self, msg_type, topic):
        assert topic not in {t for _, t in self.live.values()}, f"{topic} created twice"
        self._next += 1
        self.live[self._next] = (msg_type, topic)
        self.created += 1
        return self._next

    def destroy(self, handle):
        del self.live[handle]
        self.destroyed += 1

    def publish(self, handle, msg):
        msg_type, topic = self.live[handle]
        assert msg.__msgtype__ == msg_type
        self.sent.append((topic, msg))


def frame(faces, tokens, live=None, image=None):
    return SimpleNamespace(header=HEADER, image=np.zeros((480, 640, 3), np.uint8) if image is None else image,
                           faces=faces, face_ids=list(tokens), live_face_ids=list(live if live is not None else tokens))


def test_a_face_gets_its_topics_when_seen_and_loses_them_when_forgotten():
    backend = FakeBackend()
    topics = hri.FaceTopics(RosbagsTypes(), backend)
    assert [t for _, t in backend.live.values()] == [hri.TRACKED_TOPIC]
    f = face_at(FaceBox(100, 100, 200, 200))
    step = topics.update(frame([f], ["abcde"]))
    assert step.created == ["abcde"] and step.tracked == ["abcde"]
    assert sorted(t for _, t in backend.live.values()) == sorted(
        [hri.TRACKED_TOPIC] + [f"/humans/faces/abcde/{s}" for s in ("roi", "landmarks", "cropped", "aligned")])
    assert step.published == [f"/humans/faces/abcde/{s}" for s in ("roi", "landmarks", "cropped", "aligned")] + \
        [hri.TRACKED_TOPIC]  # the face's messages, then the list that names it
    step = topics.update(frame([], [], live=["abcde"]))  # missed, still tracked: topics stay, not listed
    assert step.tracked == [] and step.destroyed == [] and topics.face_count == 1
    assert backend.sent[-1][1].ids == []
    step = topics.update(frame([], [], live=[]))  # forgotten
    assert step.destroyed == ["abcde"] and topics.publisher_count == 1 and len(backend.live) == 1
    assert topics.close() == [] and backend.live == {} and topics.publisher_count == 0


def test_images_and_landmarks_are_built_only_for_topics_someone_listens_to():
    backend = FakeBackend(listening={"/humans/faces/abcde/cropped"})
    topics = hri.FaceTopics(RosbagsTypes(), backend)
    step = topics.update(frame([face_at(FaceBox(100, 100, 200, 200))], ["abcde"]))
    assert step.published == ["/humans/faces/abcde/roi", "/humans/faces/abcde/cropped", hri.TRACKED_TOPIC]
    backend.listening = {"/humans/faces/abcde/landmarks"}
    step = topics.update(frame([face_at(FaceBox(100, 100, 200, 200))], ["abcde"]))
    assert step.published == ["/humans/faces/abcde/roi", "/humans/faces/abcde/landmarks", hri.TRACKED_TOPIC]


def test_prefix_names_the_topics_and_a_change_moves_them():
    backend = FakeBackend()
    topics = hri.FaceTopics(RosbagsTypes(), backend)
    f = face_at(FaceBox(100, 100, 200, 200))
    assert topics.update(frame([f], ["abcde"]), prefix="cam1_").tracked == ["cam1_abcde"]
    assert "/humans/faces/cam1_abcde/roi" in {t for _, t in backend.live.values()}
    step = topics.update(frame([f], ["abcde"]), prefix="cam2_")
    assert step.destroyed == ["cam1_abcde"] and step.created == ["cam2_abcde"] and topics.face_count == 1


def test_a_thousand_faces_in_sequence_keep_the_publishers_bounded():
    """People come and go: 1000 different faces, up to three at a time (face n is seen in frames 3n to 3n + 8),
    each kept max_missed frames after it was last seen before its track is forgotten (as the core reports it)."""
    backend = FakeBackend(listening=set())  # nobody subscribes: no images built (fast)
    topics = hri.FaceTopics(RosbagsTypes(), backend)
    ids = hri.FaceIds(seed=0)
    max_missed, alive, last_seen, peak = 2, [], {}, 0
    f = face_at(FaceBox(100, 100, 200, 200))
    seen_ids: set[str] = set()
    for t in range(3200):
        present = [n for n in range(max(0, t // 3 - 3), t // 3 + 1) if n < 1000 and 3 * n <= t <= 3 * n + 8]
        for n in present:
            last_seen[n] = t
        alive = [n for n in last_seen if t - last_seen[n] <= max_missed]
        tokens = ids.update(present, alive)
        step = topics.update(frame([f] * len(present), tokens, live=ids.live()))
        seen_ids |= set(step.tracked)
        peak = max(peak, topics.publisher_count, len(backend.live))
        for n in [n for n in last_seen if n not in alive]:
            del last_seen[n]
    assert len(seen_ids) == 1000
    assert backend.created == 1 + 4 * 1000 and backend.destroyed == 4 * 1000
    assert peak <= 1 + 4 * 5 and topics.publisher_count == 1  # at most 5 faces alive at once, all gone now


def test_cost_function_reports_each_message_kind():
    img = astronaut_bgr()
    result = SimpleNamespace(header=HEADER, image=img, faces=[face_at(ASTRONAUT_FACE)] * 2)
    cost = hri.time_face_messages(RosbagsTypes(), result)
    assert cost["faces"] == 2 and set(cost) == {"roi", "landmarks", "cropped", "aligned", "faces"}
    assert all(cost[k] > 0 for k in hri.FACE_TOPICS)


def test_shipped_hri_msgs_definitions_match_the_installed_package():
    """The .msg texts shipped for rosbags give the fields and constants of the hri_msgs package's own classes."""
    msgs = pytest.importorskip("hri_msgs.msg", reason="needs the hri_msgs package")
    store = RosbagsTypes().typestore
    for name in ("IdsList", "NormalizedRegionOfInterest2D", "NormalizedPointOfInterest2D", "FacialLandmarks"):
        cls = getattr(msgs, name)
        consts, fields = store.fielddefs[f"hri_msgs/msg/{name}"]
        assert [f for f, _ in fields] == list(cls.get_fields_and_field_types()), name
        assert {c: v for c, _, v in consts} == {c: getattr(cls, c) for c, _, _ in consts}, name
    landmarks = store.fielddefs["hri_msgs/msg/FacialLandmarks"][0]
    assert len(landmarks) == 70 and all(hasattr(msgs.FacialLandmarks, c) for c, _, _ in landmarks)
