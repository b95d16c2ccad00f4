"""The record_teleop scenario with real processes (what record_teleop.launch.py starts): sim arm + keyboard teleop
(keys piped in) + recorder driven by its services. The episode holds the jog (measured and commanded), verifies, and
trains: it loads as WindowDataset windows with the jog in their actions.
launch_pytest twin: test_launch_recording.py."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import wait_for
from ros_helpers import JointWatcher, RecorderStatus
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
    status = RecorderStatus(ros_probe)
    assert wait_for(lambda: joints.positions() is not None, timeout=60), sim.output()
    start = joints.positions()
    assert wait_for(lambda: call(ros_probe, '/recorder/start_episode').success, timeout=30), recorder.output()

    # keys wait until teleop's publisher has matched both the sim and the recorder: no jog is lost to discovery
    teleop = start_node('teleop_keyboard', stdin=subprocess.PIPE, params={'min_subscribers': 2})
    teleop.proc.stdin.write(b'qqqq')                     # shoulder +0.4 rad in four jogs
    teleop.proc.stdin.close()
    assert wait_for(lambda: abs(joints.positions()[0] - start[0] - 0.4) < 0.02, timeout=30), teleop.output()
    reached = ros_probe.get_clock().now().nanoseconds * 1e-9
    assert wait_for(lambda: not teleop.alive(), timeout=15) and teleop.proc.returncode == 0, teleop.output()
    # 1 s of frames stored after the arm arrived: more than the recorder's backlog of camera images on a busy machine
    assert wait_for(lambda: status.frames_recorded_since(reached) >= 10, timeout=30), status.values()[-3:]
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


def test_babbling_recorded_through_the_nodes_and_in_simulated_time_share_one_dataset(tmp_path):
    """`demo --learn`'s data: one episode through sim_arm + explorer + recorder, then collect-sim appends to the same
    dataset (same arm, rate and camera), and the windows train on both."""
    from jepa_agent.data.collect import collect_sim
    from jepa_agent.demo import EPISODE_FRAMES, record_babbling
    from jepa_agent.sim.arm_env import make_env

    data = tmp_path / 'learn'
    assert record_babbling(data, seed=4, log_dir=tmp_path / 'logs', episodes=1, timeout_s=120) >= 1
    env = make_env()
    collect_sim(data, episodes=1, steps=20, seed=0, env=env)
    env.close()
    problems, _ = verify_dataset(data)
    assert problems == []
    readers = [EpisodeReader(path) for path in episode_dirs(data)]
    assert len(readers[0]) >= EPISODE_FRAMES and len(readers[-1]) == 20
    assert np.ptp(readers[0].qpos, axis=0).max() > 0.3                     # the explorer moved the arm
    windows = WindowDataset(data, window=4)
    assert len(windows) >= EPISODE_FRAMES - 3 + 17


def test_the_second_example_arm_is_recorded_by_parameters_alone(start_node, ros_probe, tmp_path):
    """config/examples/arm4.yaml: another MJCF (four joints, other names and limits, an oblique 80 px bgr8 camera,
    no block) under another namespace, recorded by sim_arm + explorer + recorder with no code of its own."""
    from jepa_agent.resources import config_path
    params_file, names = config_path('examples/arm4.yaml'), ['turret_yaw', 'shoulder_pitch', 'elbow_pitch',
                                                              'wrist_pitch']
    data, ns = tmp_path / 'arm4', {'__ns': '/arm4'}
    sim = start_node('sim_arm', params_file=params_file, remaps=ns)
    start_node('explorer', params_file=params_file, remaps=ns)
    recorder = start_node('recorder', params_file=params_file, remaps=ns, params={'dataset_dir': str(data)})
    joints = JointWatcher(ros_probe, names, topic='/arm4/joint_states')
    assert wait_for(lambda: joints.positions() is not None, timeout=60), sim.output()
    assert wait_for(lambda: (data / 'dataset.json').exists() and len(EpisodeReader(episode_dirs(data)[0])) >= 40,
                    timeout=60), recorder.output()
    assert recorder.stop() == 0, recorder.output()
    reader = EpisodeReader(episode_dirs(data)[0])
    assert reader.meta.joint_names == names and reader.meta.image_shape == (80, 80, 3)
    assert np.ptp(reader.qpos, axis=0).min() > 0.05                          # every joint babbled
    assert verify_dataset(data)[0] == []
    from jepa_agent.sim.arm_env import make_env
    env = make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='', image_size=80)
    view = env.render(reader.qpos[-1]).astype(int)         # the scene's only joints are the arm's: qpos is the state
    env.close()
    image = reader.images[-1].astype(int)                  # bgr8 on the wire, stored as RGB
    assert np.abs(image - view).mean() < 0.5 * np.abs(image[..., ::-1] - view).mean()
