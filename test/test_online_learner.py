"""OnlineLearner (ROS-free): replay windows never span gaps, bad frames are refused, surprise falls with training
on a repeated motion, checkpoints round-trip and rotate, a recorded dataset can seed the batches; held-out frames
are never trained on, and a checkpoint is announced only if it is no worse on them than the announced model."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from conftest import wait_for
from jepa_agent.data.episodes import FrameError
from jepa_agent.data.quality import LIMIT_MARGIN_RAD
from jepa_agent.model.checkpoint import load_checkpoint, save_checkpoint
from jepa_agent.model.images import to_model_image
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.sim.arm_env import make_env
from jepa_agent.training.online import OnlineLearner, OnlineLearnerConfig
from jepa_agent.training.replay import ReplayBuffer

SIZE = 32
#: a small held-out split for short streams: frames 40-59, 100-119, ... held out; windows of K=2 + 6 frames
GATE = {'holdout_every': 3, 'holdout_stretch': 20, 'holdout_horizon': 6}


def tiny_model(seed: int = 0, state_head: bool = False, state_readout_hidden: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(ModelConfig(image_size=SIZE, action_dim=3, action_scale=[0.15] * 3, latent_dim=16,
                                  encoder_width=8, feature_dim=32, projector_hidden=64, predictor_width=64,
                                  predictor_depth=2, state_head=state_head, state_readout_hidden=state_readout_hidden))


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
        buffer.add(image, np.array([k * k], np.float32), t)
    assert len(buffer) == 20 and buffer.total == 25
    starts = buffer.window_starts(4, 200, np.random.default_rng(0))
    assert len(starts) > 0
    # frames 5..9 (first sequence, still buffered) and 10..24 (second): no window may contain both 9 and 10
    assert not np.any((starts <= 9) & (starts + 3 >= 10))
    assert np.all(starts >= 5)
    _, actions, qpos = buffer.windows(starts, 4)
    frames = starts[:, None] + np.arange(4)
    np.testing.assert_array_equal(qpos[:, :, 0], frames ** 2)                # frame k has qpos k²
    np.testing.assert_allclose(actions[:, :, 0], 2 * frames[:, :-1] + 1)    # action = motion to the next frame
    buffer.break_sequence()
    buffer.add(image, np.zeros(1, np.float32), times[-1] + 0.1)
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


def test_live_batches_leave_the_batch_norm_statistics_alone(env):
    """Small, correlated live batches must not rewrite the running statistics the model was trained with: with a
    vanishing learning rate, training steps leave the model's (eval-mode) latents unchanged."""
    learner = OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(min_frames=20, learning_rate=1e-12), rate_hz=10)
    frames = repeated_motion(env, 40)
    for frame in frames:
        learner.observe(*frame)
    images = torch.from_numpy(learner.buffer.windows(np.arange(4), 1)[0][:, 0])
    before = learner.model.eval().encode(images)
    for _ in range(5):
        assert learner.train_step() is not None
    torch.testing.assert_close(learner.model.eval().encode(images), before, rtol=1e-4, atol=1e-5)


def test_state_head_keeps_learning_online(env):
    """A model with a state head keeps training it on the live joint states (its readout error falls; without the
    state term the same steps make it worse), and so does its state readout when it has one (decode_state reads
    through it); a model without a head trains without the term."""
    def readout_error_after_training(state_weight: float, readout_hidden: int = 0) -> tuple[float, float]:
        config = OnlineLearnerConfig(min_frames=8, learning_rate=3e-3, state_weight=state_weight)
        learner = OnlineLearner(tiny_model(state_head=True, state_readout_hidden=readout_hidden), {}, config,
                                rate_hz=10)
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
    readout_before, readout_after = readout_error_after_training(1.0, readout_hidden=16)
    assert readout_after < 0.5 * readout_before
    assert readout_error_after_training(0.0)[1] > before
    assert OnlineLearner(tiny_model(), {}, rate_hz=10).objective.config.state_weight == 0.0


def test_checkpoints_round_trip_and_rotate(env, tmp_path):
    announced = []
    config = OnlineLearnerConfig(min_frames=10, checkpoint_dir=str(tmp_path / 'online'), checkpoint_every_s=1e-3,
                                 keep_checkpoints=2, holdout_every=2, holdout_stretch=5, holdout_horizon=2,
                                 announce_margin=1e9)   # every checkpoint passes the gate (tested on its own below)
    learner = OnlineLearner(tiny_model(), {'joint_names': env.joint_names}, config, rate_hz=10,
                            on_checkpoint=announced.append)
    for frame in repeated_motion(env, 20):
        learner.observe(*frame)
    for _ in range(3):
        learner.step()
    assert learner.steps == 3 and len(announced) == 3 and learner.checkpoints_announced == 3
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


def test_frames_beyond_the_joint_limits_or_with_a_constant_image_are_refused(env):
    metadata = {'lower': [-1.0, -1.0, -1.0], 'upper': [1.0, 1.0, 1.0]}
    learner = OnlineLearner(tiny_model(), metadata, OnlineLearnerConfig(min_frames=8), rate_hz=10)
    image, q = env.render(), np.zeros(3)
    just_inside = np.array([1.0 + 0.9 * LIMIT_MARGIN_RAD, 0.0, -1.0 - 0.9 * LIMIT_MARGIN_RAD])
    learner.observe(image, just_inside, q, 0.0)                     # within the tolerance: kept
    beyond = np.array([0.0, -1.0 - 2 * LIMIT_MARGIN_RAD, 0.0])
    with pytest.raises(FrameError, match='joint positions .* beyond the joint limits'):
        learner.observe(image, beyond, q, 0.1)
    with pytest.raises(FrameError, match='targets .* beyond the joint limits'):
        learner.observe(image, q, -beyond, 0.1)
    for value in ([0] * 3, [255] * 3, [200, 30, 30]):     # black, white, and one flat colour
        with pytest.raises(FrameError, match=re.escape(f'constant image (every pixel {value})')):
            learner.observe(np.zeros_like(image) + np.array(value, np.uint8), q, q, 0.1)
    learner.observe(image, q, q, 0.2)
    assert learner.buffer.total == 2 and learner.buffer.newest(2) is None   # refused frames broke the sequence
    with pytest.raises(ValueError, match='upper'):
        OnlineLearner(tiny_model(), {'upper': [1.0, 1.0]}, rate_hz=10)


def test_held_out_frames_are_never_trained_on(env):
    """Frame k carries qpos k: every window the objective trains on holds only training frames, every held-out
    window only frames of one held-out stretch and sequence, and no frame is in both, also after the ring wraps."""
    config = OnlineLearnerConfig(buffer_frames=150, min_frames=8, batch_size=8, **GATE)
    learner = OnlineLearner(tiny_model(), {}, config, rate_hz=10)
    trained, forward = [], learner.objective.forward

    def spy(images, actions, step, qpos):
        trained.append(qpos[:, :, 0].round().long().flatten().tolist())
        return forward(images, actions, step, qpos)
    learner.objective.forward = spy
    rng, image = np.random.default_rng(0), env.render()
    for k in range(260):
        stamp = 0.1 * k + (5.0 if k >= 170 else 0.0)                 # a time gap inside held-out stretch 160-179
        learner.observe(rng.permutation(image.reshape(-1, 3)).reshape(image.shape), [k, 0, 0], [k, 0.1, 0], stamp)
        if k >= 20 and k % 8 == 0:
            assert learner.train_step() is not None
    stretch, every = config.holdout_stretch, config.holdout_every
    held = {k for k in range(260) if (k // stretch) % every == every - 1}    # 40-59, 100-119, 160-179, 220-239
    trained_frames = {k for frames in trained for k in frames}
    assert len(trained) == 30 and trained_frames & set(range(110)) and not trained_frames & held
    starts = learner.buffer.holdout_starts(learner.holdout_window, 1000)
    _, _, qpos = learner.buffer.windows(starts, learner.holdout_window)
    windows = qpos[:, :, 0].round().astype(int)                         # (N, K+H) frame numbers
    assert len(windows) == 3 + 3 + 3 + 13      # 8-frame windows in 110-119 (100-109 left the buffer), 160-169,
    #                                            170-179 (the gap splits the stretch) and 220-239
    assert set(windows.flatten()) <= held and windows.min() >= 260 - 150     # held out, still in the buffer
    assert np.all(windows // stretch == windows[:, :1] // stretch)           # inside one stretch
    assert not np.any((windows == 169).any(1) & (windows == 170).any(1))     # never across the gap


def fitted_tiny_model(frames) -> WorldModel:
    """The tiny model with BatchNorm statistics fitted on the frames' images, like any offline-trained checkpoint's
    (the online learner keeps them; see `train_keeping_batch_norm_statistics`)."""
    model = tiny_model()
    images = torch.from_numpy(np.stack([image for image, *_ in frames])).permute(0, 3, 1, 2).contiguous()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None                     # cumulative average over the one pass
    with torch.no_grad():
        model.train().encode(images)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def train(learner: OnlineLearner, steps: int) -> None:
    for _ in range(steps):
        assert learner.train_step() is not None


@pytest.fixture(scope='module')
def motion(env):
    """120 frames of the repeated motion; under GATE frames 40-59 and 100-119 are held out."""
    return repeated_motion(env, 120)


@pytest.fixture(scope='module')
def trained_weights(motion):
    """The tiny model after 100 online steps on `motion` (held-out frames excluded, as always)."""
    learner = OnlineLearner(fitted_tiny_model(motion), {},
                            OnlineLearnerConfig(min_frames=20, learning_rate=1e-3, **GATE), rate_hz=10)
    for frame in motion:
        learner.observe(*frame)
    train(learner, 100)
    return {name: tensor.clone() for name, tensor in learner.model.state_dict().items()}


def gated_learner(env, motion, tmp_path, **overrides) -> tuple[OnlineLearner, list, list]:
    """A learner from the untrained tiny model that has seen `motion`, announcing and withholding into lists."""
    announced, withheld = [], []
    config = OnlineLearnerConfig(min_frames=20, learning_rate=1e-3, checkpoint_dir=str(tmp_path / 'online'),
                                 **{**GATE, **overrides})
    learner = OnlineLearner(fitted_tiny_model(motion), {'joint_names': env.joint_names}, config, rate_hz=10,
                            on_checkpoint=announced.append, on_withheld=withheld.append)
    for frame in motion:
        learner.observe(*frame)
    return learner, announced, withheld


def test_an_improved_checkpoint_is_announced_and_a_corrupted_one_withheld(env, motion, trained_weights, tmp_path):
    learner, announced, withheld = gated_learner(env, motion, tmp_path)
    learner.model.load_state_dict(trained_weights)     # as if trained here: 100 steps on this stream
    learner.steps = 100
    path = learner.checkpoint()
    assert path is not None and announced == [path] and withheld == [] and learner.checkpoints_announced == 1
    assert learner.last_holdout_error < 0.5 * learner.last_announced_error   # far better than the untrained start
    assert learner.last_holdout_windows == 2 * (20 - learner.holdout_window + 1)
    model, _ = load_checkpoint(path)
    images = torch.from_numpy(learner.buffer.images[:8])
    with torch.no_grad():                       # the frozen announced copy now holds the announced weights
        torch.testing.assert_close(learner.announced_model.encode(images), model.eval().encode(images))
    good = learner.last_holdout_error

    with torch.no_grad():                       # a deliberately corrupted predictor
        for parameter in learner.model.predictor.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    learner.steps += 1
    assert learner.checkpoint() is None
    assert announced == [path] and learner.checkpoints_withheld == 1 and len(withheld) == 1
    assert learner.last_announced_error == pytest.approx(good)             # judged against the announced model
    assert learner.last_holdout_error > good
    assert f'{learner.last_holdout_error:.4g} vs {good:.4g}' in withheld[0] and 'worse' in withheld[0]
    assert learner.last_withheld_reason in withheld[0]
    assert [p.name for p in (tmp_path / 'online').iterdir()] == [path.name]   # nothing written for the planner


def test_a_candidate_trained_on_noise_is_withheld(env, motion, trained_weights, tmp_path):
    """Training on windows of random-noise images and random actions (a garbage stream) makes the model worse on
    the held-out live windows, so its checkpoints are not announced, however long the noise lasts."""
    learner, announced, withheld = gated_learner(env, motion, tmp_path, announce_margin=0.02)
    learner.model.load_state_dict(trained_weights)
    learner.steps = 100
    assert learner.checkpoint() is not None
    live_batch, rng = learner._batch, torch.Generator().manual_seed(0)

    def noise_batch():
        images, actions, qpos = live_batch()
        return (torch.randint(0, 256, images.shape, dtype=torch.uint8, generator=rng),
                0.3 * torch.randn(actions.shape, generator=rng), qpos)
    learner._batch = noise_batch
    for _ in range(2):
        train(learner, 30)
        assert learner.checkpoint() is None
    assert len(announced) == 1 and learner.checkpoints_withheld == 2 and len(withheld) == 2
    assert all('worse than the announce margin +2%' in message for message in withheld)


def test_no_checkpoint_is_announced_before_there_are_held_out_windows(env, tmp_path):
    announced = []
    config = OnlineLearnerConfig(min_frames=10, checkpoint_dir=str(tmp_path / 'online'), checkpoint_every_s=1e-3,
                                 **GATE)
    learner = OnlineLearner(tiny_model(), {}, config, rate_hz=10, on_checkpoint=announced.append)
    for frame in repeated_motion(env, 50):       # frames 40-49: only 3 held-out windows of 8 frames so far
        learner.observe(*frame)
        learner.step()
    assert learner.steps > 0 and announced == [] and learner.checkpoints_withheld == learner.steps
    assert 'only 3 held-out windows' in learner.last_withheld_reason
    assert not (tmp_path / 'online').exists()


@pytest.mark.parametrize('bad', [{'buffer_frames': 4}, {'min_frames': 0}, {'seed_fraction': 1.5},
                                 {'batch_size': 1}, {'learning_rate': 0.0}, {'rollout_steps': 0},
                                 {'duty_cycle': 0.0}, {'checkpoint_every_s': 0.0}, {'keep_checkpoints': 0},
                                 {'holdout_every': 1}, {'holdout_horizon': 0}, {'holdout_stretch': 10},
                                 {'holdout_windows': 3}, {'announce_margin': -1.0},
                                 {'announce_margin': float('nan')}])
def test_bad_config_values_are_refused_with_the_field_named(bad):
    (name, _), = bad.items()
    with pytest.raises(ValueError, match=name):
        OnlineLearnerConfig(**bad)


def test_held_out_split_must_fit_the_model():
    with pytest.raises(ValueError, match='holdout_stretch'):      # K = 2 + 10 steps do not fit in 11 frames
        OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(holdout_stretch=11, holdout_horizon=10), rate_hz=10)
    with pytest.raises(ValueError, match='training window'):      # 4-frame windows between 3-frame stretches
        OnlineLearner(tiny_model(), {}, OnlineLearnerConfig(holdout_every=2, holdout_stretch=3, holdout_horizon=1),
                      rate_hz=10)


def test_a_frameskip_model_is_refused_for_online_learning():
    """Online learning replays consecutive frames as model steps; a model whose step spans 3 frames would be trained
    and judged on the wrong motion, so it is refused with a clear error."""
    model = WorldModel(ModelConfig(image_size=SIZE, action_dim=3, latent_dim=16, frameskip=3))
    with pytest.raises(ValueError, match='frameskip 3'):
        OnlineLearner(model, {'rate_hz': 10.0})


def test_surprise_of_a_frameskip_model_predicts_each_frame_from_frames_one_step_apart():
    """frameskip 2, history 2: frame t is predicted from frames t-4 and t-2 and the joint motion since t-2; every
    frame from the fifth on gets a surprise."""
    from jepa_agent.model.surprise import LatentSurprise
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(image_size=SIZE, action_dim=3, latent_dim=16, history=2, frameskip=2)).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, SIZE, SIZE, 3), dtype=np.uint8)
    qpos = rng.normal(size=(8, 3)).astype(np.float32)
    surprise = LatentSurprise(model)
    values = [surprise.observe(image, q) for image, q in zip(images, qpos)]
    assert values[:4] == [None] * 4 and all(v is not None for v in values[4:])
    with torch.no_grad():
        z = model.encode(torch.stack([to_model_image(image, SIZE) for image in images]))
        for t in range(4, 8):
            predicted = model.predict(z[[t - 4, t - 2]][None], torch.as_tensor(qpos[t] - qpos[t - 2])[None])[0]
            assert values[t] == pytest.approx(float(((predicted - z[t]) ** 2).sum()), rel=1e-4)
