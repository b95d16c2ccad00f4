"""OnlineLearner (ROS-free): replay windows never span gaps, bad frames are refused, surprise falls with training
on a repeated motion, checkpoints round-trip and rotate, a recorded dataset can seed the batches."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from conftest import wait_for
from jepa_agent.model.checkpoint import load_checkpoint, save_checkpoint
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.sim.arm_env import make_env
from jepa_agent.training.online import FrameError, OnlineLearner, OnlineLearnerConfig, ReplayBuffer

SIZE = 32


def tiny_model(seed: int = 0, state_head: bool = False) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(ModelConfig(image_size=SIZE, action_dim=3, action_scale=[0.15] * 3, latent_dim=16,
                                  encoder_width=8, feature_dim=32, projector_hidden=64, predictor_width=64,
                                  predictor_depth=2, state_head=state_head))


@pytest.fixture(scope='module')
def env():
    torch.set_num_threads(1)
    env = make_env(image_size=SIZE)
    yield env
    env.close()


def repeated_motion(env, n: int, start_time: float = 0.0):
    """Frames (image, qpos, target, time) of the arm sweeping the same 20-step loop over and over."""
    obs, frames = env.reset(0), []
    for k in range(n):
        phase = 2 * np.pi * (k % 20) / 20
        wanted = np.array([0.8 * np.sin(phase), 0.8 * np.cos(phase), 0.5 * np.sin(2 * phase)])
        target = env.clip_targets(wanted, reference=obs.qpos)
        frames.append((obs.image, obs.qpos, target, start_time + 0.1 * k))
        obs = env.step(target - obs.qpos)
    return frames


def mean_surprise(learner: OnlineLearner, frames) -> float:
    values = []
    for frame in frames:
        learner.observe(*frame)
        value = learner.surprise()
        if value is not None:
            values.append(value)
    assert len(values) >= len(frames) - learner.model.config.history
    return float(np.mean(values))


def test_replay_windows_stay_inside_one_sequence():
    buffer = ReplayBuffer(capacity=20, image_size=4, n_joints=1, period_s=0.1)
    image = np.zeros((3, 4, 4), np.uint8)
    times = [0.1 * k for k in range(10)] + [5.0 + 0.1 * k for k in range(15)]   # a gap after frame 9
    for k, t in enumerate(times):
        buffer.add(image, np.array([k], np.float32), np.array([k + 0.5], np.float32), t)
    assert len(buffer) == 20 and buffer.total == 25
    starts = buffer.window_starts(4, 200, np.random.default_rng(0))
    assert len(starts) > 0
    # frames 5..9 (first sequence, still buffered) and 10..24 (second): no window may contain both 9 and 10
    assert not np.any((starts <= 9) & (starts + 3 >= 10))
    assert np.all(starts >= 5)
    _, actions, qpos = buffer.windows(starts, 4)
    np.testing.assert_allclose(actions, 0.5)            # action = target - qpos of the same frame
    np.testing.assert_array_equal(qpos[:, :, 0], starts[:, None] + np.arange(4))   # frame k has qpos k
    buffer.break_sequence()
    buffer.add(image, np.zeros(1, np.float32), np.zeros(1, np.float32), times[-1] + 0.1)
    assert buffer.newest(2) is None                      # the explicit break splits the newest pair


def test_bad_frames_are_refused_and_break_the_sequence(env):
    learner = OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(min_frames=8), rate_hz=10)
    image, q = env.render(), env.joint_positions()
    learner.observe(image, q, q, 0.0)
    with pytest.raises(FrameError, match='non-finite'):
        learner.observe(image, q * np.nan, q, 0.1)
    with pytest.raises(FrameError, match='joint'):
        learner.observe(image, q[:2], q[:2], 0.1)
    with pytest.raises(FrameError, match='image'):
        learner.observe(image[:, :, 0:2], q, q, 0.1)
    learner.observe(image, q, q, 0.2)
    assert learner.buffer.total == 2
    assert learner.buffer.newest(2) is None              # the refused frames broke the sequence
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)   # another camera size is resized to the model's
    learner.observe(big, q, q, 0.3)
    assert learner.buffer.images[2].shape == (3, SIZE, SIZE)


def test_surprise_falls_while_training_on_a_repeated_motion(env):
    learner = OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(min_frames=20, batch_size=16,
                                                                  learning_rate=1e-3), rate_hz=10)
    frames = repeated_motion(env, 80)
    for frame in frames[:40]:
        learner.observe(*frame)
    losses = [learner.train_step() for _ in range(20)]
    early = mean_surprise(learner, frames[40:60])
    losses += [learner.train_step() for _ in range(80)]
    late = mean_surprise(learner, frames[60:80])
    assert all(loss is not None and np.isfinite(loss) for loss in losses)
    assert late < 0.5 * early, (early, late)
    assert learner.steps == 100 and learner.skipped_batches == 0


def test_state_head_keeps_learning_online(env):
    """A model with a state head keeps training it on the live joint states (its readout error falls; without the
    state term the same steps make it worse); a model without a head trains without the term."""
    def readout_error_after_training(state_weight: float) -> tuple[float, float]:
        config = OnlineLearnerConfig(min_frames=8, learning_rate=3e-3, state_weight=state_weight)
        learner = OnlineLearner(tiny_model(state_head=True), {}, config, rate_hz=10)
        for frame in repeated_motion(env, 40):
            learner.observe(*frame)
        images, _, qpos = learner.buffer.windows(np.arange(len(learner.buffer)), 1)

        def error() -> float:
            learner.model.eval()
            with torch.no_grad():
                q = learner.model.decode_state(learner.model.encode(torch.from_numpy(images[:, 0])))
            return float((q - torch.from_numpy(qpos[:, 0])).square().mean())
        before = error()
        for _ in range(100):
            learner.train_step()
        return before, error()

    before, after = readout_error_after_training(1.0)
    assert after < 0.5 * before
    assert readout_error_after_training(0.0)[1] > before
    assert OnlineLearner(tiny_model(), {}, rate_hz=10).objective.config.state_weight == 0.0


def test_checkpoints_round_trip_and_rotate(env, tmp_path):
    announced = []
    config = OnlineLearnerConfig(min_frames=10, checkpoint_dir=str(tmp_path / 'online'), checkpoint_every_s=1e-3,
                                 keep_checkpoints=2)
    learner = OnlineLearner(tiny_model(), {'joint_names': env.joint_names}, config, rate_hz=10,
                            on_checkpoint=announced.append)
    for frame in repeated_motion(env, 20):
        learner.observe(*frame)
    for _ in range(3):
        learner.step()
    assert learner.steps == 3 and len(announced) == 3
    assert sorted(p.name for p in (tmp_path / 'online').iterdir()) == [p.name for p in announced[-2:]]
    model, metadata = load_checkpoint(announced[-1])
    assert metadata['joint_names'] == env.joint_names and metadata['online_steps'] == 3
    images = torch.from_numpy(learner.buffer.images[:4])
    learner.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.encode(images), learner.model.encode(images))


def test_background_thread_reports_surprise_and_trains(env):
    reports = []
    learner = OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(min_frames=10, duty_cycle=1.0), rate_hz=10,
                            on_surprise=reports.append)
    learner.start()
    try:
        for frame in repeated_motion(env, 30):
            learner.observe(*frame)
            time.sleep(0.05)   # a live stream: frames arrive while the thread trains
        assert wait_for(lambda: learner.steps >= 5 and len(reports) >= 3, timeout=20)
    finally:
        learner.stop()
    assert all(np.isfinite(r) for r in reports)


def test_seed_dataset_is_mixed_in_and_must_match(env, tmp_path):
    from jepa_agent.data.collect import collect_sim
    collect_sim(tmp_path / 'data', episodes=1, steps=12, seed=3, env=env)
    config = OnlineLearnerConfig(min_frames=4, seed_dataset=str(tmp_path / 'data'), seed_fraction=0.5)
    learner = OnlineLearner(tiny_model(), {'joint_names': env.joint_names}, config, rate_hz=10)
    for frame in repeated_motion(env, 6):
        learner.observe(*frame)
    images, actions, qpos = learner._batch()
    assert images.shape == (16, learner.window, 3, SIZE, SIZE) and actions.shape == (16, learner.window - 1, 3)
    assert qpos.shape == (16, learner.window, 3)
    assert learner.train_step() is not None
    with pytest.raises(ValueError, match='joints'):
        OnlineLearner(tiny_model(), {'joint_names': ['a', 'b', 'c']}, config, rate_hz=10)


def test_nan_batch_is_skipped_not_trained(env, monkeypatch):
    learner = OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(min_frames=8), rate_hz=10)
    for frame in repeated_motion(env, 12):
        learner.observe(*frame)
    real_batch = learner._batch
    monkeypatch.setattr(learner, '_batch', lambda: (real_batch()[0], real_batch()[1] * np.nan, real_batch()[2]))
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    assert learner.train_step() is None
    assert learner.skipped_batches == 1 and learner.steps == 0
    for name, tensor in learner.model.state_dict().items():
        if tensor.is_floating_point() and 'running' not in name:
            torch.testing.assert_close(tensor, before[name])


def test_saved_checkpoint_can_start_a_new_learner(env, tmp_path):
    save_checkpoint(tiny_model(), tmp_path / 'start', {'joint_names': env.joint_names, 'rate_hz': 5.0})
    model, metadata = load_checkpoint(tmp_path / 'start')
    learner = OnlineLearner(model, metadata)
    assert learner.rate_hz == 5.0 and learner.buffer.period_s == pytest.approx(0.2)


@pytest.mark.parametrize('bad', [{'buffer_frames': 4}, {'min_frames': 0}, {'seed_fraction': 1.5},
                                 {'batch_size': 1}, {'learning_rate': 0.0}, {'rollout_steps': 0},
                                 {'duty_cycle': 0.0}, {'checkpoint_every_s': 0.0}, {'keep_checkpoints': 0}])
def test_bad_config_values_are_refused_with_the_field_named(bad):
    (name, _), = bad.items()
    with pytest.raises(ValueError, match=name):
        OnlineLearnerConfig(**bad)
