"""`collect-sim`: the explorer → sim_arm → recorder pipeline in simulated time, and the babbling it records."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_agent.data.babble import MotorBabbler
from jepa_agent.data.collect import PipelineTiming, collect_sim
from jepa_agent.data.dataset import action_statistics, frame_actions
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import Frame, episode_dirs
from jepa_agent.nodes.explorer import ExplorerConfig
from jepa_agent.nodes.sim_arm import SimArmConfig
from jepa_agent.sim.arm_env import make_env
from test_episodes import META


def test_pipeline_timing_is_the_nodes_defaults():
    timing, sim, explorer = PipelineTiming(), SimArmConfig(), ExplorerConfig()
    assert timing.tick_s == pytest.approx(1.0 / sim.control_hz)
    assert (timing.joint_state_hz, timing.camera_hz) == (sim.joint_state_hz, sim.camera_hz)
    assert (timing.command_latency_s, timing.camera_latency_s, timing.camera_jitter_s, timing.camera_drop_rate) == \
        (sim.command_latency_s, sim.camera_latency_s, sim.camera_jitter_s, sim.camera_drop_rate)
    assert timing.explorer_hz == explorer.rate_hz       # (the explorer's gate is CommandGateConfig()'s defaults:
                                                        # test_node_parameters checks node defaults == config/)


def test_episodes_are_recorded_frames_of_a_moving_arm(tmp_path):
    env = make_env(image_size=32)
    infos = collect_sim(tmp_path / 'a', episodes=2, steps=60, seed=7, env=env)
    collect_sim(tmp_path / 'b', episodes=1, steps=60, seed=7, env=env)
    env.close()
    assert [info['n_frames'] for info in infos] == [60, 60]
    first, again = (EpisodeReader(episode_dirs(tmp_path / d)[0]) for d in ('a', 'b'))
    np.testing.assert_array_equal(first.qpos, again.qpos)                 # a seed gives one episode
    np.testing.assert_array_equal(first.images, again.images)
    period = np.diff(first.times)
    assert np.all(period > 0.05) and np.median(period) == pytest.approx(0.1, abs=0.01)   # the recorder's 10 Hz grid
    assert np.all(first.frames['image_stamp'] == first.times)             # frames are camera exposures
    speed = np.abs(frame_actions(first.qpos)) / period[:, None]
    assert speed.max() > 0.2 and speed.max() <= 1.1 * env.velocity_limit[0]   # moving, never beyond the limit


def test_babbler_walks_on_from_its_target_while_the_arm_lags():
    lower, upper, limit = np.full(2, -2.0), np.full(2, 2.0), np.full(2, 1.0)
    babbler = MotorBabbler(lower, upper, limit)
    first = babbler.next_target(np.zeros(2), 0.1)
    lagging = first * 0.3                                                 # the arm is behind its command
    second = babbler.next_target(lagging, 0.1)
    step = np.abs(second - first)
    assert np.all(step <= 0.1 + 1e-9) and np.any(step > 1e-3)             # one step on from the previous target
    elsewhere = np.array([1.5, -1.5])                                     # e.g. after a reset
    third = babbler.next_target(elsewhere, 0.1)
    assert np.all(np.abs(third - elsewhere) <= 0.1 + 1e-9)                # restarts where the arm is


def test_action_statistics_of_a_known_motion(tmp_path):
    qpos = np.array([[0.0, 0.0], [0.1, -0.2], [0.3, -0.4]])
    target = qpos + np.array([[0.2, -0.4], [0.2, -0.2], [0.0, 0.0]])          # the arm moves half of each step
    with EpisodeWriter(tmp_path, META) as writer:
        for k in range(3):
            writer.append(Frame(time=0.1 * k, image=np.full(META.image_shape, k, np.uint8), qpos=qpos[k],
                                target=target[k], qvel=np.zeros(2), image_stamp=0.1 * k, joint_stamp=0.1 * k))
    stats = action_statistics(tmp_path)
    assert stats['command_response'] == pytest.approx(np.sum(np.diff(qpos, axis=0) * (target - qpos)[:2])
                                                      / np.sum((target - qpos)[:2] ** 2))
    assert stats['mean_speed'] == pytest.approx(np.abs(np.diff(qpos, axis=0)).mean() * 10)


def test_steps_mode_is_one_env_step_per_frame(tmp_path):
    env = make_env(image_size=32, controller='rate_limited')
    collect_sim(tmp_path, episodes=1, steps=30, seed=2, env=env, mode='steps')
    env.close()
    reader = EpisodeReader(episode_dirs(tmp_path)[0])
    assert len(reader) == 30 and reader.info['mode'] == 'steps'
    np.testing.assert_allclose(np.diff(reader.times), env.control_dt)                  # idealized timing
    assert np.all(np.abs(reader.target - reader.qpos) <= env.max_delta + 1e-9)        # one period's step
    assert action_statistics(tmp_path)['command_response'] > 0.8                        # setpoints jumped: near full
    with pytest.raises(ValueError, match='mode must be one of'):
        collect_sim(tmp_path, episodes=1, steps=3, env=env, mode='fast')
