"""World-model quality measures: collapse statistics, rollout error vs horizon, and whether latent distance tracks
the arm's configuration (what a latent-distance planner relies on).

Rollout errors are mean squared latent errors divided by the latents' total variance, so 1.0 means "no better than
guessing the mean latent" whatever the latent scale; `persistence_error` is the same for the baseline that predicts
no change (the last seen latent), which shows how much of the motion the model predicts. `held_out_error` is the
online learner's checkpoint gate: the rollout error as a fraction of the persistence baseline's.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from jepa_agent.model.regularizers import effective_rank
from jepa_agent.model.world_model import WorldModel
from jepa_agent.training.losses import prediction_errors

#: windows encoded at once by `held_out_error` (bounds the memory of the evaluation)
HOLDOUT_CHUNK = 8
#: a model whose latents move less than this share of their variance over the held-out windows cannot be judged
MIN_MOTION = 1e-6


def latent_statistics(z: torch.Tensor) -> dict:
    """Per-dimension std, its mean/min, and the effective rank of latents (N, D)."""
    z = z.detach().float()
    std = z.std(0)
    return {'latent_dim': int(z.shape[1]), 'per_dim_std': std.tolist(), 'std_mean': float(std.mean()),
            'std_min': float(std.min()), 'effective_rank': effective_rank(z)}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank_a, rank_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def distance_correlations(z: np.ndarray, qpos: np.ndarray, ee: np.ndarray | None, groups: np.ndarray | None = None,
                          pairs: int = 4000, seed: int = 0) -> dict:
    """Spearman correlation of latent distance with joint-space (and end-effector) distance over random pairs.

    With `groups` (e.g. episode ids), both frames of a pair come from one group: episodes differ in things the
    arm's pose does not describe (where the block lies), and a reach goal shares those with the current view.
    """
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(z), pairs)
    if groups is None:
        j = rng.integers(0, len(z), pairs)
    else:
        order = np.argsort(groups, kind='stable')
        first = np.searchsorted(groups[order], groups[i], side='left')
        last = np.searchsorted(groups[order], groups[i], side='right')
        j = order[first + (rng.random(pairs) * (last - first)).astype(int)]
    latent = np.linalg.norm(z[i] - z[j], axis=1)
    result = {'latent_vs_joint_spearman': _spearman(latent, np.linalg.norm(qpos[i] - qpos[j], axis=1))}
    if ee is not None:
        result['latent_vs_ee_spearman'] = _spearman(latent, np.linalg.norm(ee[i] - ee[j], axis=1))
    return result


@torch.no_grad()
def evaluate(model: WorldModel, dataset, horizon: int = 10, max_windows: int = 512, batch_size: int = 64,
             end_effector=None) -> dict:
    """Metrics of `model` on evenly spaced windows of `dataset` (window ≥ history + horizon).

    `end_effector(qpos (N, J)) -> (N, 2)` adds the latent-vs-end-effector distance correlation when given.
    Distance correlations use pairs of frames from the same episode (`dataset.locate(i)[0]`).
    """
    model.eval()
    k = model.config.history
    if dataset.window < k + horizon:
        raise ValueError(f'dataset windows hold {dataset.window} frames; need history + horizon = {k + horizon}')
    if len(dataset) == 0:
        raise ValueError('dataset has no windows long enough for this evaluation')
    device = model.action_scale.device
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(max_windows, len(dataset))).astype(int))
    squared_errors, persistence, latents, qpos, episodes = [], [], [], [], []
    for start in range(0, len(indices), batch_size):
        items = [dataset[int(i)] for i in indices[start:start + batch_size]]
        images = torch.stack([it['images'][:k + horizon] for it in items]).to(device)
        actions = torch.stack([it['actions'][:k + horizon - 1] for it in items]).to(device)
        z = model.encode(images)                                                  # (B, T, D)
        predicted = model.rollout(z[:, :k], actions[:, k - 1:])                   # (B, horizon, D)
        squared_errors.append((predicted - z[:, k:]).square().sum(-1).cpu())      # (B, horizon)
        persistence.append((z[:, k - 1:k] - z[:, k:]).square().sum(-1).cpu())    # 'nothing moves' baseline
        latents.append(z.flatten(0, 1).cpu())
        qpos.append(torch.stack([it['qpos'][:k + horizon] for it in items]).flatten(0, 1))
        episodes += [dataset.locate(int(i))[0] for i in indices[start:start + batch_size] for _ in range(k + horizon)]
    z_all, q_all = torch.cat(latents), torch.cat(qpos).numpy()
    total_variance = float(z_all.var(0).sum())
    errors = torch.cat(squared_errors).mean(0) / max(total_variance, 1e-12)
    baseline = torch.cat(persistence).mean(0) / max(total_variance, 1e-12)
    stats = latent_statistics(z_all)
    ee = end_effector(q_all) if end_effector is not None else None
    readout = {}
    if model.state_head is not None:   # how well the joints can be read from a view (planners may rely on it)
        residual = model.decode_state(z_all.to(device)).cpu().numpy() - q_all
        readout['state_readout_rmse_rad'] = np.sqrt(np.square(residual).mean(0)).round(5).tolist()
    return {**stats, 'effective_rank_fraction': stats['effective_rank'] / stats['latent_dim'],
            'frameskip': model.config.frameskip,
            'rollout_error': errors.tolist(), 'rollout_error_ratio': float(errors[-1] / errors[0]),
            'persistence_error': baseline.tolist(), **readout,
            'windows': len(indices), **distance_correlations(z_all.numpy(), q_all, ee, np.array(episodes))}


@torch.no_grad()
def held_out_error(model: WorldModel, images: torch.Tensor, actions: torch.Tensor) -> float:
    """Rollout error of `model` over windows images (B, K+H, 3, S, S), actions (B, K+H-1, J) as a fraction of the
    persistence baseline's (the last seen latent) on the same windows, in the model's own latent space: 0 = perfect,
    1 = no better than "nothing moves". inf when its latents hardly move over the windows (collapsed or blind)."""
    model.eval()
    k = model.config.history
    rollout = persistence = 0.0
    latents = []
    for chunk in range(0, len(images), HOLDOUT_CHUNK):
        z = model.encode(images[chunk:chunk + HOLDOUT_CHUNK]).float()                   # (B, K+H, D)
        _, per_step = prediction_errors(model, z, z[:, k:], actions[chunk:chunk + HOLDOUT_CHUNK])   # (H,)
        rollout += float(per_step.mean()) * len(z)
        persistence += float((z[:, k - 1:k] - z[:, k:]).square().mean()) * len(z)
        latents.append(z.flatten(0, 1))
    variance = float(torch.cat(latents).var(0).mean())
    if not persistence / len(images) > MIN_MOTION * variance:
        return math.inf
    error = rollout / persistence
    return error if math.isfinite(error) else math.inf
