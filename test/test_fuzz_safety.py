"""Safety under fire, with real processes: sim_arm (joint_trajectory_controller semantics, no speed clamping, 50 ms
command latency), planner, recorder and trainer, while the test floods them with over a thousand malformed messages
of every kind, then cuts the camera, the joint states and `enabled` in turn.

The nodes under test read camera and joint states through a relay in this process (`/fuzz/...`), so the test can
inject bad messages between the good ones and stop either stream. Asserted:
* every node stays alive;
* no command the planner published has a point outside the position limits;
* the sim saw no command whose first point needed more than the velocity limit from where the arm was when it took
  effect, and the arm never moved faster than 1.1 × its limit;
* no command later than 0.1 s after stale_timeout_s once the camera or the joint states stop, or after
  `enabled:=false`;
* the recorded dataset passes `data verify` (nothing out of limits, constant, future-stamped or mis-sized stored).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from conftest import wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile
from ros_helpers import Inbox
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from test_planner_node import tiny_checkpoint
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_agent.data.cli import verify_dataset
from jepa_agent.data.episode_reader import open_episodes
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import rgb_to_image
from jepa_agent.ros.qos import LATCHED, RELIABLE, SENSOR
from jepa_agent.sim import make_env

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
LOWER, UPPER = np.array([-2.8, -2.5, -2.5]), np.array([2.8, 2.5, 2.5])
IMAGE, JOINTS, COMMANDS = '/fuzz/image_raw', '/fuzz/joint_states', '/arm_controller/joint_trajectory'
STALE_S = 0.5
FUZZ = 'fuzz'      # frame_id of the test's own malformed commands, to tell them from the planner's


def bad_images(stamp: Time) -> list[Image]:
    """One of each kind of unusable camera message."""
    good = rgb_to_image(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), stamp)
    future = rgb_to_image(np.asarray(good.data, np.uint8).reshape(64, 64, 3), Time(sec=stamp.sec + 100))
    return [Image(height=0, width=0, encoding='rgb8', step=0),
            Image(height=4000, width=4000, encoding='rgb8', step=12000, data=bytes(1000)),
            Image(height=64, width=64, encoding='rgb8', step=100, data=bytes(6400)),       # step < width × 3
            Image(height=64, width=64, encoding='rgb8', step=192, data=bytes(100)),        # data too short
            Image(height=8, width=8, encoding='x' * 1000, step=24, data=bytes(192)),
            Image(height=8, width=8, encoding='32FC3', step=96, data=bytes(768)),
            rgb_to_image(np.zeros((64, 64, 3), np.uint8), stamp),                          # all black
            rgb_to_image(np.zeros((32, 32, 3), np.uint8) + 90, stamp),                     # constant, other size
            future]


def bad_joint_states(stamp: Time) -> list[JointState]:
    """One of each kind of unusable joint-state message."""
    def js(names, positions, when=stamp):
        msg = JointState(name=names, position=positions)
        msg.header.stamp = when
        return msg
    return [js([*NAMES, 'elbow'], [0.0, 0.0, 0.0, 2.4]),              # duplicated name, the last one lies
            js(NAMES[:2], [0.0, 0.0]),
            js(NAMES, [float('nan'), 0.0, 0.0]),
            js(NAMES, [0.0, float('inf'), 0.0]),
            js(NAMES, [50.0, 0.0, 0.0]),
            js(NAMES, [0.0, 0.0]),                                      # fewer values than names
            js(NAMES, [0.1, 0.1, 0.1], Time(sec=stamp.sec + 100))]


def bad_commands() -> list[JointTrajectory]:
    """Commands the sim must reject and the recorder must not store."""
    def cmd(names, rows, times=None):
        msg = JointTrajectory(joint_names=names)
        msg.header.frame_id = FUZZ
        for k, row in enumerate(rows):
            t = (times or [0.1 * (i + 1) for i in range(len(rows))])[k]
            msg.points.append(JointTrajectoryPoint(positions=row, time_from_start=Duration(nanosec=int(t * 1e9))))
        return msg
    return [cmd(NAMES, [[100.0, 0.0, 0.0]]), cmd(NAMES, [[float('nan'), 0.0, 0.0]]),
            cmd([*NAMES[:2], 'shoulder'], [[0.0, 0.0, 0.0]]), cmd(NAMES, []),
            cmd(NAMES, [[0.1, 0.0, 0.0], [0.2, 0.0, 0.0]], [0.2, 0.1])]


@dataclass
class Relay:
    """Forwards the sim's camera and joint states to the nodes under test; `inject` adds malformed messages."""

    node: object
    camera: bool = True
    joints: bool = True
    last_forwarded: dict = field(default_factory=dict)

    def __post_init__(self):
        self.image_pub = self.node.create_publisher(Image, IMAGE, SENSOR)
        self.joint_pub = self.node.create_publisher(JointState, JOINTS, RELIABLE)
        self.node.create_subscription(Image, topics.IMAGE, self._on_image, SENSOR)
        self.node.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, RELIABLE)

    def _on_image(self, msg: Image) -> None:
        if self.camera:
            self.image_pub.publish(msg)
            self.last_forwarded['camera'] = time.time()

    def _on_joints(self, msg: JointState) -> None:
        if self.joints:
            self.joint_pub.publish(msg)
            self.last_forwarded['joints'] = time.time()


def statuses(diagnostics: Inbox, prefix: str) -> dict[str, str]:
    """Key-values of the newest /diagnostics status whose name starts with `prefix`."""
    for msg in reversed(diagnostics.messages()):
        for status in msg.status:
            if status.name.startswith(prefix):
                return {kv.key: kv.value for kv in status.values}
    return {}


class Commands:
    """Every JointTrajectory on the command topic with the time its publisher sent it (DDS source timestamp, system
    clock): when a node published, not when this busy test process got round to it."""

    def __init__(self, node):
        self._items: list[tuple[float, JointTrajectory]] = []
        self._lock = threading.Lock()
        node.create_subscription(JointTrajectory, COMMANDS, self._on_msg, QoSProfile(depth=1000))

    def _on_msg(self, msg: JointTrajectory, info) -> None:
        with self._lock:
            self._items.append((info['source_timestamp'] * 1e-9, msg))

    def planner(self, since: float = 0.0) -> list[tuple[float, JointTrajectory]]:
        """(sent at, message) of the planner's commands sent at or after `since` (time.time() seconds)."""
        with self._lock:
            return [(t, m) for t, m in self._items if t >= since and m.header.frame_id != FUZZ]


def test_nodes_survive_a_flood_of_bad_input_and_never_command_unsafely(start_node, ros_probe, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / 'model')        # random model: arbitrary plans, full-speed reversals
    fed = {topics.IMAGE: IMAGE, topics.JOINT_STATES: JOINTS}      # what the relay forwards (and corrupts)
    sim = start_node('sim_arm', params={'seed': 7, 'command_latency_s': 0.05})
    planner = start_node('planner', remaps=fed, params={
        'checkpoint': checkpoint, 'stale_timeout_s': STALE_S, 'command_gate.command_latency_s': 0.05,
        'cem.num_samples': 64, 'cem.num_iterations': 2, 'cem.num_elites': 8, 'cem.num_retained': 2, 'cem.horizon': 5,
        'cem.state_cost_weight': 0.0})
    recorder = start_node('recorder', remaps=fed, params={'dataset_dir': str(tmp_path / 'data'), 'episode_frames': 40})
    trainer = start_node('trainer', remaps=fed, params={
        'checkpoint': checkpoint, 'checkpoint_dir': str(tmp_path / 'online'), 'checkpoint_every_s': 5.0,
        'min_frames': 10, 'duty_cycle': 0.2})
    nodes = {'sim_arm': sim, 'planner': planner, 'recorder': recorder, 'trainer': trainer}
    relay = Relay(ros_probe)
    commands = Commands(ros_probe)
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    goal_pub = ros_probe.create_publisher(Image, '/jepa_agent/goal_image', QoSProfile(depth=50, durability=LATCHED.durability))
    announce = ros_probe.create_publisher(String, '/jepa_agent/model_updated', LATCHED)
    bad_image_pub = ros_probe.create_publisher(Image, IMAGE, QoSProfile(depth=50))
    bad_joint_pub = ros_probe.create_publisher(JointState, JOINTS, QoSProfile(depth=50))
    bad_command_pub = ros_probe.create_publisher(JointTrajectory, COMMANDS, QoSProfile(depth=50))
    try:
        env = make_env()
        env.reset(11)
        assert wait_for(lambda: goal_pub.get_subscription_count() > 0 and relay.last_forwarded.get('camera'), 60), \
            planner.output()[-2000:]
        goal_pub.publish(rgb_to_image(env.sample_goal(11).image))
        assert wait_for(lambda: len(commands.planner()) >= 5, 60), planner.output()[-3000:]

        # -- flood: >= 1000 malformed messages of every kind while the loop runs ------------------------------
        sent = 0
        for round_ in range(50):
            stamp = ros_probe.get_clock().now().to_msg()
            for msg in bad_images(stamp):
                bad_image_pub.publish(msg)
            for msg in bad_joint_states(stamp):
                bad_joint_pub.publish(msg)
            for msg in bad_commands():
                bad_command_pub.publish(msg)
            goal_pub.publish(Image(height=8, width=8, encoding='x' * 1000, step=24, data=bytes(192)))
            goal_pub.publish(Image(height=0, width=0, encoding='rgb8'))
            announce.publish(String(data=['/' + 'p' * 5000, str(tmp_path / 'nothing'), ''][round_ % 3]))
            sent += 9 + 7 + 5 + 3
            time.sleep(0.1)
        assert sent >= 1000
        for name, node in nodes.items():
            assert node.alive(), f'{name} died:\n' + node.output()[-3000:]
        assert wait_for(lambda: len(commands.planner(time.time() - 1.0)) > 0, 20), \
            'planning did not go on after the flood\n' + planner.output()[-3000:]

        # -- stale camera, stale joint states, disabled: nothing later than 0.1 s after the limit ------------
        for what, limit in (('camera', STALE_S), ('joints', STALE_S)):
            setattr(relay, what, False)
            time.sleep(STALE_S + 1.0)
            stopped = relay.last_forwarded[what]
            late = [t - stopped for t, _ in commands.planner(stopped + limit + 0.1)]
            assert not late, f'{what} stopped: commands {late} s later\n' + planner.output()[-3000:]
            setattr(relay, what, True)
            assert wait_for(lambda: len(commands.planner(time.time() - 1.0)) > 0, 20), what
        client = AsyncParameterClient(ros_probe, 'planner')
        assert client.wait_for_services(10)
        future = client.set_parameters([Parameter('enabled', value=False)])
        assert wait_for(future.done, 10) and future.result().results[0].successful
        disabled = time.time()
        time.sleep(1.5)
        late = [t - disabled for t, _ in commands.planner(disabled + 0.1)]
        assert not late, f'disabled: commands {late} s later'

        # -- what reached the arm ----------------------------------------------------------------------------
        published = commands.planner()
        points = np.array([p.positions for _, m in published for p in m.points])
        assert np.all(points >= LOWER - 1e-9) and np.all(points <= UPPER + 1e-9)
        assert wait_for(lambda: int(statuses(diagnostics, 'sim_arm').get('commands_started', 0)) >= len(published) // 2)
        sim_status = statuses(diagnostics, 'sim_arm')
        assert sim_status['commands_over_velocity_limit'] == '0', sim_status
        assert float(sim_status['max_joint_speed_ratio']) <= 1.1, sim_status
        assert int(sim_status['rejected_trajectories']) >= 5 * 50 - 10, sim_status
        for name in ('trainer', 'recorder', 'planner'):   # each refused every kind (sensor queues drop some)
            rejected = statuses(diagnostics, name)
            kinds = ('image', 'joint_state') + (('trajectory',) if name == 'trainer' else
                                                ('command',) if name == 'recorder' else ('goal_image', 'model_update'))
            assert all(int(rejected.get(f'rejected_{kind}', 0)) >= 1 for kind in kinds), (name, rejected)
        for name, node in nodes.items():
            assert node.alive(), f'{name} died:\n' + node.output()[-3000:]
        assert 'Traceback' not in ''.join(node.output() for node in nodes.values())
    finally:
        for node in (planner, trainer, recorder):
            node.stop()

    # -- what was stored ---------------------------------------------------------------------------------
    problems, _ = verify_dataset(tmp_path / 'data')
    assert problems == [], problems
    episodes = open_episodes(tmp_path / 'data')
    assert episodes and all(ep.images.shape[1:] == (64, 64, 3) for ep in episodes)
    for ep in episodes:
        assert np.all(np.abs(ep.qpos) <= UPPER[0] + 0.05) and np.all(np.abs(ep.target) <= UPPER[0])
