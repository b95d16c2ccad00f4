"""`jepa-agent eval-model`: JSON metrics and plot, and clear failures on bad checkpoints or short data."""
import json

import numpy as np
import pytest
import torch

from jepa_agent.cli import main
from jepa_agent.data.collect import collect_sim
from jepa_agent.model.checkpoint import save_checkpoint
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.sim.arm_env import ArmEnv, ArmEnvConfig
from jepa_agent.training.evaluation import distance_correlations

TINY = ModelConfig(image_size=32, encoder_width=8, feature_dim=32, projector_hidden=32, latent_dim=16,
                   predictor_width=32, predictor_depth=1, action_scale=[0.15] * 3)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'val'
    collect_sim(root, episodes=2, steps=20, seed=5, env=ArmEnv(ArmEnvConfig(image_size=32)))
    return root


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    trained_on = {'joint_names': ['shoulder', 'elbow', 'wrist'], 'lower': [-2.8, -2.5, -2.5], 'upper': [2.8, 2.5, 2.5],
                  'velocity_limit': [1.5] * 3, 'rate_hz': 10.0, 'image_height': 32, 'image_width': 32}
    return save_checkpoint(WorldModel(TINY), tmp_path / 'ckpt', trained_on)


def test_eval_model_writes_metrics_and_plot(dataset, checkpoint, tmp_path, capsys):
    out = tmp_path / 'eval' / 'metrics.json'
    assert main(['eval-model', '--checkpoint', str(checkpoint), '--data', str(dataset), '--json', str(out),
                 '--device', 'cpu']) == 0
    metrics = json.loads(out.read_text())
    assert metrics['latent_dim'] == 16
    assert 1.0 <= metrics['effective_rank'] <= 16
    assert len(metrics['rollout_error']) == 10 and all(e >= 0 for e in metrics['rollout_error'])
    assert metrics['rollout_error_ratio'] == pytest.approx(metrics['rollout_error'][-1] / metrics['rollout_error'][0])
    assert len(metrics['per_dim_std']) == 16 and len(metrics['persistence_error']) == 10
    assert -1 <= metrics['latent_vs_ee_spearman'] <= 1 and -1 <= metrics['latent_vs_joint_spearman'] <= 1
    assert out.with_suffix('.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'effective_rank' in capsys.readouterr().out


def test_state_readout_error_is_reported_for_models_with_a_state_head(dataset, tmp_path):
    import dataclasses
    from jepa_agent.training.evaluation import evaluate
    from jepa_agent.training.trainer import open_windows
    torch.manual_seed(0)
    model = WorldModel(dataclasses.replace(TINY, state_head=True))
    with torch.no_grad():     # a readout of a constant: its error is the spread of each joint
        model.state_head.weight.zero_()
        model.state_head.bias.zero_()
    data = open_windows(dataset, model.config.history + 10, 1)
    metrics = evaluate(model, data)
    assert metrics['windows'] == len(data)           # every window is evaluated, so the RMSE is known exactly
    qpos = np.concatenate([data[i]['qpos'].numpy() for i in range(len(data))])
    np.testing.assert_allclose(metrics['state_readout_rmse_rad'], np.sqrt(np.square(qpos).mean(0)), rtol=1e-4)
    assert 'state_readout_rmse_rad' not in evaluate(WorldModel(TINY), data)


def test_distance_correlation_detects_a_faithful_latent():
    rng = np.random.default_rng(0)
    qpos = rng.uniform(-1, 1, (500, 3))
    isometry = np.linalg.qr(rng.normal(size=(8, 3)))[0]               # (8, 3) orthonormal columns
    faithful = qpos @ isometry.T
    assert distance_correlations(faithful, qpos, None)['latent_vs_joint_spearman'] > 0.99
    assert abs(distance_correlations(rng.normal(size=(500, 8)), qpos, None)['latent_vs_joint_spearman']) < 0.1


def test_bad_checkpoint_fails_cleanly(dataset, checkpoint, capsys):
    (checkpoint / 'model.safetensors').write_bytes(b'garbage')
    assert main(['eval-model', '--checkpoint', str(checkpoint), '--data', str(dataset)]) == 1
    assert 'corrupt or truncated' in capsys.readouterr().err


def test_too_short_episodes_fail_cleanly(checkpoint, tmp_path, capsys):
    collect_sim(tmp_path / 'short', episodes=1, steps=8, seed=0, env=ArmEnv(ArmEnvConfig(image_size=32)))
    assert main(['eval-model', '--checkpoint', str(checkpoint), '--data', str(tmp_path / 'short')]) == 1
    assert 'no episode with at least 12 frames' in capsys.readouterr().err
