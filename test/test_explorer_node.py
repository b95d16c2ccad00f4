"""explorer as a real process: drives the sim arm within limits (the main job's pipeline), or any arm."""
import dataclasses

import numpy as np
import pytest
from conftest import wait_for
from ros_helpers import Inbox, JointWatcher, steady_rates
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.data.messages import trajectory_points
from jepa_agent.robot import RobotDescription
from jepa_agent.resources import config_path
from jepa_agent.ros import topics
from jepa_agent.ros.qos import SENSOR
from jepa_agent.sim import make_env

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
TOPIC = '/arm_controller/joint_trajectory'


def test_default_joint_limits_are_the_sim_arms():
    env, limits = make_env(), RobotDescription()
    assert limits.joint_names == env.joint_names
    np.testing.assert_array_equal(limits.lower, env.lower)
    np.testing.assert_array_equal(limits.upper, env.upper)
    np.testing.assert_array_equal(limits.velocity_limit, env.velocity_limit)


def test_sim_and_explorer_run_together_at_rate_within_limits(start_node, ros_probe):
    sim = start_node('sim_arm', args=['--ros-args', '--params-file', str(config_path('sim_arm.yaml'))],
                     params={'seed': 1})
    explorer = start_node('explorer', args=['--ros-args', '--params-file', str(config_path('explorer.yaml'))],
                          params={'seed': 5})
    joints = JointWatcher(ros_probe, NAMES)
    images = Inbox(ros_probe, Image, '/camera/image_raw', SENSOR)
    commands = Inbox(ros_probe, JointTrajectory, TOPIC)
    assert wait_for(lambda: len(joints) and len(images) and len(commands), timeout=30.0), \
        sim.output() + explorer.output()
    start = len(joints)
    minimum = {'joint_states': 0.8 * 50, 'camera': 0.8 * 10, 'commands': 0.8 * 10}
    hz = steady_rates({'joint_states': joints, 'camera': images, 'commands': commands}, minimum, window=4.0)
    assert all(hz[name] >= floor for name, floor in minimum.items()), hz
    positions = np.array([msg.position for msg in joints.messages()[start:]])
    env = make_env()
    assert np.all(positions >= env.lower - 0.02) and np.all(positions <= env.upper + 0.02)
    assert np.all(np.ptp(positions, axis=0) > 0.1), np.ptp(positions, axis=0)   # every joint babbles
    assert 'rejected' not in sim.output()
    assert sim.alive() and explorer.alive()


def test_explorer_drives_another_arm_by_parameters_and_remaps(start_node, ros_probe):
    """Another arm: its joints and limits are parameters, its topics remaps of the fixed names, and the start-up
    log shows the names the node really uses."""
    limits = RobotDescription(joint_names=['j1', 'j2'], lower=[-0.5, 0.0], upper=[0.5, 1.0],
                               velocity_limit=[0.5, 2.0])
    explorer = start_node('explorer', params={**dataclasses.asdict(limits), 'rate_hz': 20.0},
                          remaps={topics.JOINT_STATES: '/other/joint_states', topics.TRAJECTORY: '/other/command'})
    commands = Inbox(ros_probe, JointTrajectory, '/other/command')
    default = Inbox(ros_probe, JointTrajectory, TOPIC)
    state_pub = ros_probe.create_publisher(JointState, '/other/joint_states', 10)
    state = JointState(name=['j2', 'extra', 'j1'], position=[0.5, 9.0, 0.0])   # by name, with an unrelated joint
    ros_probe.create_timer(0.02, lambda: state_pub.publish(state))
    assert wait_for(lambda: len(commands) >= 10, timeout=20.0), explorer.output()
    assert 'on /other/command from /other/joint_states' in explorer.output()
    assert len(default) == 0 and ros_probe.count_publishers(TOPIC) == 0      # nothing on the default name
    for msg in commands.messages():
        times, targets = trajectory_points(msg, limits.joint_names)
        assert np.all(targets >= limits.lower) and np.all(targets <= limits.upper)
        step = np.abs(targets[0] - [0.0, 0.5])
        assert np.all(step <= np.array(limits.velocity_limit) * times[0] + 1e-9), step   # velocity-limited


@pytest.mark.parametrize('params, why', [({'lower': [-1.0, -1.0]}, 'one value per joint'),
                                         ({'mode': 'dance'}, "mode must be one of ('babble', 'curiosity', 'play')"),
                                         ({'mode': 'play', 'joint_names': ['a', 'b', 'c']},
                                          'mode play mirrors the sim arm')])
def test_explorer_rejects_bad_configuration_at_start_up(start_node, params, why):
    node = start_node('explorer', params=params)
    assert wait_for(lambda: not node.alive(), timeout=20.0)
    assert node.proc.returncode != 0 and 'configuration error' in node.output(), node.output()
    assert why in node.output()


def test_curious_explorer_slows_down_after_a_surprise_and_skips_bad_ones(start_node, ros_probe):
    """mode curiosity: the probe plays the arm (its joint state, at the last commanded target, on every command and
    at 50 Hz) and the trainer (a surprise of 1 for every frame). Babbling at 0.3-1x the velocity limit, then a
    surprise far above the recent ones: the explorer moves at curiosity.slow_fraction of the limit while it lingers
    (so slowly here that it cannot reach its waypoint within the checked periods, however late the surprise is
    taken). A NaN surprise is skipped with a warning. Both streams follow the commands rather than the probe's timers,
    which once (under a multi-threaded executor) fired in bursts seconds apart: with fewer than ten surprises the
    explorer ignored the spike."""
    limit, dt, slow, spike_at = 1.5, 0.1, 0.01, 30
    explorer = start_node('explorer', params={'mode': 'curiosity', 'seed': 3, 'curiosity.hold': 3.0,
                                              'curiosity.slow_fraction': slow})
    state_pub = ros_probe.create_publisher(JointState, '/joint_states', 10)
    surprise_pub = ros_probe.create_publisher(Float32, '/jepa_agent/surprise', 10)
    state = {'q': [0.0, 0.0, 0.0]}

    def publish_state() -> None:
        state_pub.publish(JointState(name=NAMES, position=state['q']))

    ros_probe.create_timer(0.02, publish_state)
    received: list[JointTrajectory] = []
    surprises = {5: float('nan'), spike_at: 1000.0}

    def follow(msg: JointTrajectory) -> None:
        state['q'] = [float(x) for x in msg.points[-1].positions]
        publish_state()
        received.append(msg)
        surprise_pub.publish(Float32(data=surprises.get(len(received), 1.0)))

    ros_probe.create_subscription(JointTrajectory, TOPIC, follow, 10)
    assert wait_for(lambda: len(received) >= spike_at + 15, timeout=60.0), explorer.output()
    targets = np.array([trajectory_points(msg, NAMES)[1][-1] for msg in received])
    steps = np.abs(np.diff(targets, axis=0)).max(axis=1)                    # largest joint step per period
    assert np.median(steps[1:spike_at - 1]) > 0.3 * limit * dt - 1e-6, steps    # babbling
    assert np.all(steps[spike_at + 5:spike_at + 14] <= slow * limit * dt + 1e-6), steps   # lingering
    assert 'rejected surprise: nan' in explorer.output() and explorer.alive()
    assert 'curious about the surprise on /jepa_agent/surprise' in explorer.output()


def test_playing_explorer_pushes_the_block_it_sees_on_the_sim(start_node, ros_probe):
    """mode play with sim_arm: the block, which sim_arm publishes with each joint state, is pushed away from where it
    started. Babbling is confined to 5 % of each joint range around its centre, which does not reach the block in
    this scene (mode babble: not moved in 60 s); play's pushes go to the block (about 10 s)."""
    sim = start_node('sim_arm', params={'seed': 2})
    blocks = Inbox(ros_probe, PoseStamped, '/sim/block_pose')
    assert wait_for(lambda: len(blocks) > 0, timeout=60.0), sim.output()
    first = blocks.latest().pose.position
    start = np.array([first.x, first.y])
    env = make_env()
    env.reset(2, render=False)
    np.testing.assert_allclose(start, env.block_pos(), atol=1e-3)             # the sim's block, where it rests
    assert blocks.latest().header.frame_id == 'world'

    def moved() -> float:
        p = blocks.latest().pose.position
        return float(np.linalg.norm(np.array([p.x, p.y]) - start))

    explorer = start_node('explorer', params={'mode': 'play', 'seed': 1, 'amplitude': 0.05,
                                              'play.babble_fraction': 0.0})
    assert wait_for(lambda: moved() > 0.03, timeout=60.0), (moved(), explorer.output())
    bad = PoseStamped()
    bad.pose.position.x = float('nan')
    ros_probe.create_publisher(PoseStamped, '/sim/block_pose', 10).publish(bad)
    assert wait_for(lambda: 'rejected block_pose' in explorer.output(), timeout=20.0), explorer.output()
    assert 'playing with the block on /sim/block_pose' in explorer.output() and sim.alive() and explorer.alive()
