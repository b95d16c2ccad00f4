"""Planning objectives: how good an action sequence is, for the CEM planner (one batched call per iteration)."""
from __future__ import annotations

from collections.abc import Callable

import torch

Rollout = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LatentGoalCost:
    """Distance between the world model's predicted latents and the goal latent, weighted over the horizon.

    Uses the model's own rollout (z_hist (N, K, D), actions (N, H, J)) -> (N, H, D), so the whole batch of samples
    is predicted in H batched predictor calls. With a `state_readout` (the model's `decode_state`, latent → joints)
    the joint-space distance it reads between prediction and goal is added, times `state_weight`.
    """

    def __init__(self, rollout: Rollout, z_hist: torch.Tensor, z_goal: torch.Tensor, weights: torch.Tensor,
                 state_readout: Callable[[torch.Tensor], torch.Tensor] | None = None, state_weight: float = 0.0):
        self.rollout = rollout
        self.z_hist = z_hist            # (K, D) latest K frames, oldest first
        self.z_goal = z_goal            # (D,)
        self.weights = weights.to(z_goal.device)    # (H,)
        self.state_readout = state_readout if state_weight > 0 else None
        self.state_weight = state_weight
        self.q_goal = self.state_readout(z_goal) if self.state_readout is not None else None      # (J,)

    def __call__(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        z_hist = self.z_hist.expand(actions.shape[0], -1, -1)      # (N, K, D)
        z = self.rollout(z_hist, actions.to(z_hist.dtype))         # (N, H, D)
        distance = (z - self.z_goal).norm(dim=-1)                  # (N, H)
        if self.state_readout is not None:
            distance = distance + self.state_weight * (self.state_readout(z) - self.q_goal).norm(dim=-1)
        return distance.float() @ self.weights                     # (N,)


def maybe_compile(rollout: Rollout, enabled: bool, device: torch.device) -> Rollout:
    """torch.compile the rollout when asked: CUDA graphs on a GPU; on a CPU, inductor with the weights frozen into
    the graph (fused elementwise ops, prepacked matrices; needs a C++ compiler). Batch sizes stay dynamic, so the
    shrinking populations of one search share a graph. The first calls compile (seconds)."""
    if not enabled:
        return rollout
    if device.type == 'cuda':
        return torch.compile(rollout, mode='reduce-overhead', dynamic=False)
    return torch.compile(rollout, dynamic=True, options={'freezing': True})
