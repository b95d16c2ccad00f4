"""planner as a real process: hard safety rules (limits, NaN, stale inputs, no goal, bad goals), goal service,
model hot swap, clean failure without a model, and the sim arm moving toward a goal image."""
import os
import threading
import time

import numpy as np
import pytest
from conftest import NodeProcess, spinning_node, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile
from ros_helpers import Inbox, JointWatcher
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.data.messages import duration_to_sec, trajectory_points
from jepa_agent.model.checkpoint import save_checkpoint
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.resources import model_path
from jepa_agent.ros.conversions import rgb_to_image
from jepa_agent.ros.qos import LATCHED, RELIABLE, SENSOR
from jepa_agent.sim import make_env

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
LOWER, UPPER, VELOCITY = np.array([-2.8, -2.5, -2.5]), np.array([2.8, 2.5, 2.5]), 1.5     # the sim arm's limits
COMMANDS = '/arm_controller/joint_trajectory'


def tiny_checkpoint(directory, seed=0):
    """An untrained (random) world model: plans are arbitrary, which is what the bounds must withstand."""
    torch = pytest.importorskip('torch')
    torch.manual_seed(seed)
    model = WorldModel(ModelConfig(action_scale=[0.15] * 3, encoder_width=8, feature_dim=32, projector_hidden=32,
                                   latent_dim=16, predictor_width=32, predictor_depth=1))
    metadata = {'joint_names': NAMES, 'lower': LOWER.tolist(), 'upper': UPPER.tolist(),
                'velocity_limit': [1.5] * 3, 'rate_hz': 10.0, 'image_height': model.config.image_size,
                'image_width': model.config.image_size}
    return str(save_checkpoint(model.eval(), directory, metadata))


class Feeder:
    """Publishes camera frames (10 Hz) and joint states (20 Hz) like a robot; `mode` injects faults."""

    def __init__(self, node):
        self.image_pub = node.create_publisher(Image, '/camera/image_raw', SENSOR)
        self.joint_pub = node.create_publisher(JointState, '/joint_states', RELIABLE)
        self.q = np.array([2.75, -2.45, 0.3])            # next to the limits, so clipping is exercised
        self.mode = 'ok'
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        rng, k = np.random.default_rng(0), 0
        while not self._stop.wait(0.05):
            k += 1
            q = np.array([self.q[0], np.nan, self.q[2]]) if self.mode == 'nan_joints' else self.q
            if self.mode != 'no_joints':
                self.joint_pub.publish(JointState(name=['extra', *NAMES[::-1]], position=[9.0, *q[::-1]]))
            if k % 2 or self.mode == 'no_camera':
                continue
            if self.mode == 'nan_image':
                msg = Image(height=64, width=64, encoding='32FC3', step=64 * 12)
                msg.data = np.full((64, 64, 3), np.nan, np.float32).tobytes()
            elif self.mode == 'black_camera':
                msg = rgb_to_image(np.zeros((64, 64, 3), np.uint8))
            else:
                msg = rgb_to_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
            self.image_pub.publish(msg)

    def stop(self):
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope='module')
def probe():
    with spinning_node(f'planner_probe_{os.getpid()}') as node:
        yield node


@pytest.fixture(scope='class')
def rig(probe, tmp_path_factory):
    """One planner process (tiny random model, no goal yet), fed by the probe; commands collected."""
    root = tmp_path_factory.mktemp('planner')
    planner = NodeProcess('planner', params={'checkpoint': tiny_checkpoint(root / 'model_a'), 'stale_timeout_s': 0.5,
                                             'cem.num_samples': 64, 'cem.num_iterations': 2, 'cem.horizon': 5,
                                             'cem.num_elites': 8, 'cem.num_retained': 2},
                          log_dir=root)
    feeder = Feeder(probe)
    commands = Inbox(probe, JointTrajectory, COMMANDS)
    plans = Inbox(probe, JointTrajectory, '/jepa_agent/plan')
    goal_pub = probe.create_publisher(Image, '/jepa_agent/goal_image', LATCHED)
    assert wait_for(lambda: goal_pub.get_subscription_count() > 0, 30), planner.output()
    latched = [goal_pub]                              # destroyed at the end (not mid-class: see the flood test)
    yield dict(planner=planner, feeder=feeder, commands=commands, plans=plans, goal_pub=goal_pub, root=root,
               latched=latched)
    feeder.stop()
    for publisher in latched:                         # latched goals must not reach later tests' planners
        probe.destroy_publisher(publisher)
    assert planner.stop() == 0, planner.output()


def new_commands(rig, seconds):
    """Commands the planner sends during the next `seconds` (by their send time; late deliveries still count)."""
    start = time.time()
    time.sleep(seconds + 0.5)                       # + time for a command sent at the end to arrive
    return rig['commands'].sent_between(start, start + seconds)


def next_commands(rig, n, timeout=20.0):
    """The next `n` commands (fewer if they do not come within `timeout`)."""
    before = len(rig['commands'])
    wait_for(lambda: len(rig['commands']) >= before + n, timeout)
    return rig['commands'].messages()[before:before + n]


def flowing(rig, timeout=15.0):
    before = len(rig['commands'])
    return wait_for(lambda: len(rig['commands']) >= before + 2, timeout)


def assert_holds(rig, mode):
    """In fault `mode` nothing new is published (after one in-flight plan at most); back to normal, it resumes."""
    rig['feeder'].mode = mode
    time.sleep(1.5)                                  # stale timeout 0.5 s + one in-flight plan on a busy CPU
    assert new_commands(rig, 1.5) == [], f'{mode}: commands kept coming\n' + rig['planner'].output()[-2000:]
    rig['feeder'].mode = 'ok'
    assert flowing(rig), f'{mode}: did not resume\n' + rig['planner'].output()[-2000:]


class TestSafety:
    """Hard rules, checked on one planner process fed by the test (starting it is the slow part)."""

    def test_without_a_goal_the_planner_idles(self, rig):
        time.sleep(1.5)       # fresh camera and joints are flowing
        assert len(rig['commands']) == 0
        assert rig['planner'].alive()

    def test_goal_of_another_size_and_encoding_is_converted_and_used(self, rig):
        bgr = np.zeros((96, 128, 3), np.uint8)
        bgr[:, :, 0] = 200                               # blue in BGR order
        bgr[40:60, 50:80, 1] = 255                       # and a green patch: a flat colour is no view
        msg = rgb_to_image(bgr)
        msg.encoding = 'bgr8'
        rig['goal_pub'].publish(msg)
        assert flowing(rig), rig['planner'].output()
        assert 'resized 128x96 -> 64x64' in rig['planner'].output()

    def test_every_published_point_is_within_position_and_velocity_limits(self, rig):
        for q in (np.array([2.75, -2.45, 0.3]), np.array([-2.79, 2.49, -2.45])):
            rig['feeder'].q = q
            messages = next_commands(rig, 6)
            assert len(messages) == 6
            for msg in messages[2:]:                      # the first ones may stem from the previous position
                times, points = trajectory_points(msg, NAMES)
                assert np.all(points >= LOWER - 1e-9) and np.all(points <= UPPER + 1e-9), points
                velocity = np.abs(np.diff(np.vstack([q, points]), axis=0)) / np.diff(np.r_[0.0, times])[:, None]
                assert np.all(velocity <= VELOCITY + 1e-6), (q, points, times)
                assert msg.header.stamp.sec == 0 and msg.header.stamp.nanosec == 0     # start now
        plan = rig['plans'].latest()
        assert len(plan.points) == 5 and duration_to_sec(plan.points[-1].time_from_start) == pytest.approx(0.5)
        rig['feeder'].q = np.array([0.0, 0.0, 0.0])

    def test_each_command_lasts_past_the_next_plan(self, rig):
        """cover_latency: a plan takes > 0 s and frames come every control period, so each command spans at least
        two periods (one to cover the gap, one spare) and the arm never runs out of trajectory between plans."""
        for msg in next_commands(rig, 4):
            times, _ = trajectory_points(msg, NAMES)
            assert len(times) >= 2 and times[-1] >= 0.2 - 1e-9, times

    def test_debug_image_and_diagnostics_show_what_the_planner_does(self, rig, probe):
        """~/debug_image: current view | goal (resized to it) | cost plot, 64 px high; /diagnostics: timing (the
        search ahead of each frame too) and the at-goal state."""
        images = Inbox(probe, Image, '/planner/debug_image', SENSOR)
        diagnostics = Inbox(probe, DiagnosticArray, '/diagnostics')
        assert wait_for(lambda: len(images) > 0, 20), rig['planner'].output()[-2000:]
        image = images.latest()
        assert (image.height, image.width, image.encoding) == (64, 256, 'rgb8')

        def planner_values():
            return [{kv.key: kv.value for kv in st.values} for msg in diagnostics.messages() for st in msg.status
                    if st.name == 'planner']
        searched_ahead = lambda: [v for v in planner_values() if v['search_ahead_ms_p50'] != 'nan']  # noqa: E731
        assert wait_for(searched_ahead, 10), planner_values()[-1:]            # cem.anticipate, the default
        values = searched_ahead()[-1]
        assert values['at_goal'] in ('True', 'False') and float(values['frame_to_command_ms_p50']) > 0
        assert float(values['plan_rate_hz']) > 0 and float(values['search_ahead_ms_p50']) > 0

    def test_non_finite_joint_states_hold(self, rig):
        assert_holds(rig, 'nan_joints')

    def test_non_finite_camera_image_holds(self, rig):
        assert_holds(rig, 'nan_image')

    def test_stale_camera_holds(self, rig):
        assert_holds(rig, 'no_camera')

    def test_stale_joint_states_hold(self, rig):
        assert_holds(rig, 'no_joints')

    def test_disabled_planner_publishes_nothing(self, rig, probe):
        client = AsyncParameterClient(probe, 'planner')
        assert client.wait_for_services(10)

        def set_enabled(value):
            future = client.set_parameters([Parameter('enabled', value=value)])
            assert wait_for(future.done, 10) and future.result().results[0].successful

        set_enabled(False)
        time.sleep(1.0)
        assert new_commands(rig, 1.5) == []
        set_enabled(True)
        assert flowing(rig)

    def test_a_flat_colour_camera_frame_or_goal_is_rejected_and_the_planner_holds(self, rig):
        """A camera that delivers one colour (lens cap, dead sensor) gives nothing to plan from."""
        rig['goal_pub'].publish(rgb_to_image(np.full((64, 64, 3), 30, np.uint8)))
        assert wait_for(lambda: 'rejected goal_image: constant image' in rig['planner'].output(), 10)
        assert_holds(rig, 'black_camera')

    def test_goal_with_unsupported_encoding_is_rejected_with_a_warning(self, rig):
        msg = Image(height=8, width=8, encoding='16UC1', step=16, data=bytes(128))
        rig['goal_pub'].publish(msg)
        assert wait_for(lambda: 'rejected goal_image' in rig['planner'].output(), 10)
        assert flowing(rig)                              # still planning toward the previous goal

    def test_a_flood_of_bad_goals_and_announcements_is_counted_throttled_and_truncated(self, rig, probe):
        """84 bad goals with 1000-character encodings and a 5000-character model path: a few short warning lines,
        every one counted on /diagnostics, no traceback, and planning goes on."""
        diagnostics = Inbox(probe, DiagnosticArray, '/diagnostics')
        before = rig['planner'].output()
        bad_goals = probe.create_publisher(Image, '/jepa_agent/goal_image',
                                           QoSProfile(depth=100, durability=LATCHED.durability))
        announce = probe.create_publisher(String, '/jepa_agent/model_updated', LATCHED)
        assert wait_for(lambda: bad_goals.get_subscription_count() > 0, 10)
        for _ in range(84):
            bad_goals.publish(Image(height=8, width=8, encoding='x' * 1000, step=24, data=bytes(192)))
            time.sleep(0.01)                         # paced: the goal subscription keeps only the newest message
        announce.publish(String(data='/' + 'p' * 5000))

        def counted():
            values = {kv.key: kv.value for msg in diagnostics.messages() for st in msg.status
                      if st.name == 'planner' for kv in st.values}
            return int(values.get('rejected_goal_image', 0)) >= 42 and values.get('rejected_model_update') == '1'
        assert wait_for(counted, 10), rig['planner'].output()[len(before):][-3000:]
        rig['latched'] += [announce, bad_goals]     # destroying them while the probe spins races its executor
        new = rig['planner'].output()[len(before):]
        assert new.count('rejected goal_image') <= 2 and 'Traceback' not in new, new[-3000:]
        assert max(len(line) for line in new.splitlines()) < 600, new[-3000:]
        assert rig['planner'].alive() and flowing(rig), rig['planner'].output()[-3000:]

    def test_goal_from_current_view_service(self, rig, probe):
        client = probe.create_client(Trigger, '/planner/set_goal_from_current_view')
        assert client.wait_for_service(10)
        responses = []

        def answered_yes():   # 'no fresh camera image' is a correct answer while best-effort frames are being lost
            responses.append(client.call(Trigger.Request(), timeout_sec=10))
            return responses[-1].success
        assert wait_for(answered_yes, 10), [r.message for r in responses]
        assert wait_for(lambda: 'goal set from the current view' in rig['planner'].output(), 5)

    def test_new_model_is_swapped_in_without_dropping_control(self, rig, probe):
        path = tiny_checkpoint(rig['root'] / 'model_b', seed=1)
        announce = probe.create_publisher(String, '/jepa_agent/model_updated', LATCHED)
        announce.publish(String(data=path))
        count, last_change, longest_gap = len(rig['commands']), time.monotonic(), 0.0

        def swapped():
            nonlocal count, last_change, longest_gap
            if len(rig['commands']) > count:
                count, last_change = len(rig['commands']), time.monotonic()
            longest_gap = max(longest_gap, time.monotonic() - last_change)
            return f'now planning with the model from {path}' in rig['planner'].output()
        assert wait_for(swapped, 20), rig['planner'].output()
        rig['latched'].append(announce)
        assert flowing(rig)
        assert longest_gap < 3.0, longest_gap          # planning went on while the new model loaded


def test_missing_checkpoint_fails_cleanly(tmp_path):
    node = NodeProcess('planner', params={'checkpoint': str(tmp_path / 'nothing')}, log_dir=tmp_path)
    assert wait_for(lambda: not node.alive(), 60)
    output = node.output()
    assert node.stop() == 2, output
    assert 'cannot load the world model' in output and 'Traceback' not in output


def test_planner_moves_the_sim_arm_toward_a_goal_image(probe, tmp_path):
    """sim_arm + planner with the shipped model: the end effector gets closer to the goal pose's.

    The goal is the start pose with the shoulder turned 0.8 rad: far enough to need many replans, and a motion every
    world model sees (see docs/planning.md for what the current model misses on distal joints).
    """
    seed = 1234
    env = make_env()
    env.reset(seed)
    q_goal = env.joint_positions() + np.array([0.8, 0.0, 0.0]) * (1 if env.joint_positions()[0] < 0 else -1)
    qpos = env.data.qpos.copy()
    for name, q in zip(NAMES, q_goal):
        qpos[env.model.joint(name).qposadr[0]] = q
    goal_image, goal_ee = env.render(qpos), env.forward_kinematics(q_goal)
    sim = NodeProcess('sim_arm', params={'seed': seed}, log_dir=tmp_path)
    planner = NodeProcess('planner', params={'checkpoint': str(model_path('reach_64px'))}, log_dir=tmp_path)
    joints = JointWatcher(probe, NAMES)
    goal_pub = probe.create_publisher(Image, '/jepa_agent/goal_image', LATCHED)
    try:
        assert wait_for(lambda: joints.positions() is not None and goal_pub.get_subscription_count() > 0, 40), \
            planner.output()
        start = np.linalg.norm(env.forward_kinematics(joints.positions()) - goal_ee)
        goal_pub.publish(rgb_to_image(goal_image))
        best = start
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and best > 0.3 * start:
            time.sleep(0.2)
            best = min(best, np.linalg.norm(env.forward_kinematics(joints.positions()) - goal_ee))
        assert best <= 0.3 * start, (start, best, planner.output()[-3000:])
    finally:
        probe.destroy_publisher(goal_pub)
        stopped = planner.stop()                      # Ctrl-C while planning: threads end before the context
        sim.stop()
    output = planner.output()
    assert stopped == 0 and 'context is invalid' not in output and 'Traceback' not in output, output[-3000:]
