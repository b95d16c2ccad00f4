"""Latent model-predictive control: encode the current view, plan toward the goal latent with CEM, act.

`LatentMPC` is the one place where camera images, joint positions, the world model and the planner meet; the
planner node, `eval-planner` and the demo all drive it. It never raises on bad live data: `act` returns None and
says why in `refusal`, and the caller holds position.
"""
from __future__ import annotations

import warnings
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

from jepa_agent.planning.cem import CEMConfig, CEMPlanner, Plan, step_weights
from jepa_agent.planning.constraints import JointLimits
from jepa_agent.planning.objectives import LatentGoalCost, maybe_compile


def to_model_image(image: np.ndarray, size: int) -> torch.Tensor:
    """(3, size, size) float image in [0, 1] from an (H, W, 3) or (H, W) uint8 or [0, 1] float array.

    Resizes (antialiased) when the camera and the model disagree; rejects non-finite pixels and odd shapes.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f'expected an (H, W, 3) or (H, W) image, got shape {image.shape}')
    if image.dtype == np.uint8:
        x = torch.from_numpy(np.array(image)).float().div_(255)      # copy: ROS buffers are read-only
    elif np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError('image has non-finite pixels')
        x = torch.from_numpy(np.clip(image, 0, 1).astype(np.float32))
    else:
        raise ValueError(f'expected a uint8 or float image, got dtype {image.dtype}')
    x = x.permute(2, 0, 1)                                              # (3, H, W)
    if x.shape[1:] != (size, size):
        x = F.interpolate(x[None], size=(size, size), mode='bilinear', antialias=True, align_corners=False)[0]
    return x


class LatentMPC:
    """Receding-horizon CEM toward a goal image in the world model's latent space."""

    def __init__(self, model: torch.nn.Module, limits: JointLimits, config: CEMConfig):
        if limits.n_joints != model.config.action_dim:
            raise ValueError(f'model acts on {model.config.action_dim} joints, limits give {limits.n_joints}')
        self.device = next(model.parameters()).device
        self.model = model.eval()
        self.planner = CEMPlanner(config, limits, self.device)
        self.rollout = maybe_compile(model.rollout, config.compile, self.device)
        self.weights = step_weights(config.horizon, config.step_weighting)
        self.state_cost_weight = config.state_cost_weight
        if self.state_cost_weight > 0 and model.state_head is None:
            warnings.warn('cem.state_cost_weight > 0 but this world model has no state head: planning on latent '
                          'distance only', RuntimeWarning, stacklevel=2)
            self.state_cost_weight = 0.0
        self._history: deque[torch.Tensor] = deque(maxlen=model.config.history)   # (D,) latents, oldest first
        self.goal_latent: torch.Tensor | None = None                               # (D,)
        self.refusal = ''
        """Why the last `act` returned None ('' after a plan)."""

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> torch.Tensor:
        """(D,) latent of one image; ValueError if the image or its latent is unusable."""
        x = to_model_image(image, self.model.config.image_size).to(self.device)
        z = self.model.encode(x[None])[0]
        if not torch.isfinite(z).all():
            raise ValueError('world model produced a non-finite latent')
        return z

    def set_goal(self, image: np.ndarray) -> None:
        """Plan toward this view from now on (ValueError if it cannot be used)."""
        self.goal_latent = self.encode(image)
        self.planner.reset()

    def clear_goal(self) -> None:
        self.goal_latent = None

    def reset(self) -> None:
        """Forget the frame history and the warm start (new episode, or after a pause)."""
        self._history.clear()
        self.planner.reset()

    def distance_to_goal(self, image: np.ndarray) -> float:
        """Latent distance of a view to the goal (for diagnostics and demos)."""
        return float((self.encode(image) - self.goal_latent).norm())

    def act(self, image: np.ndarray, q: np.ndarray, shift: int = 1) -> Plan | None:
        """Plan from the current view and measured joint positions; None (see `refusal`) means hold."""
        if self.goal_latent is None:
            return self._refuse('no goal')
        if not np.all(np.isfinite(np.asarray(q, dtype=np.float64))):
            return self._refuse('non-finite joint positions')
        try:
            z = self.encode(image)
        except ValueError as exc:
            return self._refuse(f'unusable camera image: {exc}')
        self._history.append(z)
        z_hist = torch.stack([self._history[0]] * (self._history.maxlen - len(self._history)) + list(self._history))
        objective = LatentGoalCost(self.rollout, z_hist, self.goal_latent, self.weights, self.model.state_head,
                                   self.state_cost_weight)
        plan = self.planner.plan(objective, q, shift=shift)
        if plan is None:
            return self._refuse('no finite plan (joint positions out of bounds or non-finite model output/cost)')
        self.refusal = ''
        return plan

    def _refuse(self, reason: str) -> None:
        self.refusal = reason
        return None


def steps_to_publish(latency_s: float, plan_times: list[float], execute_steps: int, horizon: int, dt: float,
                     cover_latency: bool = True) -> int:
    """Planned steps to send so the arm keeps moving until the next plan replaces them: at least `execute_steps`;
    with `cover_latency`, enough to span this plan's latency or the longest of the recent intervals between plans
    (`plan_times`, seconds, oldest first), plus one period; at most the horizon."""
    n = execute_steps
    if cover_latency:
        intervals = np.diff(plan_times[-6:])
        gap = max(latency_s, float(intervals.max()) if intervals.size else 0.0)
        n = max(n, int(np.ceil(gap / dt)) + 1)
    return min(n, horizon)
