"""The record_teleop scenario with real processes (what record_teleop.launch.py starts): sim arm + keyboard teleop
(keys piped in) + recorder driven by its services. The episode holds the jog (measured and commanded), verifies, and
trains: it loads as WindowDataset windows with the jog in their actions.
launch_pytest twin: test_launch_recording.py."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import wait_for
from ros_helpers import JointWatcher
from std_srvs.srv import Trigger

from jepa_agent.data.cli import verify_dataset
from jepa_agent.data.dataset import WindowDataset
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episodes import episode_dirs

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']


def call(node, service: str, timeout: float = 15.0) -> Trigger.Response:
    client = node.create_client(Trigger, service)
    assert client.wait_for_service(timeout_sec=timeout), f'{service} not available'
    future = client.call_async(Trigger.Request())
    assert wait_for(future.done, timeout), f'{service} did not answer'
    return future.result()


def test_teleop_session_is_recorded_and_usable_for_training(start_node, ros_probe, tmp_path):
    data = tmp_path / 'teleop'
    sim = start_node('sim_arm', params={'seed': 2})
    recorder = start_node('recorder', params={'dataset_dir': str(data)})
    joints = JointWatcher(ros_probe, NAMES)
    assert wait_for(lambda: joints.positions() is not None, timeout=60), sim.output()
    start = joints.positions()
    assert wait_for(lambda: call(ros_probe, '/recorder/start_episode').success, timeout=30), recorder.output()

    # keys wait until teleop's publisher has matched both the sim and the recorder: no jog is lost to discovery
    teleop = start_node('teleop_keyboard', stdin=subprocess.PIPE, params={'min_subscribers': 2})
    teleop.proc.stdin.write(b'qqqq')                     # shoulder +0.4 rad in four jogs
    teleop.proc.stdin.close()
    assert wait_for(lambda: abs(joints.positions()[0] - start[0] - 0.4) < 0.02, timeout=30), teleop.output()
    assert wait_for(lambda: not teleop.alive(), timeout=15) and teleop.proc.returncode == 0, teleop.output()
    response = call(ros_probe, '/recorder/stop_episode')
    assert response.success, response.message
    assert recorder.stop() == 0, recorder.output()
    assert sim.stop() == 0, sim.output()

    problems, _ = verify_dataset(data)
    assert problems == []
    (episode,) = episode_dirs(data)
    reader = EpisodeReader(episode)
    assert len(reader) >= 10
    assert reader.qpos[-1][0] - reader.qpos[0][0] > 0.3           # the jog is in the measured joints
    assert reader.target[-1][0] == pytest.approx(start[0] + 0.4, abs=0.02)   # and in the commanded targets
    assert np.abs(reader.images[-1].astype(int) - reader.images[0].astype(int)).mean() > 1.0   # the view changed
    windows = WindowDataset(data, window=4)
    actions = np.concatenate([windows[i]['actions'].numpy() for i in range(len(windows))])
    assert actions[:, 0].max() > 0.05 and np.all(np.isfinite(actions))
