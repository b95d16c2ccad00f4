"""Anti-collapse regularizers and collapse statistics for latent batches (N, D).

A JEPA trained only to predict its own embeddings can make every embedding equal; a regularizer forbids that.
SIGReg (LeJEPA/LeWM) pushes the embedding distribution towards an isotropic Gaussian by testing many random 1-D
projections for normality with the Epps–Pulley statistic; VICReg keeps each dimension's std up and the dimensions
decorrelated. Both must see the *global* batch under DDP (`gather_with_grad`), or each rank would only spread its own
small shard. Random directions are drawn on the embeddings' device from a seed shared by all ranks.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate `z` from every DDP rank; gradients flow into this rank's own slice only.

    Callers multiply the resulting loss by the world size: DDP averages gradients over ranks, and each rank
    contributes the gradient of its own slice, so the sum over ranks is the full global-batch gradient.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.detach().contiguous())
    parts[dist.get_rank()] = z
    return torch.cat(parts)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class SIGReg(nn.Module):
    """Sketched isotropic Gaussian regularizer: Epps–Pulley normality test on `num_projections` random directions.

    Statistic per direction: N · ∫ |φ_N(t) − e^{−t²/2}|² e^{−t²/2} dt, with φ_N the empirical characteristic
    function, integrated by the trapezoid rule on [0, t_max] (the integrand is even in t).
    """

    def __init__(self, num_projections: int = 256, knots: int = 17, t_max: float = 3.0):
        super().__init__()
        t = torch.linspace(0.0, t_max, knots)
        weights = torch.full((knots,), 2 * t_max / (knots - 1))
        weights[[0, -1]] /= 2
        self.num_projections = num_projections
        self.register_buffer('t', t, persistent=False)
        self.register_buffer('target', torch.exp(-t.square() / 2), persistent=False)
        self.register_buffer('weights', weights * torch.exp(-t.square() / 2), persistent=False)

    def forward(self, z: torch.Tensor, seed: int) -> torch.Tensor:
        generator = torch.Generator(device=z.device).manual_seed(seed)
        directions = torch.randn(z.shape[1], self.num_projections, device=z.device, generator=generator)
        directions = directions / directions.norm(dim=0, keepdim=True)              # (D, M)
        x_t = (z.float() @ directions).unsqueeze(-1) * self.t                        # (N, M, knots)
        error = (x_t.cos().mean(0) - self.target).square() + x_t.sin().mean(0).square()
        return (error @ self.weights).mean() * z.shape[0]


def vicreg(z: torch.Tensor, std_target: float = 1.0) -> torch.Tensor:
    """VICReg variance hinge + off-diagonal covariance penalty (equal weights; scale with the loss weight)."""
    z = z.float() - z.float().mean(0)
    std = torch.sqrt(z.var(0) + 1e-4)
    variance = F.relu(std_target - std).mean()
    cov = (z.T @ z) / max(z.shape[0] - 1, 1)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    return variance + off_diagonal.square().sum() / z.shape[1]


@torch.no_grad()
def effective_rank(z: torch.Tensor) -> float:
    """exp(entropy of the normalized singular values) of centred `z` (Roy & Vetterli): D for isotropic, 1 for a line."""
    z = z.float() - z.float().mean(0)
    s = torch.linalg.svdvals(z)
    p = s / s.sum().clamp_min(1e-12)
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
