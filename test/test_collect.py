"""`collect-sim`: the explorer → sim_arm → recorder pipeline in simulated time, and the babbling it records."""
from __future__ import annotations

import numpy as np
import pytest

from jepa_agent.data.babble import MotorBabbler
from jepa_agent.data.collect import PipelineTiming, collect_sim
from jepa_agent.data.curiosity import CuriosityConfig, CuriousBabbler
from jepa_agent.data.dataset import action_statistics, frame_actions
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import Frame, episode_dirs
from jepa_agent.nodes.explorer import ExplorerConfig
from jepa_agent.nodes.sim_arm import SimArmConfig
from jepa_agent.sim.arm_env import make_env
from jepa_agent.sim.contact import arm_touches_block
from jepa_agent.sim.push import scripted_push
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


def test_contact_is_read_from_mujoco():
    env = make_env(image_size=32)
    env.reset(3, render=False)
    assert not arm_touches_block(env)                                     # reset places the block clear of the arm
    touched = []
    for action in scripted_push(env, np.random.default_rng(0)):
        env.step(action, render=False)
        touched.append(arm_touches_block(env))
    env.close()
    assert 0 < np.mean(touched) < 1                                       # a push touches the block, not all along


class ContactSurprise:
    """A surprise that marks contact perfectly (plus noise): what curiosity would get from an ideal world model."""

    def __init__(self, env):
        self.env, self.rng = env, np.random.default_rng(0)

    def reset(self) -> None:
        pass

    def observe(self, image: np.ndarray, qpos: np.ndarray) -> float:
        return float(arm_touches_block(self.env)) + 0.1 * self.rng.random()


def contact_fractions(root, source: str) -> list[float]:
    """Per-episode contact fractions of 6 × 200 stepped frames (seeds 0-5, docs/data.md's table)."""
    env = make_env(image_size=16)                                         # contact does not depend on the camera
    infos = collect_sim(root / source, episodes=6, steps=200, seed=0, env=env, source=source, mode='steps',
                        surprise=ContactSurprise(env))
    env.close()
    return [info['contact_fraction'] for info in infos]


@pytest.fixture(scope='module')
def babble_contact(tmp_path_factory) -> list[float]:
    return contact_fractions(tmp_path_factory.mktemp('babble'), 'babble')


def test_play_pushes_the_block_more_than_babbling(tmp_path, babble_contact):
    play = contact_fractions(tmp_path, 'play')
    reader = EpisodeReader(episode_dirs(tmp_path / 'play')[0])
    assert reader.info['source'] == 'play' and reader.info['task'] == 'play' and len(reader) == 200
    assert np.mean(play) > 0.15 and np.mean(play) > np.mean(babble_contact) + 0.03, (babble_contact, play)  # 0.21, 0.13
    with pytest.raises(ValueError, match='source must be one of'):
        collect_sim(tmp_path, episodes=1, steps=3, source='dance')
    with pytest.raises(ValueError, match='needs a world model'):
        collect_sim(tmp_path, episodes=1, steps=3, source='curiosity')


def test_curiosity_raises_contact_given_a_surprise_that_marks_it(tmp_path, babble_contact):
    curious = contact_fractions(tmp_path, 'curiosity')                    # the shipped model's surprise: docs/data.md
    assert np.mean(curious) > np.mean(babble_contact) + 0.05, (babble_contact, curious)   # measured 0.28, 0.13


def test_curiosity_lingers_after_a_surprising_frame():
    values = iter([1.0] * 12 + [50.0])
    babbler = CuriousBabbler(np.full(2, -2.0), np.full(2, 2.0), np.full(2, 1.0), lambda q: next(values))
    q = np.zeros(2)
    for _ in range(12):
        q = babbler.next_target(q, 0.1)                                   # ordinary frames, the arm babbling
    step = np.abs(babbler.next_target(q, 0.1) - q)                        # a surprising one
    assert np.all(step <= babbler.curiosity.slow_fraction * 0.1 + 1e-9) and np.any(step > 0)


def test_curiosity_slows_down_even_when_the_arm_has_just_reached_its_waypoint():
    """A joint range of 0.1 rad: waypoints are reached every few periods. Whichever period the surprising frame
    arrives in, the next step is slow, also when it is the first step towards a new waypoint."""
    slow = CuriosityConfig().slow_fraction * 0.1
    for spike in range(12, 40):
        values = iter([1.0] * spike + [50.0])
        babbler = CuriousBabbler(np.full(2, -0.05), np.full(2, 0.05), np.full(2, 1.0), lambda q: next(values))
        targets = [np.zeros(2)]
        for _ in range(spike + 1):
            targets.append(babbler.next_target(targets[-1], 0.1))
        assert np.abs(targets[-1] - targets[-2]).max() <= slow + 1e-9, spike
