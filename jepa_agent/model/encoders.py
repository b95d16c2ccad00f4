"""Image encoders: pixels (B, 3, H, W) in [0, 1] → one feature vector (B, F) per image.

A small CNN is the default because it is the cheapest thing that works on a 2-core CPU; the ViT is there for larger
images and GPUs. Neither uses BatchNorm: batch statistics inside the backbone would make a single goal image encode
differently from the same image inside a batch, which planning cannot afford. The projector (in world_model.py)
carries the BatchNorm, as in LeWM.
"""
from __future__ import annotations

import torch
from torch import nn


class CNNEncoder(nn.Module):
    """Four stride-2 convs with GroupNorm, then a linear head over the flattened map (it keeps where things are)."""

    def __init__(self, image_size: int, width: int, feature_dim: int):
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.GELU()]
        self.convs = nn.Sequential(*layers)
        side = image_size // 16
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * side * side, feature_dim), nn.GELU())
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(images))


class KeypointEncoder(nn.Module):
    """Convs at half resolution, then a spatial softmax: each feature map becomes the (x, y) of its soft argmax.

    Keypoint coordinates move smoothly and nearly linearly with the arm's links (Levine et al., 2016), so distances
    between latents keep tracking distances between poses far beyond one control step, which a latent-distance
    planner needs. A learned temperature sharpens or widens the soft argmax.
    """

    def __init__(self, image_size: int, width: int, keypoints: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, width, 5, stride=2, padding=2), nn.GroupNorm(8, width), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(8, width), nn.GELU(),
            nn.Conv2d(width, keypoints, 3, padding=1))
        side = image_size // 2
        grid = torch.linspace(-1.0, 1.0, side)
        self.register_buffer('grid_x', grid.repeat(side), persistent=False)              # (side·side,)
        self.register_buffer('grid_y', grid.repeat_interleave(side), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.feature_dim = 2 * keypoints

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        attention = (self.convs(images).flatten(2) / self.log_temperature.exp()).softmax(dim=-1)   # (B, K, side²)
        return torch.cat([attention @ self.grid_x, attention @ self.grid_y], dim=1)                # (B, 2K)


class ViTEncoder(nn.Module):
    """Patch embedding + pre-norm transformer; the mean of the patch tokens is the feature."""

    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, heads: int):
        super().__init__()
        self.patchify = nn.Conv2d(3, width, patch_size, stride=patch_size)
        n_patches = (image_size // patch_size) ** 2
        self.position = nn.Parameter(torch.randn(1, n_patches, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation='gelu',
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.feature_dim = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.patchify(images).flatten(2).transpose(1, 2) + self.position   # (B, N, W)
        return self.norm(self.blocks(tokens)).mean(dim=1)
