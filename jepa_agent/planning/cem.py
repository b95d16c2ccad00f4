"""Cross-entropy method over H-step joint-delta sequences, all samples scored in one tensor batch.

The planner is model-agnostic: it is given an objective `cost(actions (N, H, J), targets (N, H, J)) -> (N,)`
(a world-model latent distance, see `objectives.py`, or a simulator for the ceiling baseline) and the measured
joint positions. Every sampled sequence is projected onto the joint bounds *before* scoring, so the plan that
comes back is feasible by construction. Any non-finite input, model output or cost gives no plan (None): the
caller then holds position.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from jepa_agent.config import bounded, check_ranges
from jepa_agent.planning.constraints import JointLimits, project, start_is_feasible

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
STEP_WEIGHTINGS = ('final', 'linear', 'uniform')


@dataclass
class CEMConfig:
    """CEM planner parameters (the planner node's `cem.*` parameters)."""

    # search
    num_samples: int = bounded(100, ge=1)
    """Action sequences scored per iteration (one batch)."""
    num_iterations: int = bounded(10, ge=1)
    """Sample / score / refit rounds per plan."""
    horizon: int = bounded(5, ge=1)
    """Planned steps H (one control period each)."""
    num_elites: int = bounded(30, ge=1)
    """Best samples the sampling distribution is refit to."""
    num_retained: int = bounded(10, ge=0)
    """Elites carried unchanged into the next iteration's batch (elite retention)."""
    init_std: float = bounded(0.5, gt=0, le=10)
    """Initial sampling std, as a fraction of the per-step bound."""
    min_std: float = bounded(0.05, ge=0, le=10)
    """Floor of the sampling std (fraction of the per-step bound), so the search never freezes."""
    # cost
    step_weighting: str = 'linear'
    """How latent distances over the horizon are weighted: 'final', 'linear' (later steps count more), 'uniform'."""
    smoothness: float = bounded(0.0, ge=0)
    """Weight of the squared change between consecutive actions (rad²)."""
    state_cost_weight: float = bounded(1.0, ge=0)
    """Weight of the joint-space distance (rad) between predicted and goal latents, both read out by the model's
    state head, added to the latent distance; 0 = latent distance only. It keeps far goals from looking flat."""
    near_goal_steps: float = bounded(4.0, ge=0)
    """The view counts as near the goal when its latent distance to the goal is below this many largest steps of
    motion (the model's latent change for one step of one joint, measured at the goal); only near the goal may the
    agent stop the arm."""
    limit_margin: float = bounded(0.2, ge=0)
    """Joint targets closer than this (rad) to a position limit cost extra, `limit_cost` × (depth / margin)² per
    joint at the limit, averaged over the horizon: the arm stays off its hard limits, where it cannot move on
    and where poses are rare in training data (0 = off)."""
    limit_cost: float = bounded(1.0, ge=0)
    """Weight of that cost, in units of the objective."""
    # bounds
    trust_region: float = bounded(0.15, gt=0)
    """Largest |action| per joint and step (rad), on top of the velocity limit."""
    # execution
    seed: int = 0
    """Seed of the sampling noise (plans are reproducible)."""
    compile: bool = False
    """torch.compile the model rollout (used on GPU only)."""

    def __post_init__(self):
        check_ranges(self)
        if self.num_elites > self.num_samples:
            raise ValueError(f'num_elites must be <= num_samples, got {self.num_elites=} {self.num_samples=}')
        if self.num_retained > self.num_elites or self.num_retained >= self.num_samples:
            raise ValueError(f'num_retained must be in 0..num_elites and < num_samples, got {self.num_retained=}')
        if self.min_std > self.init_std:
            raise ValueError(f'min_std must be <= init_std, got {self.init_std=} {self.min_std=}')
        if self.step_weighting not in STEP_WEIGHTINGS:
            raise ValueError(f'step_weighting must be one of {STEP_WEIGHTINGS}, got {self.step_weighting=}')


@dataclass
class Plan:
    """A feasible action sequence and what it implies."""

    actions: np.ndarray     # (H, J) joint-target deltas, each from the previous target (the first from measured q)
    targets: np.ndarray     # (H, J) implied absolute joint targets
    cost: float
    latency_s: float


def step_weights(horizon: int, weighting: str) -> torch.Tensor:
    """(H,) non-negative weights summing to 1 for the per-step costs."""
    if weighting == 'final':
        w = torch.zeros(horizon)
        w[-1] = 1.0
    elif weighting == 'linear':
        w = torch.arange(1, horizon + 1, dtype=torch.float32)
    else:
        w = torch.ones(horizon)
    return w / w.sum()


class CEMPlanner:
    """Receding-horizon CEM with warm start (the previous plan, shifted) and elite retention."""

    def __init__(self, config: CEMConfig, limits: JointLimits, device: str | torch.device = 'cpu'):
        self.config, self.limits, self.device = config, limits, torch.device(device)
        self.max_step_np = limits.max_step(config.trust_region)
        as_t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        self.lower, self.upper, self.max_step = as_t(limits.lower), as_t(limits.upper), as_t(self.max_step_np)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self._previous: torch.Tensor | None = None            # (H, J) last returned actions

    def reset(self) -> None:
        """Forget the warm start (new goal, new episode)."""
        self._previous = None

    def warm_start(self, shift: int) -> torch.Tensor:
        """(H, J) initial mean: the previous plan advanced by `shift` executed steps, padded with zeros."""
        H, J = self.config.horizon, self.limits.n_joints
        mean = torch.zeros(H, J, device=self.device)
        if self._previous is not None and shift < H:
            mean[:H - shift] = self._previous[shift:]
        return mean

    @torch.no_grad()
    def plan(self, objective: Objective, q0: np.ndarray, shift: int = 1) -> Plan | None:
        """Best feasible sequence from measured positions `q0` (J,), or None if anything is non-finite."""
        start = time.perf_counter()
        if not start_is_feasible(q0, self.limits, self.max_step_np):
            return None
        cfg, H, J = self.config, self.config.horizon, self.limits.n_joints
        q0_t = torch.as_tensor(q0, dtype=torch.float32, device=self.device)
        mean = self.warm_start(shift)                                                   # (H, J)
        std = torch.full((H, J), cfg.init_std, device=self.device) * self.max_step      # (H, J)
        kept = mean[None]                                   # (R, H, J) warm start is scored as-is
        best_cost, best = torch.tensor(float('inf'), device=self.device), mean
        for _ in range(cfg.num_iterations):
            # sample
            noise = torch.randn(cfg.num_samples - kept.shape[0], H, J, device=self.device,
                                generator=self.generator)
            samples = torch.cat([kept, mean + std * noise])                             # (N, H, J)
            actions, targets = project(samples, q0_t, self.lower, self.upper, self.max_step)
            # roll out + score
            cost = objective(actions, targets)                                          # (N,)
            if cfg.smoothness:
                cost = cost + cfg.smoothness * actions.diff(dim=1).pow(2).sum((1, 2))
            if cfg.limit_margin and cfg.limit_cost:
                cost = cost + self._limit_cost(targets)
            if cost.shape != (actions.shape[0],) or not torch.isfinite(cost).all():
                return None
            # refit on the unclipped samples, so the mean may leave the box and push samples onto its faces
            elite_cost, idx = torch.topk(cost, cfg.num_elites, largest=False)            # (E,)
            elites = samples[idx]                                                       # (E, H, J)
            mean = elites.mean(0)
            std = elites.std(0, unbiased=False).clamp_min(cfg.min_std * self.max_step)
            kept = torch.cat([mean[None], elites[:cfg.num_retained]])                  # refit mean is scored too
            if elite_cost[0] < best_cost:
                best_cost, best = elite_cost[0], actions[idx[0]]
        # select: the best sequence ever scored (already feasible)
        self._previous = best
        _, targets = project(best[None], q0_t, self.lower, self.upper, self.max_step)
        return Plan(best.cpu().double().numpy(), targets[0].cpu().double().numpy(), float(best_cost),
                    time.perf_counter() - start)

    def _limit_cost(self, targets: torch.Tensor) -> torch.Tensor:
        """(N,) cost of targets (N, H, J) inside the `limit_margin` band of a position limit."""
        margin = self.config.limit_margin
        depth = torch.relu(torch.maximum(self.lower + margin - targets, targets - (self.upper - margin)))
        return self.config.limit_cost * (depth / margin).pow(2).sum(-1).mean(-1)
