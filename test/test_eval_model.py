"""`jepa-agent eval-model`: JSON metrics and plot, the block probe, and clear failures on bad checkpoints or short
data."""
import json

import numpy as np
import pytest
import torch

from jepa_agent.cli import main
from jepa_agent.data.collect import collect_sim
from jepa_agent.model.checkpoint import save_checkpoint
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.resources import model_path
from jepa_agent.sim.arm_env import ArmEnv, ArmEnvConfig, make_env
from jepa_agent.training.evaluation import distance_correlations
from jepa_agent.training.probe import collect_frames, score_probe

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
                 '--device', 'cpu', '--no-block-probe']) == 0
    metrics = json.loads(out.read_text())
    assert metrics['latent_dim'] == 16
    assert 1.0 <= metrics['effective_rank'] <= 16
    assert len(metrics['rollout_error']) == 10 and all(e >= 0 for e in metrics['rollout_error'])
    assert metrics['rollout_error_ratio'] == pytest.approx(metrics['rollout_error'][-1] / metrics['rollout_error'][0])
    assert len(metrics['per_dim_std']) == 16 and len(metrics['persistence_error']) == 10
    assert -1 <= metrics['latent_vs_ee_spearman'] <= 1 and -1 <= metrics['latent_vs_joint_spearman'] <= 1
    assert out.with_suffix('.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'effective_rank' in capsys.readouterr().out
    assert not any(key.startswith('block_probe') for key in metrics)


def test_eval_model_probes_the_block_with_the_shipped_model(tmp_path, capsys):
    collect_sim(tmp_path / 'val', episodes=1, steps=14, seed=7, env=ArmEnv(ArmEnvConfig(image_size=64)))
    out = tmp_path / 'metrics.json'
    assert main(['eval-model', '--checkpoint', str(model_path('reach_64px')), '--data', str(tmp_path / 'val'),
                 '--json', str(out), '--device', 'cpu', '--probe-seeds', '8']) == 0
    metrics = json.loads(out.read_text())
    for key in ('block_probe_r2', 'ee_probe_r2', 'block_probe_r2_predicted_10', 'block_probe_r2_encoded_10',
                'block_probe_r2_unmoved_10'):
        assert metrics[key] <= 1
    assert metrics['block_probe_pushes'] >= 2 and metrics['block_probe_error_unmoved_10_m'] > 0.02
    assert 'block 10 steps after contact' in capsys.readouterr().out


class CentroidModel:
    """Stand-in world model whose latent is the image centroid of one colour plus noise, and whose rollout repeats the
    last latent: it sees that object exactly and foresees no motion."""

    def __init__(self, colour):
        self.config, self.colour = ModelConfig(image_size=64), colour

    def eval(self):
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        r, g, b = images.float().unbind(-3)
        mask = self.colour(r, g, b).float()                                       # (..., S, S)
        rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing='ij')
        area = mask.sum((-1, -2)).clamp(min=1)
        centroid = torch.stack([(mask * cols).sum((-1, -2)) / area, (mask * rows).sum((-1, -2)) / area], -1)
        noise = torch.randn(*centroid.shape[:-1], 6, generator=torch.Generator().manual_seed(0))
        return torch.cat([centroid + 0.3 * noise[..., :2], noise[..., 2:]], -1)

    def rollout(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return z_hist[:, -1:].expand(-1, actions.shape[1], -1)


def block_colour(r, g, b):
    return (r > 200) & (g > 90) & (g < 180) & (b < 60)


def tip_colour(r, g, b):
    return (r > 200) & (g > 190) & (b < 100)


@pytest.fixture(scope='module')
def probe_frames():
    return collect_frames(make_env(image_size=64, task='push'), seeds=16)


def test_block_probe_reads_what_the_latent_sees(probe_frames):
    sees_block = score_probe(CentroidModel(block_colour), probe_frames)
    sees_tip = score_probe(CentroidModel(tip_colour), probe_frames)
    assert sees_block['block_probe_r2'] > 0.98 and sees_block['ee_probe_r2'] < 0.3
    assert sees_tip['ee_probe_r2'] > 0.98 and sees_tip['block_probe_r2'] < 0.5   # pushes put the tip at the block


def test_block_probe_tells_seeing_from_foreseeing(probe_frames):
    metrics = score_probe(CentroidModel(block_colour), probe_frames)
    assert metrics['block_probe_error_encoded_10_m'] < 0.01 and metrics['block_probe_error_unmoved_10_m'] > 0.05
    assert metrics['block_probe_error_predicted_10_m'] == pytest.approx(metrics['block_probe_error_unmoved_10_m'],
                                                                        abs=0.01)


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
