"""recorder as a real process, fed by a probe publishing images, joint states and commands.

Images carry their index in the pixels and joint positions are a known function of time, so the test can check
from the files alone that each frame's joints belong to its image's instant.
"""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
from conftest import wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.time import Time
from ros_helpers import Inbox
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.data.cli import verify_dataset
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episodes import episode_dirs
from jepa_agent.data.quality import LIMIT_MARGIN_RAD, constant_images
from jepa_agent.ros.conversions import make_trajectory, rgb_to_image
from jepa_agent.ros.qos import RELIABLE, SENSOR
from test_data_cli import cli_main

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
SIZE = 16


def ramp(t: float) -> np.ndarray:
    phase = t % 10.0
    return np.array([0.1 * phase, -0.05 * phase, 0.02 * phase])


class Streams:
    """Publishes a 20 Hz camera and 100 Hz joint states from a thread; remembers each image's stamp.

    Images are stamped with the joint state published just before them (same instant), or, `on_schedule`, exactly
    1/camera_hz apart whenever the thread gets to publish them (a hardware-triggered camera: publishing jitter
    never shows in the stamps; the joint states published before an image always bracket its stamp).
    """

    def __init__(self, node, camera_hz=20.0, joint_hz=100.0, on_schedule=False):
        self.node = node
        self.on_schedule = on_schedule
        self.image_pub = node.create_publisher(Image, '/camera/image_raw', SENSOR)
        self.joint_pub = node.create_publisher(JointState, '/joint_states', RELIABLE)
        self.camera_hz, self.joint_hz = camera_hz, joint_hz
        self.image_stamps: dict[int, float] = {}     # written by the thread under _lock: read it with stamps()
        self._lock = threading.Lock()
        self.bad_image: Image | None = None          # published instead of the next image when set
        self.bad_joints: JointState | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        k, next_image, period_ns = 0, time.monotonic(), round(1e9 / self.camera_hz)
        next_stamp_ns = self.node.get_clock().now().nanoseconds
        while not self._stop.is_set():
            now = self.node.get_clock().now()
            t = now.nanoseconds * 1e-9
            msg = JointState(name=NAMES[::-1], position=ramp(t)[::-1].tolist())   # by name, not by index
            msg.header.stamp = now.to_msg()
            self.joint_pub.publish(self.bad_joints or msg)
            self.bad_joints = None
            due = now.nanoseconds >= next_stamp_ns if self.on_schedule else time.monotonic() >= next_image
            if due:
                stamp = Time(nanoseconds=next_stamp_ns) if self.on_schedule else now
                rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
                rgb[0, 0] = [k % 256, (k // 256) % 256, 7]
                if self.bad_image is None:
                    with self._lock:
                        self.image_stamps[k] = stamp.nanoseconds * 1e-9
                self.image_pub.publish(self.bad_image or rgb_to_image(rgb, stamp.to_msg()))
                self.bad_image = None
                k += 1
                next_image += 1.0 / self.camera_hz
                next_stamp_ns += period_ns
            self._stop.wait(1.0 / self.joint_hz)

    def stamps(self) -> list[float]:
        """The stamps of the images published so far (a copy: the thread keeps adding to them)."""
        with self._lock:
            return list(self.image_stamps.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def streams(ros_probe):
    s = Streams(ros_probe)
    yield s
    s.stop()


def call(node, service: str, timeout: float = 10.0) -> Trigger.Response:
    client = node.create_client(Trigger, service)
    assert client.wait_for_service(timeout_sec=timeout), f'{service} not available'
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout)
    return future.result()


def check_frames_match_streams(reader: EpisodeReader, streams: Streams) -> None:
    """Every frame's image is the one stamped at the frame time and its joints are ramp(frame time)."""
    for k in range(len(reader)):
        index = int(reader.images[k, 0, 0, 0]) + 256 * int(reader.images[k, 0, 0, 1])
        assert streams.image_stamps[index] == pytest.approx(reader.times[k], abs=1e-6)
        np.testing.assert_allclose(reader.qpos[k], ramp(reader.times[k]), atol=2e-3)


def test_services_record_synchronized_episodes(start_node, ros_probe, streams, tmp_path, capsys):
    rec = start_node('recorder', params={'dataset_dir': str(tmp_path / 'ds'), 'rate_hz': 10.0, 'task': 'probe'})
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    assert call(ros_probe, '/recorder/stop_episode').success is False          # nothing to stop yet
    assert wait_for(lambda: call(ros_probe, '/recorder/start_episode').success, 10), rec.output()
    cmd_pub = ros_probe.create_publisher(type(make_trajectory(NAMES, np.zeros(3), 0.1)),
                                         '/arm_controller/joint_trajectory', RELIABLE)
    assert wait_for(lambda: cmd_pub.get_subscription_count() > 0)
    target = np.array([0.3, -0.2, 0.1])
    sent = ros_probe.get_clock().now()
    cmd_pub.publish(make_trajectory(NAMES, target[None], 0.1, stamp=sent.to_msg()))   # active from `sent` on
    time.sleep(1.0)
    # bad input while recording: wrong encoding, other size, NaN joints, missing joint
    streams.bad_image = Image(height=SIZE, width=SIZE, encoding='32FC1', step=SIZE * 4,
                              data=bytes(SIZE * SIZE * 4))
    time.sleep(0.2)
    streams.bad_image = rgb_to_image(np.zeros((8, 8, 3), np.uint8))
    streams.bad_joints = JointState(name=NAMES, position=[float('nan'), 0.0, 0.0])
    time.sleep(0.2)
    streams.bad_joints = JointState(name=NAMES[:2], position=[0.0, 0.0])
    time.sleep(2.0)
    stop = call(ros_probe, '/recorder/stop_episode')
    assert stop.success, stop.message
    assert rec.alive(), rec.output()

    assert cli_main(['data', 'record', 'start']) == 0                         # the CLI's service calls
    time.sleep(0.5)
    assert cli_main(['data', 'record', 'discard']) == 0                       # leaves no episode behind
    assert cli_main(['data', 'record', 'stop']) == 1 and 'not recording' in capsys.readouterr().err

    assert wait_for(lambda: any(s.values and dict((v.key, v.value) for v in s.values).get('frames_written')
                                for m in diagnostics.messages() for s in m.status))
    status = diagnostics.latest().status[0]
    values = {v.key: v.value for v in status.values}
    assert status.name == 'recorder: episodes' and int(values['rejected_image']) >= 2
    assert int(values['rejected_joint_state']) >= 2

    assert rec.stop() == 0, rec.output()
    (episode,) = episode_dirs(tmp_path / 'ds')
    reader = EpisodeReader(episode)
    assert reader.status == 'complete' and reader.info['task'] == 'probe'
    t0, span = reader.times[0], reader.times[-1] - reader.times[0]
    # no holes: every 0.1 s grid slot that the test's camera filled is a frame. Counted against what was published:
    # on a loaded machine the camera thread itself can stall for 0.3-3 s (no images, so no frames to expect)
    filled = {round((t - t0) * 10.0) for t in streams.stamps() if t0 <= t <= reader.times[-1] + 1e-6}
    assert span > 3.0 and len(reader) >= len(filled), (len(reader), len(filled), values)   # ~3.4 s
    check_frames_match_streams(reader, streams)
    # the target is the measured position until the command, then the command, never before it was sent (it may
    # reach the recorder after some frames stamped later: delivery time is load, not a fault)
    switch = int(np.argmax(np.all(np.isclose(reader.target, target), axis=1)))
    assert reader.times[switch] >= sent.nanoseconds * 1e-9
    np.testing.assert_allclose(reader.target[switch:], np.tile(target, (len(reader) - switch, 1)))
    np.testing.assert_allclose(reader.target[:switch], reader.qpos[:switch])
    assert verify_dataset(tmp_path / 'ds') == ([], [])
    log = rec.log_path.read_text()   # one warning per kind every 5 s: the first reason of each kind
    assert 'rejected image: unsupported image encoding' in log
    assert 'rejected joint_state' in log and 'non-finite' in log


def test_kill_9_mid_episode_loses_at_most_one_second(start_node, ros_probe, streams, tmp_path):
    rec = start_node('recorder', params={'dataset_dir': str(tmp_path / 'ds'), 'episode_frames': 10000})
    assert wait_for(lambda: episode_dirs(tmp_path / 'ds'), 15), rec.output()
    time.sleep(3.0)
    rec.proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    rec.proc.wait()
    (episode,) = episode_dirs(tmp_path / 'ds')
    reader = EpisodeReader(episode)
    assert reader.interrupted
    expected = (killed_at - reader.times[0]) * 10.0
    assert len(reader) >= expected - 10.0, (len(reader), expected)
    check_frames_match_streams(reader, streams)
    problems, notes = verify_dataset(tmp_path / 'ds')
    assert problems == [] and 'interrupted' in notes[0]
    problems, notes = verify_dataset(tmp_path / 'ds', repair=True)
    assert problems == [] and 'recovered' in notes[0]
    assert EpisodeReader(episode).status == 'recovered'


def test_unwritable_dataset_dir_fails_the_service_not_the_node(start_node, ros_probe, streams, tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('a file where the dataset directory should go')
    rec = start_node('recorder', params={'dataset_dir': str(blocker / 'ds')})
    replies = []

    def image_seen() -> bool:   # the first attempts may come before any image arrived
        replies.append(call(ros_probe, '/recorder/start_episode'))
        return 'no image' not in replies[-1].message
    assert wait_for(image_seen, 10)
    assert replies[-1].success is False and 'not_a_dir' in replies[-1].message, replies[-1].message
    time.sleep(0.5)
    assert rec.alive(), rec.output()


def test_sim_explorer_recorder_episode_is_in_sync(start_node, ros_probe, tmp_path):
    """The real pipeline: the logged image shows the arm at the logged joint positions."""
    seed, size = 3, 48
    sim = start_node('sim_arm', params={'seed': seed, 'image_size': size, 'camera_hz': 15.0})
    start_node('explorer', params={'seed': 1})
    rec = start_node('recorder', params={'dataset_dir': str(tmp_path / 'ds'), 'task': 'babble'})
    assert wait_for(lambda: call(ros_probe, '/recorder/start_episode').success, 30), rec.output() + sim.output()
    started = time.monotonic()
    time.sleep(6.0)
    assert call(ros_probe, '/recorder/stop_episode').success
    duration = time.monotonic() - started
    assert rec.stop() == 0, rec.output()
    reader = EpisodeReader(episode_dirs(tmp_path / 'ds')[0])
    assert len(reader) == pytest.approx(10.0 * duration, rel=0.1), (len(reader), duration)
    assert np.ptp(reader.qpos, axis=0).max() > 0.3                     # the explorer moved the arm
    assert np.abs(reader.target - reader.qpos).max() > 0.01             # and its commands were logged

    from jepa_agent.sim.arm_env import make_env
    env = make_env(image_size=size)
    env.reset(seed)
    scene = env.data.qpos.copy()
    arm = [env.model.joint(name).qposadr[0] for name in env.joint_names]

    def error(k: int, shift: float) -> float:
        """Mean pixel difference between logged image k and a render of the logged joints `shift` frames away."""
        j = int(np.floor(k + shift))
        scene[arm] = reader.qpos[j] + (k + shift - j) * (reader.qpos[j + 1] - reader.qpos[j])
        return float(np.abs(env.render(scene).astype(int) - reader.images[k]).mean())
    # (the arm may push the block, which the render cannot know: compare alignments, not absolute errors)
    moving = [k for k in range(2, len(reader) - 2) if np.abs(reader.qpos[k + 1] - reader.qpos[k]).max() > 0.03]
    errors = np.array([[error(k, s) for s in (-0.5, 0.0, 0.5)] for k in moving[::2]])
    env.close()
    assert len(errors) >= 5
    best_at_zero = errors[:, 1] < errors[:, [0, 2]].min(axis=1)
    assert best_at_zero.mean() >= 0.8, errors      # image and joints agree to better than half a frame (50 ms)


def test_auto_mode_splits_into_fixed_length_episodes(start_node, ros_probe, streams, tmp_path):
    rec = start_node('recorder', params={'dataset_dir': str(tmp_path / 'ds'), 'episode_frames': 8,
                                         'task': 'auto'})
    assert wait_for(lambda: len(episode_dirs(tmp_path / 'ds')) >= 3, 20), rec.output()
    assert rec.stop() == 0, rec.output()
    readers = [EpisodeReader(p) for p in episode_dirs(tmp_path / 'ds')]
    assert [len(r) for r in readers[:2]] == [8, 8] and all(r.status == 'complete' for r in readers)
    assert readers[1].times[0] > readers[0].times[-1] and readers[0].info['task'] == 'auto'
    for reader in readers:
        check_frames_match_streams(reader, streams)


def diagnostic_values(inbox: Inbox) -> dict[str, str]:
    latest = inbox.latest()
    return {v.key: v.value for v in latest.status[0].values} if latest else {}


def test_bad_input_never_starts_an_episode_nor_reaches_the_data(start_node, ros_probe, tmp_path):
    """The issue's probes against a real recorder in auto mode. Before any good image: a 1000-character encoding,
    a 0x0 image (it crashed the node), a 4000x4000 header with 1 kB of data (it fixed the dataset at 4000x4000),
    constant and future-stamped images, bad joint states. Then, while recording: duplicated joint names, 50 rad and
    future-stamped joint states, 100 rad and future-stamped commands, constant, future and malformed images.
    The node stays alive, starts its episode from the first good image (16x16), and stores none of the bad input."""
    ds = tmp_path / 'ds'
    rec = start_node('recorder', params={'dataset_dir': str(ds), 'episode_frames': 10000})
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    images = ros_probe.create_publisher(Image, '/camera/image_raw', SENSOR)
    joints = ros_probe.create_publisher(JointState, '/joint_states', RELIABLE)
    commands = ros_probe.create_publisher(JointTrajectory, '/arm_controller/joint_trajectory', RELIABLE)
    assert wait_for(lambda: images.get_subscription_count() and joints.get_subscription_count()
                    and commands.get_subscription_count(), 30), rec.output()

    def stamp(ahead: float = 0.0):
        return Time(nanoseconds=ros_probe.get_clock().now().nanoseconds + int(ahead * 1e9)).to_msg()

    def textured(size: int) -> np.ndarray:
        return np.arange(size * size * 3, dtype=np.uint8).reshape(size, size, 3)

    def bad_images() -> list[Image]:   # fresh stamps each round; 32x32 ones must not decide the camera size
        return [Image(height=0, width=0, encoding='rgb8', step=0, data=b''),
                Image(height=4000, width=4000, encoding='rgb8', step=12000, data=bytes(1000)),
                rgb_to_image(np.zeros((32, 32, 3), np.uint8), stamp()),
                rgb_to_image(np.full((32, 32, 3), 255, np.uint8), stamp()),
                rgb_to_image(textured(32), stamp(ahead=30.0))]

    def bad_joints() -> list[JointState]:
        dup = JointState(name=NAMES + ['shoulder'], position=[0.1, 0.0, 0.0, 0.2])
        far = JointState(name=NAMES, position=[50.0, 0.0, 0.0])
        ahead = JointState(name=NAMES, position=ramp(0.0).tolist())
        dup.header.stamp, far.header.stamp, ahead.header.stamp = stamp(), stamp(), stamp(ahead=30.0)
        return [dup, far, ahead]

    long_encoding = Image(height=SIZE, width=SIZE, encoding='x' * 1000, step=SIZE * 3, data=bytes(SIZE * SIZE * 3))
    assert wait_for(lambda: images.publish(long_encoding) or 'rejected image' in rec.output(), 20), rec.output()
    for _ in range(50):      # best effort: repeat until the recorder has seen (and refused) plenty of each kind
        for msg in bad_images():
            images.publish(msg)
        for msg in bad_joints():
            joints.publish(msg)
        time.sleep(0.05)
    assert wait_for(lambda: int(diagnostic_values(diagnostics).get('rejected_image', 0)) >= 100
                    and int(diagnostic_values(diagnostics).get('rejected_joint_state', 0)) >= 100, 20), rec.output()
    assert rec.alive(), rec.output()
    assert episode_dirs(ds) == [] and not (ds / 'dataset.json').exists()
    log = rec.output()
    assert 'x' * 300 not in log and 'more characters' in log, log       # the encoding is cut in the warning

    streams = Streams(ros_probe)
    try:
        assert wait_for(lambda: episode_dirs(ds), 20), rec.output()
        cmd = make_trajectory(NAMES, np.array([[0.3, -0.2, 0.1]]), 0.1)
        assert wait_for(lambda: commands.publish(cmd) or EpisodeReader(episode_dirs(ds)[0]).__len__() >= 5, 20)
        for k in range(12):   # while recording: one bad message of each kind at a time, between good ones
            streams.bad_joints = bad_joints()[k % 3]
            streams.bad_image = bad_images()[k % 5]
            if k % 4 == 0:
                commands.publish(make_trajectory(NAMES, np.array([[100.0, 0.0, 0.0]]), 0.1))
                future_cmd = make_trajectory(NAMES, np.array([[-0.3, 0.2, -0.1]]), 0.1, stamp=stamp(ahead=30.0))
                commands.publish(future_cmd)
            time.sleep(0.15)
        time.sleep(1.0)
    finally:
        streams.stop()
    # /diagnostics comes once a second: wait for a report that counts all six bad commands, not the newest one then
    assert wait_for(lambda: int(diagnostic_values(diagnostics).get('rejected_command', 0)) >= 6, 20), \
        diagnostic_values(diagnostics)
    assert rec.stop() == 0, rec.output()

    (episode,) = episode_dirs(ds)
    reader = EpisodeReader(episode)
    assert reader.meta.image_shape == (SIZE, SIZE, 3)
    span = reader.times[-1] - reader.times[0]
    # future stamps did not stall the streams: nearly every 0.1 s grid slot the test's camera filled is a frame
    # (counted against what was published, so a loaded machine that publishes fewer images cannot fail it)
    t0 = reader.times[0]
    filled = {round((t - t0) * 10.0) for t in streams.stamps() if t0 <= t <= reader.times[-1] + 1e-6}
    assert span > 2.0 and len(reader) >= 0.9 * len(filled), (len(reader), len(filled))
    check_frames_match_streams(reader, streams)
    lower, upper = np.array(reader.meta.lower), np.array(reader.meta.upper)
    for values in (reader.qpos, reader.target):
        assert np.all(values >= lower - LIMIT_MARGIN_RAD) and np.all(values <= upper + LIMIT_MARGIN_RAD)
    assert set(map(tuple, reader.target.round(6))) <= {(0.3, -0.2, 0.1)} | set(map(tuple, reader.qpos.round(6)))
    assert not constant_images(reader.images).any()
    assert verify_dataset(ds) == ([], [])
