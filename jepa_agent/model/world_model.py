"""Action-conditioned JEPA world model: encode images to one latent, predict the next latent from an action.

    model = WorldModel(ModelConfig(action_dim=3, action_scale=[0.15] * 3))
    z = model.encode(images)                        # (B, 3, H, W) uint8 or [0, 1] float → (B, D)
    z_next = model.predict(z_hist, action)          # (B, K, D), (B, J) radians → (B, D)
    z_future = model.rollout(z_hist, actions)       # (B, K, D), (B, H, J) → (B, H, D)
    q = model.decode_state(z)                       # (B, D) → (B, J) radians (state head or readout)

No pixels are ever reconstructed: the model is trained to predict embeddings (training/losses.py), with an
anti-collapse regularizer keeping the embeddings informative.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from jepa_agent.model.encoders import CNNEncoder, KeypointEncoder, ViTEncoder
from jepa_agent.model.images import to_unit
from jepa_agent.model.predictors import ResidualMLPPredictor, TransformerPredictor

ENCODERS = ('cnn', 'keypoints', 'vit')
PREDICTORS = ('mlp', 'transformer')


@dataclass
class ModelConfig:
    """Architecture of a WorldModel; saved in every checkpoint so loading rebuilds the same network."""

    # interface
    image_size: int = 64
    """Square input image side (pixels); a multiple of 16."""
    action_dim: int = 3
    """Number of joints J in an action."""
    action_scale: list[float] = field(default_factory=list)
    """Per-joint action scale (rad) that actions are divided by inside the model; empty = 1. The trainer sets the
    dataset's largest joint change per model step (velocity_limit × frameskip / rate_hz)."""
    latent_dim: int = 16
    """Size D of the global latent (16 keeps the effective rank high for this ~6-dimensional scene)."""
    history: int = 2
    """Number K of past latents the predictor sees (1..3); 2 lets it infer velocity."""
    frameskip: int = 1
    """Control periods per model step: the predictor looks this far ahead, its action is the joint motion over
    them, and its history latents are this far apart. Longer steps let a short plan span a whole push."""
    # encoder
    encoder: str = 'keypoints'
    """'keypoints' (CNN + spatial-softmax keypoints, default: latent distance tracks the pose), 'cnn' or 'vit'."""
    encoder_width: int = 16
    """CNN base channel count (doubles over 4 stages), keypoint-CNN channel count, or ViT token width."""
    feature_dim: int = 64
    """CNN head output size, or 2 × the number of keypoints (the ViT's is its width)."""
    vit_patch_size: int = 8
    vit_depth: int = 4
    vit_heads: int = 4
    pretrained_encoder: str = ''
    """Optional local state-dict file (.safetensors or .pt) for the encoder backbone, which is then frozen."""
    projector_hidden: int = 512
    """Hidden size of the BatchNorm projector from encoder features to the latent."""
    # predictor
    predictor: str = 'mlp'
    """'mlp' (residual MLP, default) or 'transformer' (small causal transformer over the history)."""
    predictor_width: int = 256
    predictor_depth: int = 3
    dropout: float = 0.1
    # proprioceptive readout
    state_head: bool = False
    """A linear readout latent → joint positions (radians), trained by the loss's state term. It makes the latent
    encode every joint linearly, and planners can measure goal distance in joint space through it. The trainer
    adds it whenever the loss's state_weight is > 0."""
    state_readout_hidden: int = 0
    """Hidden width of an MLP readout latent → joint positions, fitted on the frozen latents after training (the
    trainer's `state_readout_hidden`); 0 = none. It reads the joints 1.5–3.5× more precisely than the linear head
    (the joints are not linear in the keypoints), and `decode_state` uses it when present."""

    def __post_init__(self):
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f'image_size must be a multiple of 16, got {self.image_size=}')
        if self.action_dim < 1:
            raise ValueError(f'action_dim must be >= 1, got {self.action_dim=}')
        if self.action_scale and (len(self.action_scale) != self.action_dim or min(self.action_scale) <= 0):
            raise ValueError(f'action_scale must be empty or {self.action_dim} positive values, got '
                             f'{self.action_scale=}')
        if not 1 <= self.history <= 3:
            raise ValueError(f'history must be in 1..3, got {self.history=}')
        if not 1 <= self.frameskip <= 20:
            raise ValueError(f'frameskip must be in 1..20, got {self.frameskip=}')
        if self.latent_dim < 2:
            raise ValueError(f'latent_dim must be >= 2, got {self.latent_dim=}')
        if self.encoder not in ENCODERS:
            raise ValueError(f'encoder must be one of {ENCODERS}, got {self.encoder=}')
        if self.predictor not in PREDICTORS:
            raise ValueError(f'predictor must be one of {PREDICTORS}, got {self.predictor=}')
        if self.encoder == 'vit' and self.image_size % self.vit_patch_size:
            raise ValueError(f'image_size must be a multiple of vit_patch_size, got {self.vit_patch_size=}')
        if self.encoder_width % 8 or self.encoder_width < 8:
            raise ValueError(f'encoder_width must be a positive multiple of 8, got {self.encoder_width=}')
        if min(self.feature_dim, self.projector_hidden, self.predictor_width, self.predictor_depth) < 1:
            raise ValueError(f'sizes must be >= 1, got {self.feature_dim=} {self.projector_hidden=} '
                             f'{self.predictor_width=} {self.predictor_depth=}')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {self.dropout=}')
        if self.state_readout_hidden < 0:
            raise ValueError(f'state_readout_hidden must be >= 0, got {self.state_readout_hidden=}')


def build_encoder(config: ModelConfig) -> nn.Module:
    if config.encoder == 'keypoints':
        return KeypointEncoder(config.image_size, config.encoder_width, config.feature_dim // 2)
    if config.encoder == 'vit':
        return ViTEncoder(config.image_size, config.vit_patch_size, config.encoder_width, config.vit_depth,
                          config.vit_heads)
    return CNNEncoder(config.image_size, config.encoder_width, config.feature_dim)


def build_state_readout(latent_dim: int, hidden: int, n_joints: int) -> nn.Module:
    """The MLP state readout: latent (..., D) → joint positions (..., J)."""
    return nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, n_joints))


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch .pt/.pth state-dict file (weights only, never arbitrary pickles)."""
    path = Path(path)
    if path.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(str(path))
    return torch.load(path, map_location='cpu', weights_only=True)


class WorldModel(nn.Module):
    """Encoder → BatchNorm projector → latent; action-conditioned predictor over a K-latent history."""

    def __init__(self, config: ModelConfig, load_pretrained: bool = True):
        """`load_pretrained=False` skips reading `config.pretrained_encoder` (checkpoints carry those weights)."""
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config)
        if config.pretrained_encoder:
            if load_pretrained:
                self.encoder.load_state_dict(load_state_dict_file(config.pretrained_encoder))
            self.encoder.requires_grad_(False)
        self.projector = nn.Sequential(
            nn.Linear(self.encoder.feature_dim, config.projector_hidden), nn.BatchNorm1d(config.projector_hidden),
            nn.GELU(), nn.Linear(config.projector_hidden, config.latent_dim))
        predictor_cls = TransformerPredictor if config.predictor == 'transformer' else ResidualMLPPredictor
        self.predictor = predictor_cls(config.latent_dim, config.history, config.action_dim, config.predictor_width,
                                       config.predictor_depth, config.dropout)
        self.state_head = nn.Linear(config.latent_dim, config.action_dim) if config.state_head else None
        self.state_readout = build_state_readout(config.latent_dim, config.state_readout_hidden, config.action_dim) \
            if config.state_readout_hidden else None
        scale = config.action_scale or [1.0] * config.action_dim
        self.register_buffer('action_scale', torch.tensor(scale, dtype=torch.float32))

    def train(self, mode: bool = True) -> WorldModel:
        super().train(mode)
        if self.config.pretrained_encoder:
            self.encoder.eval()   # a frozen encoder stays frozen, dropout/norm statistics included
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) uint8 or float in [0, 1] → (..., D)."""
        size = self.config.image_size
        if images.shape[-3:] != (3, size, size):
            raise ValueError(f'expected images (..., 3, {size}, {size}), got {tuple(images.shape)}')
        lead = images.shape[:-3]
        x = images.reshape(-1, 3, size, size)
        x = to_unit(x)
        return self.projector(self.encoder(x.to(self.action_scale.device))).reshape(*lead, -1)

    def predict(self, z_hist: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Next latent (B, D) from the last K latents (B, K, D) and the action (B, J) in radians."""
        # a trace (the ONNX export's, with valid shapes) would keep this branch as a constant, with a warning
        if not torch.jit.is_tracing() and (z_hist.dim() != 3 or z_hist.shape[1] < self.config.history):
            raise ValueError(f'expected z_hist (B, >={self.config.history}, D), got {tuple(z_hist.shape)}')
        return self.predictor(z_hist[:, -self.config.history:], action / self.action_scale)

    @property
    def reads_state(self) -> bool:
        """Whether `decode_state` works (a state head or a state readout)."""
        return self.state_head is not None or self.state_readout is not None

    def decode_state(self, z: torch.Tensor) -> torch.Tensor:
        """Joint positions (..., J) in radians read out of latents (..., D): by the state readout if the model has
        one, else by the linear state head (ValueError without either)."""
        if self.state_readout is not None:
            return self.state_readout(z)
        if self.state_head is None:
            raise ValueError('this world model has no state head (ModelConfig.state_head is false)')
        return self.state_head(z)

    def rollout(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Latents (B, H, D) after each of H actions (B, H, J), feeding predictions back as history."""
        history = z_hist[:, -self.config.history:]
        predictions = []
        for h in range(actions.shape[1]):
            z_next = self.predict(history, actions[:, h])
            predictions.append(z_next)
            history = torch.cat([history[:, 1:], z_next[:, None]], dim=1)
        return torch.stack(predictions, dim=1)

    def __repr__(self) -> str:
        count = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        c = self.config
        return (f'WorldModel({c.encoder} encoder → {c.latent_dim}-d latent, {c.predictor} predictor, K={c.history}, '
                f'{count / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable)')

