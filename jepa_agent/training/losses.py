"""The JEPA training objective, shared by the offline trainer and the online learner.

    objective = JEPAObjective(model, LossConfig())
    loss, terms = objective(batch['images'], batch['actions'], step)   # (B,T,3,H,W), (B,T-1,J); T = K + rollout
    loss.backward(); optimizer.step(); objective.after_step()

Loss = teacher forcing (each next latent from the true history) + rollout (the model's own predictions fed back for
T − K steps, which is what the planner does) + an anti-collapse regularizer on all latents of the global batch.
The objective is an nn.Module so DistributedDataParallel can wrap it whole.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jepa_agent.model.images import to_unit
from jepa_agent.model.regularizers import SIGReg, gather_with_grad, vicreg, world_size
from jepa_agent.model.world_model import WorldModel

REGULARIZERS = ('sigreg', 'vicreg', 'ema', 'none')


class NonFiniteBatchError(ValueError):
    """A batch (or the loss computed from it) holds NaN/inf; callers may skip it with a warning or stop."""


@dataclass
class LossConfig:
    """Weights and choices of the JEPA objective."""

    rollout_steps: int = 4
    """Prediction horizon H trained per window (windows hold history + H frames)."""
    teacher_forcing_weight: float = 1.0
    rollout_weight: float = 1.0
    regularizer: str = 'sigreg'
    """'sigreg' (default), 'vicreg', 'ema' (targets from an EMA copy of the encoder) or 'none' (collapses)."""
    regularizer_weight: float = 0.02
    """Small on purpose: a strong SIGReg Gaussianizes the low-dimensional scene and folds latent distances."""
    sigreg_projections: int = 256
    ema_decay: float = 0.996
    state_weight: float = 0.0
    """Weight of the model's linear state head (latent → measured joint positions, radians; ModelConfig.state_head).
    It makes the latent encode every joint, the small wrist included, linearly, so latent distance tracks joint-space
    distance over the whole range (sin/cos targets made poses on both sides of the ±π seam look close); 0 disables.
    The objective then needs `qpos` with every batch (WindowDataset windows carry it)."""

    def __post_init__(self):
        if self.rollout_steps < 1:
            raise ValueError(f'rollout_steps must be >= 1, got {self.rollout_steps=}')
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f'regularizer must be one of {REGULARIZERS}, got {self.regularizer=}')
        if min(self.teacher_forcing_weight, self.rollout_weight, self.regularizer_weight) < 0:
            raise ValueError(f'loss weights must be >= 0, got {self.teacher_forcing_weight=} '
                             f'{self.rollout_weight=} {self.regularizer_weight=}')
        if self.sigreg_projections < 1:
            raise ValueError(f'sigreg_projections must be >= 1, got {self.sigreg_projections=}')
        if self.state_weight < 0:
            raise ValueError(f'state_weight must be >= 0, got {self.state_weight=}')
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f'ema_decay must be in (0, 1), got {self.ema_decay=}')


def check_finite(**tensors: torch.Tensor | None) -> None:
    """Raise NonFiniteBatchError if a float input holds NaN/inf (uint8 images cannot)."""
    for name, tensor in tensors.items():
        if tensor is not None and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteBatchError(f'batch {name} contain NaN or inf')


def prediction_errors(model: WorldModel, z: torch.Tensor, targets: torch.Tensor,
                      actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(teacher-forcing MSE, rollout MSE per step (T-K,)) of `model`'s predictor on latent windows.

    z (B,T,D) are the inputs, targets (B,T-K,D) the latents to predict after each history, actions (B,T-1,J).
    Teacher forcing predicts every next latent from the true K-latent history; the rollout feeds predictions back.
    """
    k, t = model.config.history, z.shape[1]
    actions = actions[:, k - 1:]                                         # (B, T-K, J) action after each history
    histories = z.unfold(1, k, 1)[:, :t - k].permute(0, 1, 3, 2)         # (B, T-K, K, D)
    forced = model.predict(histories.flatten(0, 1), actions.flatten(0, 1)).view_as(targets)
    teacher_forcing = F.mse_loss(forced.float(), targets.float())
    rolled = model.rollout(z[:, :k], actions)                            # (B, T-K, D)
    return teacher_forcing, (rolled.float() - targets.float()).square().mean(dim=(0, 2))


class JEPAObjective(nn.Module):
    """Computes the loss of `model` on windows of frames and actions; owns the regularizer and EMA target."""

    def __init__(self, model: WorldModel, config: LossConfig | None = None):
        super().__init__()
        self.model = model
        self.config = config or LossConfig()
        self.sigreg = SIGReg(self.config.sigreg_projections)
        self.target: nn.Module | None = None
        if self.config.regularizer == 'ema':
            self.target = copy.deepcopy(nn.ModuleDict({'encoder': model.encoder, 'projector': model.projector}))
            self.target.requires_grad_(False)
        if self.config.state_weight > 0 and model.state_head is None:
            raise ValueError('loss state_weight > 0 needs a model with a state head (model state_head: true)')

    @property
    def window(self) -> int:
        """Frames per training window: history K + rollout steps H."""
        return self.model.config.history + self.config.rollout_steps

    def forward(self, images: torch.Tensor, actions: torch.Tensor, step: int,
                qpos: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """(total loss, {term name: detached tensor, 'latents': (B,T,D), 'rollout_error': (H,)}) for one batch.

        images (B,T,3,H,W), actions (B,T-1,J), qpos (B,T,J) measured joints (needed when state_weight > 0).

        Raises NonFiniteBatchError for NaN/inf inputs. The loss itself is not checked here (under DDP every rank
        must agree before skipping); callers test `torch.isfinite(loss)` before `backward()`.
        """
        check_finite(images=images, actions=actions, qpos=qpos)
        if self.config.state_weight > 0 and qpos is None:
            raise ValueError('state_weight > 0 needs the batch qpos (B, T, J)')
        k, (b, t) = self.model.config.history, images.shape[:2]
        if t < k + 1 or actions.shape[:2] != (b, t - 1):
            raise ValueError(f'need images (B,T>={k + 1},3,H,W) and actions (B,T-1,J), got {tuple(images.shape)} '
                             f'and {tuple(actions.shape)}')
        z = self.model.encode(images)                                        # (B, T, D)
        teacher_forcing, per_step = prediction_errors(self.model, z, self._targets(images, z)[:, k:], actions)
        rollout = per_step.mean()
        regularizer = self._regularizer(z, step)
        state = self._state_probe(z, qpos)
        c = self.config
        loss = c.teacher_forcing_weight * teacher_forcing + c.rollout_weight * rollout \
            + c.regularizer_weight * regularizer * world_size() + c.state_weight * state
        variance = z.detach().float().flatten(0, 1).var(0).mean().clamp_min(1e-8)
        terms = {'teacher_forcing': teacher_forcing.detach(), 'rollout': rollout.detach(),
                 'regularizer': regularizer.detach(), 'state': state.detach(), 'total': loss.detach(),
                 'latents': z.detach(),
                 'rollout_error': (per_step.detach() / variance)}
        return loss, terms

    def _targets(self, images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.target is None:
            return z
        with torch.no_grad():
            x = to_unit(images.flatten(0, 1))
            return self.target['projector'](self.target['encoder'](x)).view_as(z)

    def _state_probe(self, z: torch.Tensor, qpos: torch.Tensor | None) -> torch.Tensor:
        """The linear state head's error (it shapes the encoder), plus, when the model has one, the state readout's
        on the detached latents, so a model that keeps learning (online) keeps its readout in step."""
        if self.config.state_weight == 0:
            return z.new_zeros(())
        qpos = qpos.to(z.device).float()
        error = F.mse_loss(self.model.state_head(z).float(), qpos)
        if self.model.state_readout is not None:
            error = error + F.mse_loss(self.model.state_readout(z.detach()).float(), qpos)
        return error

    def _regularizer(self, z: torch.Tensor, step: int) -> torch.Tensor:
        name = self.config.regularizer
        if name in ('ema', 'none'):
            return z.new_zeros(())
        everything = gather_with_grad(z.flatten(0, 1)).float()             # (global B·T, D)
        with torch.autocast(z.device.type, enabled=False):                 # statistics need fp32
            return vicreg(everything) if name == 'vicreg' else self.sigreg(everything, seed=step)

    @torch.no_grad()
    def after_step(self) -> None:
        """Call after each optimizer step: moves the EMA target towards the online encoder."""
        if self.target is None:
            return
        online = [*self.model.encoder.parameters(), *self.model.projector.parameters()]
        torch._foreach_lerp_(list(self.target.parameters()), online, 1.0 - self.config.ema_decay)
        for target_buffer, buffer in zip(self.target.buffers(),
                                         [*self.model.encoder.buffers(), *self.model.projector.buffers()]):
            target_buffer.copy_(buffer)

