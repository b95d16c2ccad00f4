"""sim_arm as a real process: rates, trajectory following (JTC semantics), bad trajectories, reset, parameters."""
import math
import threading
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import NodeProcess, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import Inbox, JointWatcher, steady_rates
from test_arm_env import FLOOR_ARM
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.command_gate import CommandGateConfig
from jepa_agent.config import build, load_section, to_params
from jepa_agent.data.curiosity import CuriosityConfig
from jepa_agent.data.messages import image_to_rgb
from jepa_agent.data.play import PlayConfig
from jepa_agent.nodes.explorer import ExplorerConfig
from jepa_agent.nodes.sim_arm import SimArmConfig
from jepa_agent.nodes.teleop_keyboard import TeleopConfig
from jepa_agent.resources import config_path
from jepa_agent.ros.conversions import make_trajectory
from jepa_agent.ros.qos import SENSOR
from jepa_agent.sim import make_env
from jepa_agent.sim.camera_link import CameraLink

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
SEED = 3
TOPIC = '/arm_controller/joint_trajectory'


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    """One sim_arm process shared by this module's tests (starting it is the slow part)."""
    node = NodeProcess('sim_arm', params={'seed': SEED, 'image_size': 48},
                       log_dir=tmp_path_factory.mktemp('sim_arm'))
    yield node
    assert node.stop() == 0, node.output()


@pytest.fixture
def arm(sim, ros_probe):
    """(joint watcher, trajectory publisher) connected to the running sim."""
    joints = JointWatcher(ros_probe, NAMES)
    pub = ros_probe.create_publisher(JointTrajectory, TOPIC, 10)
    assert wait_for(lambda: joints.positions() is not None and pub.get_subscription_count() > 0), sim.output()
    return joints, pub


def settle(joints: JointWatcher, tol: float = 0.003, timeout: float = 10.0) -> np.ndarray:
    """Positions once the arm stops moving."""
    previous = joints.positions()

    def still():
        nonlocal previous
        time.sleep(0.2)
        now = joints.positions()
        done = np.max(np.abs(now - previous)) < tol
        previous = now
        return done
    assert wait_for(still, timeout)
    return previous


def test_publishes_camera_and_joint_states_at_set_rates(sim, ros_probe):
    images = Inbox(ros_probe, Image, '/camera/image_raw', SENSOR)
    infos = Inbox(ros_probe, CameraInfo, '/camera/camera_info', SENSOR)
    joints = JointWatcher(ros_probe, NAMES)
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    assert wait_for(lambda: len(images) and len(infos) and len(joints)), sim.output()
    time.sleep(1.0)     # rates in steady state, not while the node and the probe's discovery are still warming up
    minimum = {'joint_states': 0.8 * 50, 'camera': 0.8 * 10}
    hz = steady_rates({'joint_states': joints, 'camera': images}, minimum, window=3.0)
    assert hz['joint_states'] >= minimum['joint_states'] and hz['camera'] >= minimum['camera'], hz
    image, info = images.latest(), infos.latest()
    assert (image.encoding, image.height, image.width) == ('rgb8', 48, 48)
    assert image_to_rgb(image).std() > 5          # a rendered scene, not a blank frame
    assert (info.height, info.width) == (48, 48) and info.k[0] > 0 and info.k[2] == 24
    assert list(joints.latest().name) == NAMES
    status = diagnostics.latest().status[0]
    assert status.name == 'sim_arm: simulation'
    assert {kv.key for kv in status.values} >= {'joint_states_hz', 'camera_hz', 'rejected_trajectories'}


def test_trajectory_brings_arm_to_target_by_joint_name(sim, arm):
    joints, pub = arm
    start = settle(joints)
    target = np.clip(start + [0.6, -0.5, 0.4], -2.3, 2.3)
    order = [2, 0, 1]                                  # joints matched by name, not by index
    msg = make_trajectory([NAMES[i] for i in order], np.stack([(start + target) / 2, target])[:, order], 0.5)
    t0 = time.monotonic()
    pub.publish(msg)
    assert wait_for(lambda: np.max(np.abs(joints.positions() - target)) < 0.02, timeout=5.0), \
        (joints.positions(), target)
    assert time.monotonic() - t0 < 4.0


def test_future_stamp_delays_start(sim, arm, ros_probe):
    joints, pub = arm
    start = settle(joints)
    target = np.clip(start - [0.4, 0.4, 0.4], -2.3, 2.3)
    begin = ros_probe.get_clock().now().nanoseconds * 1e-9 + 1.5
    pub.publish(make_trajectory(NAMES, target, 0.3, stamp=Time(sec=int(begin), nanosec=int(begin % 1 * 1e9))))
    time.sleep(0.8)
    np.testing.assert_allclose(joints.positions(), start, atol=0.01)
    assert wait_for(lambda: np.max(np.abs(joints.positions() - target)) < 0.02, timeout=5.0)


def bad_trajectories(q: np.ndarray) -> dict:
    good = make_trajectory(NAMES, q + 0.3, 0.5)
    nan, inf, beyond, unknown, missing, times = (make_trajectory(NAMES, q + 0.3, 0.5) for _ in range(6))
    nan.points[0].positions[1] = math.nan
    inf.points[0].positions[0] = math.inf
    beyond.points[0].positions[2] = 3.5
    unknown.joint_names[1] = 'knee'
    missing.joint_names.pop()
    missing.points[0].positions.pop()
    times.points.append(good.points[0])                # same time_from_start twice
    return {'nan': nan, 'inf': inf, 'beyond limits': beyond, 'unknown joint': unknown,
            'missing joint': missing, 'non-increasing time': times}


def sim_status(diagnostics: Inbox) -> dict[str, str]:
    """Key-values of the newest sim_arm diagnostics status."""
    msg = diagnostics.latest()
    status = [st for st in (msg.status if msg else []) if st.name == 'sim_arm: simulation']
    return {kv.key: kv.value for kv in status[0].values} if status else {}


def test_each_bad_trajectory_is_rejected_counted_and_arm_holds(sim, arm, ros_probe):
    joints, pub = arm
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    assert wait_for(lambda: 'rejected_trajectories' in sim_status(diagnostics), timeout=5.0)
    hold = settle(joints)
    before = int(sim_status(diagnostics)['rejected_trajectories'])
    for msg in bad_trajectories(hold).values():
        pub.publish(msg)
    assert wait_for(lambda: int(sim_status(diagnostics)['rejected_trajectories']) == before + 6, timeout=5.0), \
        sim_status(diagnostics)
    assert sim.alive(), sim.output()
    assert 'rejected trajectory' in sim.output()            # warned (throttled: not necessarily once per message)
    np.testing.assert_allclose(joints.positions(), hold, atol=0.01)


def test_controller_does_what_it_is_told_and_reports_commands_over_the_velocity_limit(sim, arm, ros_probe):
    """joint_trajectory_controller semantics: nothing clamps a command that asks for 6 rad/s (the sim must not flatter
    the planner), and /diagnostics counts it against where the arm was when it started."""
    joints, pub = arm
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    assert wait_for(lambda: 'commands_over_velocity_limit' in sim_status(diagnostics), timeout=5.0)
    start = settle(joints)
    before = int(sim_status(diagnostics)['commands_over_velocity_limit'])
    target = start + np.array([0.6 if start[0] < 0 else -0.6, 0.0, 0.0])
    pub.publish(make_trajectory(NAMES, target, 0.1))
    assert wait_for(lambda: abs(joints.positions()[0] - target[0]) < 0.02, timeout=5.0)
    assert wait_for(lambda: int(sim_status(diagnostics)['commands_over_velocity_limit']) == before + 1, 5.0)
    status = sim_status(diagnostics)              # the arm really moved faster than its limit: not clamped
    assert float(status['max_command_start_speed_ratio']) >= 3.5 and float(status['max_joint_speed_ratio']) > 1.5


def test_command_latency_delays_every_trajectory(start_node, ros_probe):
    """A second sim (own topics: the module's sim may be running) that starts each trajectory 0.6 s late."""
    start_node('sim_arm', params={'seed': SEED, 'image_size': 48, 'command_latency_s': 0.6},
               remaps={'joint_states': '/late/joint_states', 'arm_controller/joint_trajectory': '/late/commands',
                       'camera/image_raw': '/late/image', 'camera/camera_info': '/late/camera_info'})
    joints = JointWatcher(ros_probe, NAMES, '/late/joint_states')
    pub = ros_probe.create_publisher(JointTrajectory, '/late/commands', 10)
    assert wait_for(lambda: joints.positions() is not None and pub.get_subscription_count() > 0)
    start = settle(joints)
    pub.publish(make_trajectory(NAMES, start + 0.2, 0.3))
    t0 = time.monotonic()
    assert wait_for(lambda: np.max(np.abs(joints.positions() - start)) > 0.01, timeout=5.0)
    assert time.monotonic() - t0 >= 0.5
    assert wait_for(lambda: np.max(np.abs(joints.positions() - start - 0.2)) < 0.02, timeout=5.0)


def test_reset_service_reseeds_scene_and_stops_motion(sim, arm, ros_probe):
    joints, pub = arm
    client = ros_probe.create_client(Trigger, '/sim_arm/reset')
    assert client.wait_for_service(timeout_sec=10.0)
    q = joints.positions()
    pub.publish(make_trajectory(NAMES, np.clip(q + 1.0, -2.3, 2.3), 4.0))   # slow motion, cut short by reset
    time.sleep(0.3)
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout=10.0)
    assert future.result().success, future.result().message
    expected = make_env().reset(SEED + 1, render=False).qpos
    np.testing.assert_allclose(settle(joints), expected, atol=0.02)


# -- camera realism: late, jittered and dropped frames ---------------------------------------------------------------
class StampedInbox:
    """Each message's publication time (DDS source timestamp: when the sim sent it, however late this busy test
    process takes it) and header stamp, both in ns of the system clock the ROS clock uses."""

    def __init__(self, node, msg_type, topic: str):
        self.node, self._lock, self.items = node, threading.Lock(), []
        node.create_subscription(msg_type, topic, self._on_msg,
                                 QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT))

    def _on_msg(self, msg, info) -> None:
        with self._lock:
            self.items.append((info['source_timestamp'], msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec))

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(publication times, stamps) in seconds, in order of receipt."""
        with self._lock:
            sent, stamps = np.array(self.items, dtype=np.int64).T
        return sent * 1e-9, stamps * 1e-9


def start_camera_sim(start_node, namespace: str, **camera):
    """A sim of its own in `namespace` (its relative topic names move there: the module's sim may be running) with
    camera realism parameters."""
    return start_node('sim_arm', params={'seed': SEED, 'image_size': 32, **camera}, remaps={'__ns': namespace})


def camera_values(diagnostics: Inbox, key: str) -> list[float]:
    """`key` from every sim_arm status received so far (the module's sim, with the camera realism off, may report
    too: the tests look for values only the sim under test can produce)."""
    return [float(kv.value) for msg in diagnostics.messages() for st in msg.status
            if st.name == 'sim_arm: simulation' for kv in st.values if kv.key == key]


def test_camera_link_is_off_by_default_seeded_ordered_and_drops_its_share():
    """The ROS-free delivery model: off = published at exposure; delays within [latency, latency + jitter] plus the
    queue's hold-back; stamp order kept; drop fraction as set; the same seed gives the same run."""
    off = CameraLink(0.0, 0.0, 0.0, seed=0)
    off.push(5, 'frame')
    assert off.pop_due(5) == ['frame'] and off.dropped == 0

    def run(seed, latency=0.2, jitter=0.1, drop=0.5, period=50_000_000, n=2000):
        link, out = CameraLink(latency, jitter, drop, seed), []
        for k in range(n):
            link.push(k * period, k)
            due = link.next_due()
            out += [(due, frame) for frame in link.pop_due(due)] if due is not None and due <= k * period else []
        while link.next_due() is not None:
            due = link.next_due()
            out += [(due, frame) for frame in link.pop_due(due)]
        return link, out

    link, out = run(seed=1)
    frames = [frame for _, frame in out]
    delays = np.array([due - frame * 50_000_000 for due, frame in out]) * 1e-9
    assert frames == sorted(frames) and len(set(frames)) == len(frames)       # stamp order, each frame once
    assert link.dropped + len(frames) == 2000 and 0.45 < link.dropped / 2000 < 0.55
    assert delays.min() >= 0.2 and np.percentile(delays, 90) <= 0.3 + 1e-9 and delays.max() < 0.35
    assert np.ptp(delays) > 0.05                                                # jitter is there
    assert 200 <= link.latency_p50_ms() <= 300
    assert run(seed=1)[1] == out and run(seed=2)[1] != out


@pytest.mark.parametrize('field, value', [('camera_latency_s', -0.1), ('camera_latency_s', 2.5),
                                          ('camera_jitter_s', math.nan), ('camera_drop_rate', 1.0),
                                          ('camera_drop_rate', -0.1)])
def test_bad_camera_realism_values_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SimArmConfig(**{field: value})


def test_camera_latency_delays_publication_not_the_stamp(start_node, ros_probe):
    """Images are stamped at exposure and arrive camera_latency_s later, camera_info under the same header."""
    sim = start_camera_sim(start_node, '/cam_late', camera_latency_s=0.2, camera_hz=10.0)
    images = StampedInbox(ros_probe, Image, '/cam_late/camera/image_raw')
    infos = StampedInbox(ros_probe, CameraInfo, '/cam_late/camera/camera_info')
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    assert wait_for(lambda: len(images) >= 15 and len(infos) >= 15), sim.output()
    sent, stamps = images.arrays()
    age = sent - stamps
    assert age.min() >= 0.2, age                                   # never earlier than the camera's latency
    assert np.mean(age < 0.35) >= 0.8, age                         # and not much later, for most frames
    assert set(infos.arrays()[1]) & set(stamps)                    # camera_info carries its image's header
    assert wait_for(lambda: any(200 <= ms < 350 for ms in camera_values(diagnostics, 'camera_latency_ms_p50')),
                    timeout=5.0), camera_values(diagnostics, 'camera_latency_ms_p50')


def test_dropped_and_jittered_frames_arrive_in_stamp_order_at_the_kept_rate(start_node, ros_probe):
    """camera_drop_rate 0.5 publishes about half of camera_hz and counts the rest; jitter never reorders frames."""
    sim = start_camera_sim(start_node, '/cam_drop', camera_hz=20.0, camera_drop_rate=0.5, camera_jitter_s=0.1)
    images = StampedInbox(ros_probe, Image, '/cam_drop/camera/image_raw')
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    assert wait_for(lambda: len(images) >= 30), sim.output()
    sent, stamps = images.arrays()
    assert np.all(np.diff(stamps) > 0), np.diff(stamps)            # strictly increasing in order of receipt
    hz = (len(stamps) - 1) / (stamps[-1] - stamps[0])              # by the stamps: the test's own stalls don't count
    assert 0.3 * 20 < hz < 0.7 * 20, hz
    assert (sent - stamps).min() >= 0.0

    def dropped() -> float:
        return max(camera_values(diagnostics, 'camera_frames_dropped'), default=0.0)
    assert wait_for(lambda: dropped() > 0, timeout=5.0), camera_values(diagnostics, 'camera_frames_dropped')
    first = dropped()
    assert wait_for(lambda: dropped() > first, timeout=5.0)             # a counter: it keeps growing


@pytest.mark.parametrize('params, needle', [({'image_size': 999}, 'image_size'),
                                            ({'camera_hz': -1.0}, 'camera_hz'),
                                            ({'seed': 'abc'}, 'seed'),
                                            ({'model_file': 'nowhere.xml'}, 'cannot load the scene'),
                                            ({'joint_names': ['a', 'b', 'c']}, "not the scene's actuated joints")])
def test_bad_parameters_fail_at_start_up(start_node, params, needle):
    node = start_node('sim_arm', params=params)
    assert wait_for(lambda: not node.alive(), timeout=20.0)
    assert node.proc.returncode != 0
    log = node.output()
    assert 'configuration error' in log and needle in log, log


def test_a_working_range_inside_the_floor_fails_at_start_up(start_node, tmp_path):
    """Every pose of this description puts the forearm into the floor: sim_arm cannot reset the arm into one."""
    scene = tmp_path / 'arm.xml'
    scene.write_text(FLOOR_ARM)
    params = tmp_path / 'arm.yaml'
    params.write_text(f"""/**:
  ros__parameters:
    model_file: {scene}
    camera: cam
    ee_site: tip
    block_joint: ''
    joint_names: [j1, j2]
    lower: [-1.0, 0.6]
    upper: [1.0, 1.0]
    velocity_limit: [1.5, 1.5]
""")
    node = start_node('sim_arm', params_file=params)
    assert wait_for(lambda: not node.alive(), timeout=20.0)
    log = node.output()
    assert node.proc.returncode == 2 and 'configuration error' in log and 'free of collisions' in log, log


@pytest.mark.parametrize('cls, node', [(SimArmConfig, 'sim_arm'), (ExplorerConfig, 'explorer'),
                                       (TeleopConfig, 'teleop_keyboard')])
def test_config_file_lists_every_parameter_with_its_default(cls, node):
    path = config_path(f'{node}.yaml')
    params = load_section(path, node)
    if node != 'sim_arm':                                     # nodes that command the arm: gate parameters too
        assert build(CommandGateConfig, params.pop('command_gate')) == CommandGateConfig()
    if node == 'explorer':                                    # and the explorer's modes
        assert build(CuriosityConfig, params.pop('curiosity')) == CuriosityConfig()
        assert build(PlayConfig, params.pop('play')) == PlayConfig()
    assert set(params) == set(to_params(cls()))
    assert build(cls, params) == cls()
