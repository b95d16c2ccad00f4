"""Action-conditioned latent predictors: (z history (B, K, D), normalized action (B, J)) → next latent (B, D).

The action enters through adaptive LayerNorm (scale, shift and gate computed from the action, as in DiT/LeWM),
which lets a small network make its whole computation depend on the command instead of treating the action as a
few extra input numbers. Both predictors output a residual on the last latent, so "nothing moves" is the easy
default and the network only has to learn the change.
"""
from __future__ import annotations

import torch
from torch import nn


class AdaLNBlock(nn.Module):
    """Pre-norm residual block whose LayerNorm scale/shift and output gate come from the condition vector."""

    def __init__(self, width: int, cond_dim: int, dropout: float, mixer: nn.Module | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mixer = mixer or nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout),
                                            nn.Linear(2 * width, width))
        self.modulation = nn.Linear(cond_dim, 3 * width)
        nn.init.zeros_(self.modulation.weight)   # starts as a plain residual block
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(cond).chunk(3, dim=-1)
        if x.dim() == 3:   # token sequences: one condition per sequence
            shift, scale, gate = shift[:, None], scale[:, None], gate[:, None]
        return x + (1 + gate) * self.mixer(self.norm(x) * (1 + scale) + shift)


class ActionEmbedding(nn.Sequential):
    def __init__(self, action_dim: int, width: int):
        super().__init__(nn.Linear(action_dim, width), nn.GELU(), nn.Linear(width, width))


class ResidualMLPPredictor(nn.Module):
    """Concatenated history → MLP trunk of AdaLN blocks → latent delta. Cheap enough for CEM on a CPU."""

    def __init__(self, latent_dim: int, history: int, action_dim: int, width: int, depth: int, dropout: float):
        super().__init__()
        self.action_embedding = ActionEmbedding(action_dim, width)
        self.input = nn.Linear(history * latent_dim, width)
        self.blocks = nn.ModuleList(AdaLNBlock(width, width, dropout) for _ in range(depth))
        self.output = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, latent_dim))

    def forward(self, z_hist: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        cond = self.action_embedding(action)                  # (B, W)
        x = self.input(z_hist.flatten(1))                     # (B, W)
        for block in self.blocks:
            x = block(x, cond)
        return z_hist[:, -1] + self.output(x)


class _CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[1]
        mask = torch.ones(k, k, dtype=torch.bool, device=x.device).triu(1)   # True = may not attend
        return self.attention(x, x, x, attn_mask=mask, need_weights=False)[0]


class TransformerPredictor(nn.Module):
    """One token per history latent, causal attention, AdaLN action conditioning; the last token predicts."""

    def __init__(self, latent_dim: int, history: int, action_dim: int, width: int, depth: int, dropout: float,
                 heads: int = 4):
        super().__init__()
        self.action_embedding = ActionEmbedding(action_dim, width)
        self.input = nn.Linear(latent_dim, width)
        self.position = nn.Parameter(torch.zeros(1, history, width))
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(AdaLNBlock(width, width, dropout, _CausalSelfAttention(width, heads, dropout)))
            self.blocks.append(AdaLNBlock(width, width, dropout))
        self.output = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, latent_dim))

    def forward(self, z_hist: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        cond = self.action_embedding(action)                                   # (B, W)
        x = self.input(z_hist) + self.position[:, -z_hist.shape[1]:]          # (B, K, W)
        for block in self.blocks:
            x = block(x, cond)
        return z_hist[:, -1] + self.output(x[:, -1])
