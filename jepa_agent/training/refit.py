"""Refit: after end-to-end training, train the predictor (and fit a state readout) on latents of the frozen encoder.

During end-to-end training the predictor chases targets that move with the encoder, and it sees each window about
once. With the encoder fixed, the latents of the whole dataset are computed once and the predictor can take many
cheap steps on them (no image passes), as V-JEPA 2-AC trains its predictor on a frozen encoder. On the shipped
recipe this lowered the held-out 10-step rollout error by a third; reach success held or rose (docs/model.md).

The state readout (an MLP latent → joints) is fitted the same way, after the predictor and from its own seed, so
adding it changes no other weight. The linear state head trained end to end makes the latent encode the joints, but
reads them only to 0.08–0.24 rad: the joints are not linear in the encoder's keypoints.
"""
from __future__ import annotations

import dataclasses
import warnings

import torch

from jepa_agent.data.dataset import WindowDataset
from jepa_agent.model.world_model import WorldModel, build_state_readout
from jepa_agent.training.losses import LossConfig, prediction_errors
from jepa_agent.training.schedule import cosine_with_warmup


@torch.no_grad()
def encode_dataset(model: WorldModel, dataset: WindowDataset, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor,
                                                                                          torch.Tensor, torch.Tensor]:
    """(latents (F, D), actions (F, J), window starts (N,), joint positions (F, J)) of every episode, in eval mode,
    on the model's device.

    Frames of all episodes are concatenated; a frame's action is the joint motion over the next `dataset.frameskip`
    frames (zero where the episode ends first: no window uses it). Windows (dataset.window frames, frameskip apart,
    stride 1) whose actions hold NaN/inf are left out with a warning.
    """
    was_training = model.training
    model.eval()
    device, skip = model.action_scale.device, dataset.frameskip
    latents, actions, starts, positions, offset, dropped = [], [], [], [], 0, 0
    for number, length in enumerate(dataset.episode_lengths.tolist()):
        z, q = [], []
        for i in range(0, length, chunk):   # chunks keep long, large-image recordings out of memory
            part = dataset.frames(number, i, min(i + chunk, length))
            z.append(model.encode(part['images'].to(device)))
            q.append(part['qpos'])
        z, q = torch.cat(z), torch.cat(q).to(device)
        a = torch.cat([q[skip:] - q[:-skip], q.new_zeros(skip, q.shape[1])])
        # a window starting at s uses the actions of frames s, s + skip, .., s + span - 1 - skip
        finite = torch.isfinite(a).all(1)
        usable = torch.stack([finite[j * skip:len(z) - dataset.span + 1 + j * skip]
                              for j in range(dataset.window - 1)]).all(0)
        starts.append(offset + torch.nonzero(usable)[:, 0])
        dropped += int((~usable).sum())
        latents.append(z)
        positions.append(q)
        actions.append(torch.nan_to_num(a))
        offset += len(z)
    model.train(was_training)
    if dropped:
        warnings.warn(f'predictor refit: left out {dropped} windows whose actions hold NaN/inf', RuntimeWarning,
                      stacklevel=2)
    return torch.cat(latents), torch.cat(actions), torch.cat(starts), torch.cat(positions)


def refit_predictor(model: WorldModel, dataset: WindowDataset, encoded: tuple, loss_config: LossConfig, steps: int,
                    batch_size: int, learning_rate: float, weight_decay: float = 1e-4, grad_clip: float = 1.0,
                    seed: int = 0, progress: bool = False) -> dict:
    """Train `model.predictor` alone for `steps` (>= 1) on windows of frozen latents (`encoded`: what
    `encode_dataset(model, dataset)` returns; the predictor does not change them); returns the last loss terms."""
    from tqdm import tqdm

    latents, actions, starts, _ = encoded
    if len(starts) == 0:
        raise ValueError('predictor refit: the dataset has no window with finite actions')
    device = starts.device
    offsets = torch.arange(dataset.window, device=device) * dataset.frameskip
    parameters = [p for p in model.predictor.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    k, c = model.config.history, loss_config
    model.predictor.train()
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed)   # dropout masks too: the refit result does not depend on what ran before
        for step in tqdm(range(steps), desc='predictor refit', unit='step', disable=not progress,
                         dynamic_ncols=True):
            for group in optimizer.param_groups:
                group['lr'] = learning_rate * cosine_with_warmup(step, steps, min(100, steps // 10))
            pick = starts[torch.randint(len(starts), (batch_size,)).to(device)]
            frames = pick[:, None] + offsets                                  # (B, T)
            z, a = latents[frames], actions[frames[:, :-1]]
            teacher_forcing, per_step = prediction_errors(model, z, z[:, k:], a)
            loss = c.teacher_forcing_weight * teacher_forcing + c.rollout_weight * per_step.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
            optimizer.step()
    model.eval()
    return {'teacher_forcing': teacher_forcing.item(), 'rollout': per_step.mean().item(), 'total': loss.item()}


READOUT_BATCH = 512
READOUT_LEARNING_RATE = 3e-3


def fit_state_readout(model: WorldModel, latents: torch.Tensor, qpos: torch.Tensor, hidden: int, steps: int,
                      seed: int = 0, progress: bool = False) -> dict:
    """Give `model` a new MLP state readout (`hidden` wide) fitted for `steps` (>= 1) on frozen latents (F, D) and
    the joint positions (F, J) of the same frames (`encode_dataset`), those with finite ones; returns its RMSE per
    joint on them (radians)."""
    from tqdm import tqdm

    finite = torch.isfinite(qpos).all(1)
    latents, qpos = latents[finite], qpos[finite]
    if len(latents) == 0:
        raise ValueError('state readout: the dataset has no frame with finite joint positions')
    device = latents.device
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(seed)
        readout = build_state_readout(latents.shape[1], hidden, qpos.shape[1]).to(device)
        with torch.no_grad():                       # standardise the latents inside the first layer
            mean, std = latents.mean(0), latents.std(0).clamp_min(1e-6)
            readout[0].weight.div_(std)
            readout[0].bias.sub_(readout[0].weight @ mean)
        optimizer = torch.optim.AdamW(readout.parameters(), lr=READOUT_LEARNING_RATE, weight_decay=1e-4)
        for step in tqdm(range(steps), desc='state readout', unit='step', disable=not progress, dynamic_ncols=True):
            for group in optimizer.param_groups:
                group['lr'] = READOUT_LEARNING_RATE * cosine_with_warmup(step, steps, 0)
            pick = torch.randint(len(latents), (READOUT_BATCH,)).to(device)
            loss = (readout(latents[pick]) - qpos[pick]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        rmse = (readout(latents) - qpos).square().mean(0).sqrt()
    model.state_readout = readout
    model.config = dataclasses.replace(model.config, state_readout_hidden=hidden)
    return {'rmse_rad': [round(float(e), 5) for e in rmse]}
