"""Planning objectives: how good an action sequence is, for the CEM planner (one batched call per iteration)."""
from __future__ import annotations

from collections.abc import Callable

import torch

Rollout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LatentGoalCost:
    """Distance between the world model's predicted latents and the goal latent, weighted over the horizon.

    Uses the model's own rollout (z_hist (N, K, D), actions (N, H, J)) -> (N, H, D), so the whole batch of samples
    is predicted in H batched predictor calls.
    """

    def __init__(self, rollout: Rollout, z_hist: torch.Tensor, z_goal: torch.Tensor, weights: torch.Tensor):
        self.rollout = rollout
        self.z_hist = z_hist            # (K, D) latest K frames, oldest first
        self.z_goal = z_goal            # (D,)
        self.weights = weights.to(z_goal.device)    # (H,)

    def __call__(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z_hist = self.z_hist.expand(actions.shape[0], -1, -1)      # (N, K, D)
        z = self.rollout(z_hist, actions.to(z_hist.dtype))         # (N, H, D)
        distance = (z - self.z_goal).norm(dim=-1)                  # (N, H)
        return distance.float() @ self.weights                     # (N,)


def maybe_compile(rollout: Rollout, enabled: bool, device: torch.device) -> Rollout:
    """torch.compile the rollout on GPU when asked (CPU compilation needs a toolchain and rarely pays off here)."""
    if enabled and device.type == 'cuda':
        return torch.compile(rollout, mode='reduce-overhead', dynamic=False)
    return rollout
