"""FrameSynchronizer: frame grid from image stamps, joints interpolated at the image stamp, active command."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_agent.data.sync import FrameSynchronizer, SyncConfig


def ramp(t: float) -> np.ndarray:
    """Joint positions that are a known linear function of time, so interpolation is checkable exactly."""
    return np.array([0.5 * t, -0.2 * t])


def image(k: int) -> np.ndarray:
    return np.full((2, 2, 3), k % 256, np.uint8)


def feed_streams(sync, duration=3.0, camera_hz=30.0, joint_hz=100.0, jitter=0.0, seed=0):
    """Interleave camera and joint messages in stamp order (arrival = stamp + small latency)."""
    rng = np.random.default_rng(seed)
    events = [(k / camera_hz + rng.uniform(-jitter, jitter), 'image', k) for k in range(int(duration * camera_hz))]
    events += [(k / joint_hz, 'joints', k) for k in range(int(duration * joint_hz))]
    frames = []
    for stamp, kind, k in sorted(events, key=lambda e: e[0]):
        if kind == 'image':
            frames += sync.add_image(stamp, image(k), arrival=stamp + 0.001)
        else:
            frames += sync.add_joints(stamp, ramp(stamp), None, arrival=stamp + 0.001)
    return frames + sync.flush()


@pytest.mark.parametrize('camera_hz,jitter', [(30.0, 0.0), (10.0, 0.02), (12.0, 0.0)])
def test_frames_at_the_dataset_rate_with_joints_at_image_time(camera_hz, jitter):
    sync = FrameSynchronizer(2, SyncConfig(rate_hz=10.0))
    frames = feed_streams(sync, camera_hz=camera_hz, jitter=jitter)
    assert len(frames) == pytest.approx(30, abs=1)
    spacing = np.diff([f.time for f in frames])
    assert spacing.min() > 0.05 and spacing.max() < 0.1 + 1 / camera_hz + 2 * jitter + 1e-9
    for f in frames:
        np.testing.assert_allclose(f.qpos, ramp(f.time), atol=1e-9)
        np.testing.assert_array_equal(f.target, f.qpos)     # nothing commanded: hold
        assert np.all(np.isnan(f.qvel)) and f.image_stamp == f.time
    assert sync.counts['missed'] == 0 and sync.counts['no_joints'] == 0


def test_slow_camera_counts_missed_frames():
    sync = FrameSynchronizer(2, SyncConfig(rate_hz=10.0))
    frames = feed_streams(sync, camera_hz=5.0)
    assert len(frames) == 15 and sync.counts['missed'] == 14


def test_image_waits_for_joints_then_holds_or_drops():
    sync = FrameSynchronizer(2, SyncConfig(rate_hz=10.0, max_joint_gap=0.1, max_wait=0.25))
    assert sync.add_joints(1.00, ramp(1.0), None, arrival=1.0) == []
    assert sync.add_image(1.05, image(1), arrival=1.06) == []          # waits for a later joint state
    assert sync.poll(1.2) == []
    (held,) = sync.poll(1.32)                                          # gave up waiting: hold the last one
    np.testing.assert_array_equal(held.qpos, ramp(1.0))
    assert held.joint_stamp == 1.0
    assert sync.add_image(1.5, image(2), arrival=1.5) == []
    assert sync.poll(2.0) == [] and sync.counts['no_joints'] == 1      # joints 0.5 s old: dropped


def test_after_a_stall_images_wait_for_the_joint_states_queued_behind_them():
    """A node that stalled works through its backlog one message per executor cycle: the images come out long before
    the joint states that bracket them. While joint states keep arriving, no image gives up on them."""
    sync = FrameSynchronizer(2, SyncConfig(rate_hz=10.0, max_joint_gap=0.1, max_wait=0.25))
    sync.add_joints(0.98, ramp(0.98), None, arrival=0.98)
    frames = []
    for k in range(10):                                           # 1 s of images, processed within 0.1 s
        frames += sync.add_image(1.0 + 0.1 * k, image(k), arrival=2.0 + 0.01 * k)
    for k in range(51):                                           # then 1 s of 50 Hz joint states, over 0.5 s
        frames += sync.add_joints(1.0 + 0.02 * k, ramp(1.0 + 0.02 * k), None, arrival=2.1 + 0.01 * k)
    assert len(frames) == 10 and sync.counts['no_joints'] == 0
    for frame in frames:                                          # interpolated at the image stamp, not held
        np.testing.assert_allclose(frame.qpos, ramp(frame.time))
    assert sync.add_image(2.5, image(10), arrival=2.7) == []      # a silent joint stream still ends the wait:
    assert sync.poll(2.9) == [] and sync.counts['no_joints'] == 0
    assert sync.poll(3.0) == [] and sync.counts['no_joints'] == 1  # joints 0.5 s old, dropped


def test_out_of_order_stamps_are_dropped():
    sync = FrameSynchronizer(2)
    sync.add_joints(1.0, ramp(1.0), None, 1.0)
    sync.add_joints(0.9, ramp(0.9), None, 1.0)
    sync.add_image(1.0, image(0), 1.0)
    sync.add_image(0.95, image(1), 1.0)
    assert sync.counts['out_of_order'] == 2


def test_active_command_is_the_waypoint_being_approached():
    sync = FrameSynchronizer(2)
    sync.add_joints(1.0, ramp(1.0), None, 1.0)
    # stamp 0 = starts on receipt, i.e. at the newest sensor stamp (1.0): waypoints due at 1.1, 1.2, 1.3
    sync.add_command(0.0, np.array([0.1, 0.2, 0.3]), np.array([[1, 1], [2, 2], [3, 3]]), 1.0)
    q = ramp(1.0)
    np.testing.assert_array_equal(sync.target_at(0.99, q), q)          # before the trajectory: hold
    np.testing.assert_array_equal(sync.target_at(1.05, q), [1, 1])
    np.testing.assert_array_equal(sync.target_at(1.15, q), [2, 2])
    np.testing.assert_array_equal(sync.target_at(1.2, q), [2, 2])
    np.testing.assert_array_equal(sync.target_at(5.0, q), [3, 3])      # after the last point: hold it
    sync.add_command(1.5, np.array([0.1]), np.array([[7, 7]]), 1.4)    # stamped: replaces from 1.5 on
    np.testing.assert_array_equal(sync.target_at(1.45, q), [3, 3])
    np.testing.assert_array_equal(sync.target_at(1.55, q), [7, 7])


def test_reset_anchors_a_new_grid():
    sync = FrameSynchronizer(2, SyncConfig(rate_hz=10.0))
    for k in range(10):
        sync.add_joints(k * 0.05, ramp(k * 0.05), None, k * 0.05)
    assert [f.time for f in sync.add_image(0.1, image(0), 0.1)] == [0.1]
    assert sync.add_image(0.13, image(1), 0.13) == []     # too early on the grid (next due 0.2 - 0.05)
    sync.reset()
    assert [f.time for f in sync.add_image(0.14, image(2), 0.14)] == [0.14]


# -- StreamFeeder: the message checks in front of the synchronizer (recorder, trainer, bag import) ----------------
NAMES = ['a', 'b']


def feeder(**limits):
    from jepa_agent.data.stream import StreamFeeder
    return StreamFeeder(FrameSynchronizer(2, SyncConfig(rate_hz=10.0)), NAMES, **limits)


def stamped(msg, t: float):
    from rclpy.time import Time
    msg.header.stamp = Time(nanoseconds=int(round(t * 1e9))).to_msg()
    return msg


def camera(t: float, pixels: np.ndarray):
    from jepa_agent.ros.conversions import rgb_to_image
    return stamped(rgb_to_image(pixels), t)


def joint_state(t: float, position):
    from sensor_msgs.msg import JointState
    return stamped(JointState(name=NAMES, position=[float(p) for p in position]), t)


@pytest.mark.parametrize('value', [0, 255, None])
def test_feeder_refuses_constant_images(value):
    from jepa_agent.data.messages import MessageError
    pixels = np.full((4, 4, 3), [10, 200, 30] if value is None else value, np.uint8)   # black, white, flat colour
    f = feeder()
    with pytest.raises(MessageError, match='constant image'):
        f.image(camera(100.0, pixels), 0.0, 100.0)
    pixels[3, 3, 0] ^= 1                                 # one pixel differs: a real (if dark) picture
    assert f.decode_image(camera(100.0, pixels), 100.0)[1].shape == (4, 4, 3)


def test_feeder_refuses_stamps_in_the_future_beyond_the_tolerance():
    from jepa_agent.data.quality import FUTURE_TOLERANCE_S
    from jepa_agent.data.messages import MessageError
    from jepa_agent.ros.conversions import make_trajectory
    f, pixels = feeder(), np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    receipt, late = 1000.0, 1000.0 + FUTURE_TOLERANCE_S + 0.5
    for feed in (lambda: f.image(camera(late, pixels), 0.0, receipt),
                 lambda: f.joints(joint_state(late, [0, 0]), 0.0, receipt),
                 lambda: f.command(stamped(make_trajectory(NAMES, [[0.0, 0.0]], 0.1), late), 0.0, receipt)):
        with pytest.raises(MessageError, match='in the future'):
            feed()
    ok = receipt + 0.5 * FUTURE_TOLERANCE_S                 # clock skew within the tolerance is fine
    assert f.joints(joint_state(ok - 0.01, [0, 0]), 0.0, receipt) == []
    assert f.decode_image(camera(ok, pixels), receipt)[0] == pytest.approx(ok)
    assert f.decode_image(camera(0.0, pixels), receipt)[0] == receipt          # unstamped: receipt time


def test_feeder_applies_the_joint_limits_to_joints_and_commands():
    from jepa_agent.data.quality import LIMIT_MARGIN_RAD
    from jepa_agent.data.messages import MessageError
    from jepa_agent.ros.conversions import make_trajectory
    f = feeder(lower=[-1.0, -1.0], upper=[1.0, 1.0])
    with pytest.raises(MessageError, match='JointState position beyond the joint limits: a=50'):
        f.joints(joint_state(1.0, [50.0, 0.0]), 0.0, 1.0)
    f.joints(joint_state(1.0, [1.0 + 0.5 * LIMIT_MARGIN_RAD, 0.0]), 0.0, 1.0)   # an arm sits a little past
    with pytest.raises(MessageError, match='trajectory beyond the joint limits: b=100'):
        f.command(make_trajectory(NAMES, [[0.0, 100.0]], 0.1), 0.0)
    with pytest.raises(MessageError, match='trajectory beyond'):
        f.command(make_trajectory(NAMES, [[1.0 + 0.5 * LIMIT_MARGIN_RAD, 0.0]], 0.1), 0.0)   # commands: none
    assert feeder().joints(joint_state(1.0, [50.0, 0.0]), 0.0, 1.0) == []        # no limits given: not checked
    with pytest.raises(ValueError, match='one value per joint'):
        feeder(lower=[-1.0], upper=[1.0, 1.0])


def test_feeder_enforces_the_episode_image_size_unless_told_not_to():
    from jepa_agent.data.messages import MessageError
    f, pixels = feeder(), np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    f.image_shape = (8, 8, 3)
    with pytest.raises(MessageError, match='image size changed to 4x4'):
        f.decode_image(camera(1.0, pixels), 1.0)
    assert f.decode_image(camera(1.0, pixels), 1.0, any_size=True)[1].shape == (4, 4, 3)
