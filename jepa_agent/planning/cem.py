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
RUNTIMES = ('torch', 'compile', 'onnxruntime')


@dataclass
class CEMConfig:
    """CEM planner parameters (the planner node's `cem.*` parameters)."""

    # search
    num_samples: int = bounded(100, ge=1)
    """Action sequences scored per iteration (one batch)."""
    num_iterations: int = bounded(4, ge=1)
    """Sample / score / refit rounds per plan."""
    horizon: int = bounded(5, ge=1)
    """Planned steps H (one control period each)."""
    num_elites: int = bounded(30, ge=1)
    """Best samples the sampling distribution is refit to."""
    num_retained: int = bounded(10, ge=0)
    """Elites carried unchanged into the next iteration's batch (elite retention)."""
    population_decay: float = bounded(2.0, ge=1.0)
    """iCEM's shrinking population: iteration i scores num_samples / population_decay**i sequences (at least
    num_elites + 1). Later iterations refine a narrow distribution and need fewer samples (1 = no decay)."""
    elite_reuse: int = bounded(10, ge=0)
    """Elites of the previous plan (at most num_elites) carried, shifted by the executed steps, into the first
    iteration (iCEM): the search goes on where the last one stopped instead of restarting from its mean alone."""
    noise_beta: float = bounded(0.0, ge=0, le=4)
    """Colour of the sampling noise along the horizon, power spectrum ∝ 1/f^beta (iCEM): 0 = white noise,
    2 = smooth sequences that keep a direction over the horizon."""
    mppi_temperature: float = bounded(0.0, ge=0)
    """0 = CEM: refit to the plain mean and std of the elites. > 0 = MPPI-style: elites weighted by
    exp(-(cost - best) / (mppi_temperature × (mean elite cost - best))), so the best ones pull harder."""
    init_std: float = bounded(0.5, gt=0, le=10)
    """Initial sampling std, as a fraction of the per-step bound."""
    min_std: float = bounded(0.05, ge=0, le=10)
    """Floor of the sampling std (fraction of the per-step bound), so the search never freezes."""
    # cost
    step_weighting: str = 'linear'
    """How latent distances over the horizon are weighted: 'final', 'linear' (later steps count more), 'uniform'."""
    smoothness: float = bounded(0.0, ge=0)
    """Weight of the squared change between consecutive actions (rad²)."""
    state_cost_weight: float = bounded(3.0, ge=0)
    """Weight of the joint-space distance (rad) between predicted and goal latents, both read out by the model's
    state head, added to the latent distance; 0 = latent distance only. It keeps far goals from looking flat."""
    near_goal_steps: float = bounded(4.0, ge=0)
    """The view counts as near the goal when its latent distance to the goal is below this many largest steps of
    motion (the model's latent change for one step of one joint, measured at the goal); only near the goal may the
    agent stop the arm."""
    limit_margin: float = bounded(0.2, ge=0)
    """Joint targets closer than this (rad) to a position limit cost extra, `limit_cost` × (depth / margin)² per
    joint at the limit, averaged over the horizon: the arm stays off its hard limits, where it cannot move on
    and where poses are rare in training data (0 = off). A goal pose inside this band is still reached: only depth
    beyond the goal's own counts (`CEMPlanner.set_goal_positions`)."""
    limit_cost: float = bounded(1.0, ge=0)
    """Weight of that cost, in units of the objective."""
    # bounds
    trust_region: float = bounded(0.15, gt=0)
    """Largest |action| per joint and step (rad), on top of the velocity limit."""
    # execution
    seed: int = 0
    """Seed of the sampling noise (plans are reproducible)."""
    anticipate: bool = True
    """Search ahead: right after a command, run the search for the next camera frame from the view the model predicts
    for it; when the frame arrives, continue that search on the fresh view for `frame_iterations` iterations only.
    The search's bulk leaves the path from frame to command (the planner node, eval-planner and the demo)."""
    frame_iterations: int = bounded(1, ge=1)
    """Iterations run on the fresh frame when the search was started ahead of it (`anticipate`)."""
    runtime: str = 'onnxruntime'
    """What runs the model's rollout: 'torch' (eager), 'compile' (torch.compile: CUDA graphs on a GPU, inductor on
    a CPU, which needs a C++ compiler) or 'onnxruntime' (the rollout exported to ONNX Runtime, on a CPU; on a GPU it
    is compiled as by 'compile'). The policy prepares it when it is built (seconds), so the first plans are not slow."""

    def __post_init__(self):
        check_ranges(self)
        if self.num_elites > self.num_samples:
            raise ValueError(f'num_elites must be <= num_samples, got {self.num_elites=} {self.num_samples=}')
        if self.num_retained > self.num_elites or self.num_retained >= self.num_samples:
            raise ValueError(f'num_retained must be in 0..num_elites and < num_samples, got {self.num_retained=}')
        if min(self.elite_reuse, self.num_elites) >= self.num_samples:
            raise ValueError(f'elite_reuse must be < num_samples, got {self.elite_reuse=} {self.num_samples=}')
        if self.min_std > self.init_std:
            raise ValueError(f'min_std must be <= init_std, got {self.init_std=} {self.min_std=}')
        if self.step_weighting not in STEP_WEIGHTINGS:
            raise ValueError(f'step_weighting must be one of {STEP_WEIGHTINGS}, got {self.step_weighting=}')
        if self.runtime not in RUNTIMES:
            raise ValueError(f'runtime must be one of {RUNTIMES}, got {self.runtime=}')


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
        self.noise_filter = colored_noise_filter(config.horizon, config.noise_beta).to(self.device)   # (H, H)
        self._previous: torch.Tensor | None = None            # (H, J) last returned actions
        self._previous_elites = torch.zeros(0, config.horizon, limits.n_joints, device=self.device)   # (E', H, J)
        self._ahead: tuple[torch.Tensor, torch.Tensor] | None = None     # (mean, std) of a search made ahead
        self._goal_depth = torch.zeros(limits.n_joints, device=self.device)    # (J,) the goal's own limit depth

    def set_goal_positions(self, positions: np.ndarray | None) -> None:
        """The joint positions (J,) the goal asks for, when known (None: unknown). The limit margin then costs only
        the depth into its band beyond the goal's own: an absolute margin would hold the arm off every goal pose
        near a limit (on a six-joint arm with narrow ranges, half of the goals)."""
        self._goal_depth = torch.zeros_like(self._goal_depth) if positions is None else \
            self._limit_depth(torch.as_tensor(positions, dtype=torch.float32, device=self.device))

    def reset(self) -> None:
        """Forget the warm start (new goal, new episode)."""
        self._previous = None
        self._previous_elites = self._previous_elites[:0]
        self._ahead = None

    def population(self, iteration: int) -> int:
        """Sequences scored in this iteration (iCEM's decaying population)."""
        cfg = self.config
        return max(int(round(cfg.num_samples / cfg.population_decay ** iteration)), cfg.num_elites + 1)

    def warm_start(self, shift: int) -> torch.Tensor:
        """(H, J) initial mean: the previous plan advanced by `shift` executed steps, padded with zeros."""
        if self._previous is None:
            return torch.zeros(self.config.horizon, self.limits.n_joints, device=self.device)
        return shifted(self._previous[None], shift)[0]

    @torch.no_grad()
    def plan(self, objective: Objective, q0: np.ndarray, shift: int = 1, *, ahead: bool = False,
             stop: Callable[[], bool] | None = None) -> Plan | None:
        """Best feasible sequence from measured positions `q0` (J,), or None if anything is non-finite.

        `ahead`: this search runs before the frame it is for (`anticipate`); the next call continues it, advanced by
        its `shift`, for `frame_iterations` iterations on the fresh objective instead of starting over. `stop` is
        asked between iterations: True ends the search early (what it found so far still warm-starts the next)."""
        start = time.perf_counter()
        if not start_is_feasible(q0, self.limits, self.max_step_np):
            return None
        cfg, H, J = self.config, self.config.horizon, self.limits.n_joints
        q0_t = torch.as_tensor(q0, dtype=torch.float32, device=self.device)
        continued, self._ahead = self._ahead, None
        if continued is not None and shift < H:              # go on with the search made ahead of this frame
            mean, std = (shifted(x[None], shift)[0] for x in continued)
            std[H - shift:] = cfg.init_std * self.max_step
            iterations = range(cfg.num_iterations, cfg.num_iterations + cfg.frame_iterations)
        else:
            mean = self.warm_start(shift)                                               # (H, J)
            std = torch.full((H, J), cfg.init_std, device=self.device) * self.max_step  # (H, J)
            iterations = range(cfg.num_iterations)
        kept = torch.cat([mean[None], shifted(self._previous_elites, shift)])   # (R, H, J) scored as they are
        best_cost, best = torch.tensor(float('inf'), device=self.device), mean
        for iteration in iterations:
            if stop is not None and iteration > iterations.start and stop():
                break
            # sample
            white = torch.randn(self.population(iteration) - kept.shape[0], H, J, device=self.device,
                                generator=self.generator)
            samples = torch.cat([kept, mean + std * (self.noise_filter @ white)])       # (N, H, J)
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
            mean, std = self._refit(elites, elite_cost)
            kept = torch.cat([mean[None], elites[:cfg.num_retained]])                  # refit mean is scored too
            if elite_cost[0] < best_cost:
                best_cost, best = elite_cost[0], actions[idx[0]]
        # select: the best sequence ever scored (already feasible)
        self._previous, self._previous_elites = best, elites[:cfg.elite_reuse]
        self._ahead = (mean, std) if ahead else None
        _, targets = project(best[None], q0_t, self.lower, self.upper, self.max_step)
        return Plan(best.cpu().double().numpy(), targets[0].cpu().double().numpy(), float(best_cost),
                    time.perf_counter() - start)

    def _refit(self, elites: torch.Tensor, elite_cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (H, J) of the next sampling distribution: the elites' (CEM), or their MPPI-weighted ones."""
        weights = torch.full_like(elite_cost, 1.0 / elite_cost.numel())                 # (E,)
        if self.config.mppi_temperature > 0:
            spread = (elite_cost.mean() - elite_cost[0]).clamp_min(1e-12) * self.config.mppi_temperature
            weights = torch.softmax(-(elite_cost - elite_cost[0]) / spread, 0)
        mean = torch.einsum('e,ehj->hj', weights, elites)
        std = torch.einsum('e,ehj->hj', weights, (elites - mean).pow(2)).sqrt()
        return mean, std.clamp_min(self.config.min_std * self.max_step)

    def _limit_cost(self, targets: torch.Tensor) -> torch.Tensor:
        """(N,) cost of targets (N, H, J) inside the `limit_margin` band of a position limit, deeper than the
        goal's positions are (`set_goal_positions`)."""
        depth = torch.relu(self._limit_depth(targets) - self._goal_depth)
        return self.config.limit_cost * (depth / self.config.limit_margin).pow(2).sum(-1).mean(-1)

    def _limit_depth(self, positions: torch.Tensor) -> torch.Tensor:
        """How far (rad) positions (..., J) lie inside the `limit_margin` band of a position limit (0 outside)."""
        margin = self.config.limit_margin
        return torch.relu(torch.maximum(self.lower + margin - positions, positions - (self.upper - margin)))


def shifted(sequences: torch.Tensor, shift: int) -> torch.Tensor:
    """Sequences (N, H, J) advanced by `shift` executed steps, padded with zero actions."""
    out = torch.zeros_like(sequences)
    if shift < sequences.shape[1]:
        out[:, :sequences.shape[1] - shift] = sequences[:, shift:]
    return out


def colored_noise_filter(horizon: int, beta: float) -> torch.Tensor:
    """(H, H) lower-triangular L such that L @ white noise (.., H, J) has unit variance and the stationary power
    spectrum 1/f^beta along the horizon (the lowest frequency stands in for f = 0, as in iCEM); identity for 0."""
    if beta == 0 or horizon == 1:
        return torch.eye(horizon)
    k = np.arange(horizon // 2 + 1)
    power = np.maximum(k / horizon, 1 / horizon) ** -beta
    power[1:(horizon + 1) // 2] *= 2                                   # both halves of the symmetric spectrum
    lag = np.arange(horizon)
    autocovariance = (power[None] * np.cos(2 * np.pi * np.outer(lag, k) / horizon)).sum(1)
    covariance = autocovariance[np.abs(lag[:, None] - lag[None])] / autocovariance[0]
    return torch.as_tensor(np.linalg.cholesky(covariance + 1e-6 * np.eye(horizon)), dtype=torch.float32)
