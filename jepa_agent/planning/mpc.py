"""Latent model-predictive control: encode the current view, plan toward the goal latent with CEM, act.

`LatentMPC` is the one place where camera images, joint positions, the world model and the planner meet: the policy
of the agent loop (`agent.py`) that the planner node, `eval-planner` and the demo run. It never raises on bad live
data: `plan` returns None and the agent holds.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
import torch

from jepa_agent.model.images import to_model_image
from jepa_agent.planning.agent import plan_start
from jepa_agent.planning.cem import CEMConfig, CEMPlanner, Plan, step_weights
from jepa_agent.planning.constraints import JointLimits
from jepa_agent.planning.objectives import LatentGoalCost, fast_rollout


class ScoresStaying:
    """An objective that also scores staying put (`stay`: (1, H, J) targets, zero actions) in the first batch it is
    given, so the agent's deadband costs no rollout of its own."""

    def __init__(self, objective: LatentGoalCost, stay: torch.Tensor):
        self.objective, self.stay = objective, stay
        self.stay_cost: float | None = None

    def __call__(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.stay_cost is not None:
            return self.objective(actions, targets)
        cost = self.objective(torch.cat([actions, torch.zeros_like(self.stay)]), torch.cat([targets, self.stay]))
        self.stay_cost = float(cost[-1])
        return cost[:-1]


class LatentMPC:
    """Receding-horizon CEM toward a goal image in the world model's latent space (the agent's policy)."""

    needs_images = True
    charged_latency_s = None

    def __init__(self, model: torch.nn.Module, limits: JointLimits, config: CEMConfig):
        """`limits`: the arm's, per control period; a step of the plan spans the model's frameskip periods (the
        trust region, given per period, scales with it)."""
        if limits.n_joints != model.config.action_dim:
            raise ValueError(f'model acts on {model.config.action_dim} joints, limits give {limits.n_joints}')
        self.device = next(model.parameters()).device
        self.model = model.eval()
        self.periods_per_step = model.config.frameskip
        self.planner = CEMPlanner(dataclasses.replace(config, trust_region=config.trust_region * self.periods_per_step),
                                  limits.per_step(self.periods_per_step), self.device)
        self.rollout = fast_rollout(model, config.runtime, config.horizon, self.device)
        self.anticipates = config.anticipate
        self.weights = step_weights(config.horizon, config.step_weighting)
        self.state_cost_weight = config.state_cost_weight
        if self.state_cost_weight > 0 and not model.reads_state:
            warnings.warn('cem.state_cost_weight > 0 but this world model has no state head: planning on latent '
                          'distance only', RuntimeWarning, stacklevel=2)
            self.state_cost_weight = 0.0
        self._latents: dict[float, torch.Tensor] = {}      # frame time -> (D,) latent, frames of this goal only
        self._offset: torch.Tensor | None = None            # (D,) observed minus predicted latent, smoothed
        self._stay_cost = float('inf')
        self.near_goal_steps = config.near_goal_steps
        self.max_step = torch.as_tensor(limits.max_step(config.trust_region), dtype=torch.float32)
        self.step_distance = float('nan')           # latent change of one control period's largest step, at the goal
        self.near_goal = False
        """Whether the newest view is within `near_goal_steps` largest steps of the goal (latent distance)."""
        self.goal_latent: torch.Tensor | None = None                               # (D,)
        if config.runtime != 'torch':
            self._warm_up()

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> torch.Tensor:
        """(D,) latent of one image; ValueError if the image or its latent is unusable."""
        x = to_model_image(image, self.model.config.image_size).to(self.device)
        z = self.model.encode(x[None])[0]
        if not torch.isfinite(z).all():
            raise ValueError('world model produced a non-finite latent')
        return z

    def set_goal(self, image: np.ndarray) -> None:
        """Plan toward this view from now on, forgetting earlier frames (ValueError if it cannot be used)."""
        self.goal_latent = self.encode(image)
        self.step_distance = self._step_distance(self.goal_latent)
        self._latents.clear()
        self._offset = None
        self.planner.reset()
        self.planner.set_goal_positions(self._goal_positions(self.goal_latent))

    @torch.no_grad()
    def _goal_positions(self, z_goal: torch.Tensor) -> np.ndarray | None:
        """The joint positions the model reads out of the goal latent (None without a state readout, or if they are
        not finite)."""
        if not self.model.reads_state:
            return None
        q = self.model.decode_state(z_goal).double().cpu().numpy()
        return q if np.all(np.isfinite(q)) else None

    @torch.no_grad()
    def plan(self, frames: list, q: np.ndarray, in_flight: np.ndarray, shift: int = 1) -> Plan | None:
        """Plan (see `agent.Policy`): encode the frames, roll the model over the actions in flight, CEM from
        there (continuing a search prepared ahead of the newest frame, if any). Returns None for unusable frames,
        joint positions or model output (the agent holds)."""
        scored = self._objective(frames, q, in_flight, observed=True)
        if scored is None:
            return None
        objective, q0 = scored
        self.near_goal = bool((self._latent(frames[-1]) - self.goal_latent).norm()
                              <= self.near_goal_steps * self.step_distance)
        stay = torch.as_tensor(np.tile(q0, (1, self.planner.config.horizon, 1)), dtype=torch.float32,
                               device=self.device)
        scored = ScoresStaying(objective, stay)
        plan = self.planner.plan(scored, q0, shift=shift)
        if plan is not None:
            self._stay_cost = scored.stay_cost
        return plan

    @torch.no_grad()
    def prepare(self, frames: list, q: np.ndarray, in_flight: np.ndarray, shift: int = 1,
                stop: Callable[[], bool] | None = None) -> bool:
        """Search ahead for the next frame (see `agent.Policy`; `cem.anticipate`): from the newest frame, over the
        actions in flight until a plan made on the next frame takes effect."""
        if not self.anticipates:
            return False
        scored = self._objective(frames, q, in_flight, observed=False)
        return scored is not None and self.planner.plan(*scored, shift=shift, ahead=True, stop=stop) is not None

    def _objective(self, frames: list, q: np.ndarray, in_flight: np.ndarray,
                   observed: bool) -> tuple[LatentGoalCost, np.ndarray] | None:
        """The goal cost of action sequences starting after `in_flight`, and where they start; None if the frames,
        joint positions or model output are unusable. `observed`: the newest frame is new to the model (its
        prediction error updates the offset; a search ahead reuses frames already observed)."""
        if self.goal_latent is None:
            return None
        q = np.asarray(q, dtype=np.float64)
        in_flight = np.asarray(in_flight, dtype=np.float64).reshape(-1, q.size)
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(in_flight))):
            return None
        try:
            z_hist = self._history(frames)
            if observed:
                self._update_offset(frames)
        except ValueError:
            return None
        if len(in_flight):                                   # where the model expects the view when we act
            actions = torch.as_tensor(np.diff(np.vstack([q, in_flight]), axis=0), dtype=z_hist.dtype,
                                      device=self.device)
            z_hist = torch.cat([z_hist, self.model.rollout(z_hist[None], actions[None])[0]])
        goal = self.goal_latent if self._offset is None else self.goal_latent - self._offset
        objective = LatentGoalCost(self.rollout, z_hist[-self.model.config.history:], goal,
                                   self.weights, self.model.decode_state, self.state_cost_weight)
        return objective, plan_start(q, in_flight)

    @torch.no_grad()
    def _warm_up(self) -> None:
        """Run the rollout's runtime in now (compile it, or let ONNX Runtime size its buffers), through the objective
        a plan calls (its tensor layouts are part of what a compiled graph is specialised on) and for the batch sizes
        a plan uses, rather than during the first plans."""
        c, (H, J) = self.model.config, (self.planner.config.horizon, self.planner.limits.n_joints)
        zeros = lambda *shape: torch.zeros(*shape, device=self.device)  # noqa: E731
        objective = LatentGoalCost(self.rollout, zeros(c.history, c.latent_dim), zeros(c.latent_dim), self.weights,
                                   self.model.decode_state, self.state_cost_weight)
        cfg = self.planner.config
        searched = range(cfg.num_iterations + (cfg.frame_iterations if self.anticipates else 0))
        first = {0} | ({cfg.num_iterations} if self.anticipates else set())    # a plan's first batch scores staying
        sizes = {self.planner.population(i) for i in searched} | {self.planner.population(i) + 1 for i in first}
        for n in sorted(sizes, reverse=True):
            objective(zeros(n, H, J), zeros(n, H, J))

    def stay_cost(self) -> float:
        """Predicted cost of staying where the last plan started (see `agent.Policy`); infinite unless the view is
        near the goal, so the agent never stops the arm at a flat stretch or local minimum of the model's cost far
        from the goal (at the start of a far goal the model often sees no step that helps)."""
        return self._stay_cost if self.near_goal else float('inf')

    @torch.no_grad()
    def _step_distance(self, z: torch.Tensor) -> float:
        """Mean latent change the model predicts at `z` for one control period's largest step of one joint, either
        way (a frameskip model sees it as a slow step)."""
        J = self.max_step.numel()
        actions = torch.cat([torch.diag(self.max_step), -torch.diag(self.max_step), torch.zeros(1, J)])
        z_next = self.model.predict(z.expand(2 * J + 1, self.model.config.history, -1),
                                    actions.to(z.device, z.dtype))
        return float((z_next[:-1] - z_next[-1]).norm(dim=-1).mean())

    def _latent(self, frame) -> torch.Tensor:
        if frame.t not in self._latents:
            self._latents[frame.t] = self.encode(frame.image)
        return self._latents[frame.t]

    def _history(self, frames: list) -> torch.Tensor:
        """(K, D) latents of the last K frames (the oldest repeated when there are fewer), cached by frame time."""
        K = self.model.config.history
        latents = [self._latent(frame) for frame in frames[-K:]]
        for t in [t for t in self._latents if t < frames[-K - 1:][0].t]:   # older frames are never asked for again
            del self._latents[t]
        return torch.stack([latents[0]] * (K - len(latents)) + latents)

    def _update_offset(self, frames: list) -> None:
        """Offset-free MPC: how far the newest view's latent is from what the model predicted for it (from the
        frames before and the joint motion between), smoothed. The cost compares predictions shifted by it, so at
        rest the planner minimises the distance of what the camera sees, not of the model's biased prediction (a
        consistently biased predictor otherwise leaves the arm short of the goal by its bias)."""
        K = self.model.config.history
        if len(frames) < K + 1 or any(f.q is None for f in frames[-2:]):
            return
        latents = torch.stack([self._latent(f) for f in frames[-K - 1:]])            # (K + 1, D)
        action = torch.as_tensor(frames[-1].q - frames[-2].q, dtype=latents.dtype, device=self.device)
        residual = latents[-1] - self.model.predict(latents[None, :-1], action[None])[0]
        if torch.isfinite(residual).all():
            self._offset = residual if self._offset is None else 0.5 * (self._offset + residual)
