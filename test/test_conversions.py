"""Message <-> numpy conversion (jepa_agent.data.messages decodes, jepa_agent.ros.conversions builds): encodings,
row padding, bad sizes, joints by name."""
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_agent.data.quality import LIMIT_MARGIN_RAD
from jepa_agent.data.messages import (MAX_IMAGE_PIXELS, MessageError, duration_to_sec, image_to_rgb, joint_positions,
                                      position_xy, trajectory_points)
from jepa_agent.ros.conversions import make_trajectory, rgb_to_image, sec_to_duration

RGB = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def image(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    """Image with each row followed by `pad` junk bytes, as some drivers send."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    padded = np.concatenate([rows, np.full((h, pad), 0xEE, np.uint8)], axis=1)
    return Image(height=h, width=w, encoding=encoding, step=padded.shape[1], data=padded.tobytes())


def test_rgb_round_trip_is_exact():
    msg = rgb_to_image(RGB, frame_id='cam')
    assert (msg.encoding, msg.step, msg.header.frame_id) == ('rgb8', 21, 'cam')
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize('pad', [0, 3])
def test_bgr8_and_rgb8_with_row_padding(pad):
    np.testing.assert_array_equal(image_to_rgb(image(RGB, 'rgb8', pad)), RGB)
    np.testing.assert_array_equal(image_to_rgb(image(RGB[:, :, ::-1].copy(), 'bgr8', pad)), RGB)


def test_mono8_becomes_grey_rgb_and_rgba_drops_alpha():
    grey = RGB[:, :, 0]
    out = image_to_rgb(image(grey[:, :, None], 'mono8', pad=1))
    assert out.shape == (5, 7, 3) and np.all(out == grey[:, :, None])
    rgba = np.concatenate([RGB, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(image_to_rgb(image(rgba, 'rgba8')), RGB)


@pytest.mark.parametrize('mutate, needle', [
    (lambda m: setattr(m, 'encoding', '16UC1'), 'unsupported image encoding'),
    (lambda m: setattr(m, 'step', 20), 'bad image geometry'),
    (lambda m: setattr(m, 'height', 0), 'bad image geometry'),
    (lambda m: setattr(m, 'data', bytes(m.data)[:-1]), 'bytes, expected'),
])
def test_bad_images_raise_message_errors(mutate, needle):
    msg = image(RGB, 'rgb8')
    mutate(msg)
    with pytest.raises(MessageError, match=needle):
        image_to_rgb(msg)


def test_bgr8_publishing_decodes_to_the_same_rgb():
    msg = rgb_to_image(RGB, encoding='bgr8')
    assert msg.encoding == 'bgr8' and bytes(msg.data[:3]) == RGB[0, 0, ::-1].tobytes()
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    with pytest.raises(MessageError, match='rgb8 or bgr8'):
        rgb_to_image(RGB, encoding='mono8')


def test_rgb_to_image_refuses_non_rgb_arrays():
    with pytest.raises(MessageError):
        rgb_to_image(np.zeros((4, 4), np.uint8))


def test_joint_positions_are_matched_by_name():
    msg = JointState(name=['wrist', 'gripper', 'shoulder', 'elbow'], position=[3.0, 9.0, 1.0, 2.0],
                     velocity=[0.3, 0.0, 0.1, 0.2])
    np.testing.assert_array_equal(joint_positions(msg, ['shoulder', 'elbow', 'wrist']), [1, 2, 3])
    np.testing.assert_array_equal(joint_positions(msg, ['elbow'], field='velocity'), [0.2])


@pytest.mark.parametrize('msg, needle', [
    (JointState(name=['shoulder'], position=[1.0]), 'lacks joints'),
    (JointState(name=['shoulder', 'elbow'], position=[1.0]), '2 names but 1'),
    (JointState(name=['shoulder', 'elbow'], position=[1.0, math.nan]), 'non-finite'),
])
def test_bad_joint_states_raise_message_errors(msg, needle):
    with pytest.raises(MessageError, match=needle):
        joint_positions(msg, ['shoulder', 'elbow'])


def test_durations_round_trip():
    for t in (0.0, 0.1, 1.5, 12.999999999):
        assert duration_to_sec(sec_to_duration(t)) == pytest.approx(t, abs=1e-9)
    assert sec_to_duration(2.25) == Duration(sec=2, nanosec=250_000_000)


def test_make_trajectory_round_trips_through_trajectory_points_by_name():
    positions = np.array([[0.1, 0.2], [0.3, 0.4]])
    msg = make_trajectory(['b', 'a'], positions, dt=0.5)
    times, out = trajectory_points(msg, ['a', 'b'])
    np.testing.assert_allclose(times, [0.5, 1.0])
    np.testing.assert_allclose(out, positions[:, ::-1])


def trajectory(names, rows, times) -> JointTrajectory:
    return JointTrajectory(joint_names=names, points=[
        JointTrajectoryPoint(positions=row, time_from_start=sec_to_duration(t)) for row, t in zip(rows, times)])


@pytest.mark.parametrize('msg, needle', [
    (JointTrajectory(joint_names=['a', 'b']), 'no points'),
    (trajectory(['a', 'a'], [[0.0, 0.0]], [1.0]), 'duplicate'),
    (trajectory(['a', 'c'], [[0.0, 0.0]], [1.0]), r"unknown \['c'\], missing \['b'\]"),
    (trajectory(['a', 'b'], [[0.0]], [1.0]), 'point 0 has 1 positions'),
    (trajectory(['a', 'b'], [[0.0, math.inf]], [1.0]), 'NaN or inf'),
    (trajectory(['a', 'b'], [[0.0, 0.0], [0.1, 0.1]], [1.0, 0.5]), 'strictly increasing'),
])
def test_bad_trajectories_raise_message_errors(msg, needle):
    with pytest.raises(MessageError, match=needle):
        trajectory_points(msg, ['a', 'b'])


# -- input validation: the rules every node relies on -------------------------------------------------------------
def test_image_data_must_be_exactly_step_times_height():
    msg = image(RGB, 'rgb8')
    msg.data = bytes(msg.data) + b'\x00'
    with pytest.raises(MessageError, match='106 bytes, expected 105'):
        image_to_rgb(msg)


@pytest.mark.parametrize('msg, needle', [
    (Image(height=0, width=0, encoding='rgb8', step=0, data=b''), 'bad image geometry'),
    (Image(height=4000, width=4000, encoding='rgb8', step=12000, data=bytes(1000)), '1000 bytes, expected 48000000'),
    (Image(height=5000, width=5000, encoding='mono8', step=5000, data=b''), 'larger than'),
])
def test_empty_huge_and_hollow_images_are_refused(msg, needle):
    with pytest.raises(MessageError, match=needle):
        image_to_rgb(msg)
    assert 5000 * 5000 > MAX_IMAGE_PIXELS >= 1920 * 1080


def test_expected_shape_refuses_another_size():
    assert image_to_rgb(image(RGB, 'rgb8'), expected_shape=(5, 7, 3)).shape == (5, 7, 3)
    with pytest.raises(MessageError, match='image size changed to 7x5; this dataset records 8x6'):
        image_to_rgb(image(RGB, 'rgb8'), expected_shape=(6, 8, 3))


def test_message_content_in_errors_is_truncated():
    msg = image(RGB, 'rgb8')
    msg.encoding = 'x' * 1000
    with pytest.raises(MessageError) as info:
        image_to_rgb(msg)
    assert len(str(info.value)) < 250 and 'more characters' in str(info.value)
    with pytest.raises(MessageError) as info:
        joint_positions(JointState(name=['j' * 1000], position=[0.0]), ['shoulder'])
    assert len(str(info.value)) < 250
    with pytest.raises(MessageError) as info:
        trajectory_points(trajectory(['a' * 1000, 'b'], [[0.0, 0.0]], [1.0]), ['a', 'b'])
    assert len(str(info.value)) < 300


def test_duplicated_joint_names_are_refused():
    msg = JointState(name=['shoulder', 'elbow', 'shoulder'], position=[1.0, 2.0, 3.0])
    with pytest.raises(MessageError, match=r"duplicated joint names \['shoulder'\]"):
        joint_positions(msg, ['shoulder', 'elbow'])


def test_joint_limits_allow_the_margin_and_refuse_beyond_it():
    names, lower, upper = ['shoulder', 'elbow'], [-1.0, -2.0], [1.0, 2.0]
    slightly = JointState(name=names, position=[1.0 + 0.9 * LIMIT_MARGIN_RAD, -2.0 - 0.9 * LIMIT_MARGIN_RAD])
    np.testing.assert_allclose(joint_positions(slightly, names, lower=lower, upper=upper), slightly.position)
    for position, needle in (([50.0, 0.0], 'shoulder=50'), ([0.0, -2.0 - 1.1 * LIMIT_MARGIN_RAD], 'elbow=-2.05')):
        with pytest.raises(MessageError, match=f'beyond the joint limits: {needle}'):
            joint_positions(JointState(name=names, position=position), names, lower=lower, upper=upper)
    np.testing.assert_allclose(joint_positions(JointState(name=names, position=[50.0, 0.0]), names), [50, 0])


def test_commands_beyond_the_limits_are_refused():
    lower, upper = [-1.0, -1.0], [1.0, 1.0]
    times, positions = trajectory_points(trajectory(['a', 'b'], [[1.0, -1.0]], [0.5]), ['a', 'b'],
                                         lower=lower, upper=upper)
    np.testing.assert_array_equal(positions, [[1.0, -1.0]])                # at the limit is fine
    with pytest.raises(MessageError, match='trajectory beyond the joint limits: b=100'):
        trajectory_points(trajectory(['a', 'b'], [[0.0, 0.0], [0.0, 100.0]], [0.5, 1.0]), ['a', 'b'],
                          lower=lower, upper=upper)


def yuv422(height: int = 2, width: int = 4) -> Image:
    msg = Image(height=height, width=width, encoding='yuv422', step=width * 2)
    msg.data = bytes(range(height * width * 2))
    return msg


def test_an_encoding_the_numpy_decoding_lacks_needs_a_decoder():
    with pytest.raises(MessageError, match="unsupported image encoding 'yuv422'.*cv_bridge"):
        image_to_rgb(yuv422())


def test_a_decoder_decodes_any_encoding_and_is_held_to_the_rgb_contract():
    grey = np.full((2, 4, 3), 7, np.uint8)
    np.testing.assert_array_equal(image_to_rgb(yuv422(), decoder=lambda msg: grey), grey)
    with pytest.raises(MessageError, match=r'decoder gave uint8 \(4, 2, 3\)'):
        image_to_rgb(yuv422(), decoder=lambda msg: np.zeros((4, 2, 3), np.uint8))

    def failing(msg):
        raise RuntimeError('no conversion from yuv422')
    with pytest.raises(MessageError, match='cannot decode .yuv422. image: no conversion'):
        image_to_rgb(yuv422(), decoder=failing)
    with pytest.raises(MessageError, match='image data has'):                 # the contract is checked first
        image_to_rgb(Image(height=2, width=4, encoding='yuv422', step=8, data=b'short'), decoder=lambda m: grey)


def test_cv_bridge_is_the_decoder_where_installed(monkeypatch):
    import sys
    import types

    from jepa_agent.ros.conversions import cv_bridge_decoder
    monkeypatch.setitem(sys.modules, 'cv_bridge', None)                      # not installed: numpy decoding
    assert cv_bridge_decoder() is None
    calls = []

    class CvBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            calls.append((msg.encoding, desired_encoding))
            return np.zeros((msg.height, msg.width, 3), np.uint8)
    monkeypatch.setitem(sys.modules, 'cv_bridge', types.SimpleNamespace(CvBridge=CvBridge))
    decoder = cv_bridge_decoder()
    assert image_to_rgb(yuv422(), decoder=decoder).shape == (2, 4, 3) and calls == [('yuv422', 'rgb8')]


def test_position_xy_reads_a_pose_and_refuses_non_finite_ones():
    pose = PoseStamped()
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 0.2, -0.1, 0.025
    np.testing.assert_array_equal(position_xy(pose), [0.2, -0.1])
    pose.pose.position.y = float('inf')
    with pytest.raises(MessageError, match='not finite'):
        position_xy(pose)
