"""The sim_demo scenario with real processes (what sim_demo.launch.py and `jepa-agent demo` start): sim_arm in the
scene of a goal seed + planner with the shipped model and that seed's goal image. The planner plans, commands the arm
within its limits, the arm moves, and both nodes exit cleanly — here on an "arm" whose topics and camera size differ
from the defaults, set by remapping and parameters only (as real_arm.launch.py does). Also `jepa-agent demo` end to
end (one short goal).
The launch_testing twin is test_launch_sim_demo.py."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from conftest import REPO, wait_for
from ros_helpers import Inbox, JointWatcher
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.data.messages import trajectory_points
from jepa_agent.demo import write_goal_image
from jepa_agent.resources import model_path
from jepa_agent.ros import topics

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
LOWER, UPPER = np.array([-2.8, -2.5, -2.5]), np.array([2.8, 2.5, 2.5])
SEED = 1000
CAMERA = 96          # the shipped model sees 64 px: the planner resizes
REMAPS = {topics.IMAGE: '/robot/wrist_cam/image', topics.JOINT_STATES: '/robot/joint_states',
          topics.TRAJECTORY: '/robot/position_controller/joint_trajectory'}


def test_sim_and_planner_reach_for_the_goal_of_a_seed_on_remapped_topics(start_node, ros_probe, tmp_path):
    goal = write_goal_image(SEED, tmp_path / 'goal.png', image_size=CAMERA)
    sim = start_node('sim_arm', params={'seed': SEED, 'image_size': CAMERA}, remaps=REMAPS)
    planner = start_node('planner', params={'goal_image_path': str(goal), 'checkpoint': str(model_path())},
                         remaps=REMAPS)
    joints = JointWatcher(ros_probe, NAMES, topic=REMAPS[topics.JOINT_STATES])
    plans = Inbox(ros_probe, JointTrajectory, '/jepa_agent/plan')
    commands = Inbox(ros_probe, JointTrajectory, REMAPS[topics.TRAJECTORY])
    assert wait_for(lambda: joints.positions() is not None, timeout=60), sim.output()
    start = joints.positions()
    assert wait_for(lambda: len(commands) >= 10 and len(plans) >= 10, timeout=90), planner.output()
    assert wait_for(lambda: np.abs(joints.positions() - start).max() > 0.05, timeout=30), 'the arm never moved'
    for msg in commands.messages() + plans.messages():
        _, positions = trajectory_points(msg, NAMES)                 # valid, finite, increasing times
        assert np.all(positions >= LOWER) and np.all(positions <= UPPER)
    assert 'goal image from' in planner.output()
    assert (f'from {REMAPS[topics.IMAGE]}, {REMAPS[topics.JOINT_STATES]} to {REMAPS[topics.TRAJECTORY]}'
            in planner.output())                                     # the start-up log shows the names in use
    assert planner.stop() == 0, planner.output()
    assert sim.stop() == 0, sim.output()


def test_demo_command_runs_a_goal_and_writes_its_summary(tmp_path):
    out = tmp_path / 'demo'
    run = subprocess.run([sys.executable, '-m', 'jepa_agent.cli', 'demo', '--goals', '1', '--goal-timeout', '4',
                          '--out', str(out)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'goal 1/1 (seed 1000)' in run.stdout and 'held: ' in run.stdout
    report = json.loads((out / 'demo.json').read_text())
    assert report['episodes'] == 1 and 0.0 <= report['success_rate'] <= report['touched_rate'] <= 1.0
    assert report['planner']['plan_latency_ms_p50'] > 0              # the planner node really planned
    assert report['planner']['frame_to_command_ms_p50'] > 0 and report['planner']['plan_rate_hz'] > 0
    assert (out / 'summary.png').stat().st_size > 0
    with Image.open(out / 'episodes.gif') as gif:                  # current view | goal | planned end pose
        assert gif.size == (3 * 64 * 3, 64 * 3) and gif.n_frames > 10
        gif.seek(gif.n_frames - 1)
        assert np.asarray(gif.convert('RGB'))[:, 2 * 64 * 3:].max() > 0      # a plan from the planner, rendered
    for log in ('sim_arm.log', 'planner.log'):
        assert 'Traceback' not in (out / 'logs' / log).read_text()


def test_demo_push_scores_the_block_it_sees_on_the_sim(tmp_path):
    """`demo --task push`: the first seed from 8000 with a scripted push (the sim is reset forward to it), scored on
    the block's pose from sim_arm at the end of twice the push's periods."""
    from jepa_agent.planning.evaluate import goal_seeds
    from jepa_agent.sim import make_env
    env = make_env(task='push')
    (seed,) = goal_seeds(env, 8000, 1, 'push')
    env.reset(seed, render=False)
    start = env.block_pos()
    goal = env.sample_goal(seed)
    out = tmp_path / 'demo'
    run = subprocess.run([sys.executable, '-m', 'jepa_agent.cli', 'demo', '--task', 'push', '--goals', '1',
                          '--seed', '8000', '--out', str(out)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f'goal 1/1 (seed {seed}): block ' in run.stdout and 'block at its goal: ' in run.stdout, run.stdout
    report = json.loads((out / 'demo.json').read_text())
    assert report['task'] == 'push' and report['episodes'] == 1
    final = report['final_distance_m']['mean']                                       # rounded to 0.1 mm
    if abs(final - env.config.push_tolerance) > 1e-4:                                # scored at the end, on the block
        assert report['success_rate'] == float(final <= env.config.push_tolerance)
    assert 0.0 <= final <= np.linalg.norm(goal.block_pos - start) + 0.1               # the block, not the arm
