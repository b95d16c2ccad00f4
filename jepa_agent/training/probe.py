"""Does the model see the block? Linear probes of the block's position from latents of frames rendered in the sim.

    metrics = block_probe(model, make_env(image_size=model.config.image_size, task='push'))

Recorded datasets do not store where the block is, so the probe makes its own frames. From each of `seeds` reset
states (random arm pose and block) it replays the scripted push to that state's push goal (sim/push.py; about a
third of the states have none and give their start frame only) and renders every `stride`-th frame. A ridge map
latent → block xy is fitted on the frames of the first seeds and scored on the held-out seeds' frames:
`block_probe_r2` (R², mean over x and y; 1 = exact, 0 = no better than the mean position). The same probe of the
end effector (`ee_probe_r2`) is the reference: the latent is trained to see the arm.

After contact: from the last frame of each held-out push before the block moves, the model rolls its K-frame history
`horizon` steps forward with the measured joint motions between the frames (the dataset's actions, which the planner
also feeds; the arm holds still once the push is over). The probe reads the block from the predicted latent
(`block_probe_r2_predicted_10`) and from the latent of the true frame (`..._encoded_10`, the most a prediction can
reach through this probe); `..._unmoved_10` scores the guess "the block stays where it was at contact", which a model
that does not foresee pushes cannot beat. `block_probe_error_*_m`: the same three as mean distances (m).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from jepa_agent.data.dataset import frame_actions
from jepa_agent.model.world_model import WorldModel
from jepa_agent.sim.arm_env import ArmEnv

#: m the block has to move from its start before the push counts as in contact
CONTACT_MOTION = 0.005
#: ridge penalty on standardized latents, per fitted frame
RIDGE = 1e-3
#: images encoded at once (bounds the memory of the probe)
ENCODE_CHUNK = 256


@dataclass
class Push:
    """Simulated frames of one start state: its scripted push (if any), then the arm holding still."""

    states: np.ndarray      # (T, S) env.get_state() of each frame
    qpos: np.ndarray        # (T, J)
    block: np.ndarray       # (T, 2) block xy
    ee: np.ndarray          # (T, 2) end-effector xy
    contact: int | None     # last frame before the block moves; None without a push


@dataclass
class ProbeFrames:
    """Rendered frames with the positions the probe reads, and the after-contact windows of held-out pushes."""

    images: np.ndarray      # (N, S, S, 3) uint8
    block: np.ndarray       # (N, 2)
    ee: np.ndarray          # (N, 2)
    held_out: np.ndarray    # (N,) bool: the frame belongs to a held-out seed
    history: np.ndarray     # (P, K, S, S, 3) uint8: the K frames up to contact
    motions: np.ndarray     # (P, H / frameskip, J) joint motion between the model's steps after contact
    target: np.ndarray      # (P, S, S, 3) uint8: the frame H steps after contact
    block_contact: np.ndarray   # (P, 2) block xy at contact
    block_after: np.ndarray     # (P, 2) block xy H steps after contact


def simulate_push(env: ArmEnv, seed: int, horizon: int) -> Push:
    """Frames of the scripted push from reset state `seed`, held still until `horizon` frames after contact."""
    env.reset(seed, render=False)
    try:
        actions = list(env.sample_goal(seed, 'push').demonstration)
    except ValueError:                    # no scripted push from this start state
        actions = []
    observations, states, contact = [env.get_observation(render=False)], [env.get_state()], None
    while actions or (contact is not None and len(states) <= contact + horizon):
        observations.append(env.step(actions.pop(0) if actions else np.zeros(env.n_joints), render=False))
        states.append(env.get_state())
        if contact is None and np.linalg.norm(observations[-1].block_pos - observations[0].block_pos) > CONTACT_MOTION:
            contact = len(states) - 2
    return Push(np.array(states), np.array([o.qpos for o in observations]),
                np.array([o.block_pos for o in observations]), np.array([o.ee_pos[:2] for o in observations]), contact)


def render_states(env: ArmEnv, states: np.ndarray) -> np.ndarray:
    """Images (N, S, S, 3) of full sim states (N, ·); leaves the env in the last one."""
    images = []
    for state in states:
        env.set_state(state)
        images.append(env.render())
    return np.array(images)


def collect_frames(env: ArmEnv, seeds: int = 120, held_out: float = 0.5, horizon: int = 10, history: int = 2,
                   stride: int = 3, first_seed: int = 300_000, frameskip: int = 1) -> ProbeFrames:
    """Probe frames of reset states first_seed.. (far from the training and validation episodes' seeds); the last
    `held_out` share of the seeds is held out. History frames and motions are `frameskip` periods apart (the model's
    step; `horizon` periods must be a whole number of them). ValueError when fewer than two held-out seeds have a
    push."""
    if horizon % frameskip:
        raise ValueError(f'the probe horizon ({horizon} periods) must be a multiple of the frameskip ({frameskip})')
    pushes = [simulate_push(env, first_seed + i, horizon) for i in range(seeds)]
    test = np.arange(seeds) >= seeds - round(held_out * seeds)
    scored = [p for p, t in zip(pushes, test) if t and p.contact is not None]
    if len(scored) < 2:
        raise ValueError(f'{len(scored)} held-out seeds have a scripted push; the probe needs 2 (use more seeds)')
    static = [np.arange(0, len(p.states), stride) for p in pushes]
    windows = [[max(p.contact - (history - 1 - j) * frameskip, 0) for j in range(history)] + [p.contact + horizon]
               for p in scored]
    return ProbeFrames(
        images=render_states(env, np.concatenate([p.states[i] for p, i in zip(pushes, static)])),
        block=np.concatenate([p.block[i] for p, i in zip(pushes, static)]),
        ee=np.concatenate([p.ee[i] for p, i in zip(pushes, static)]),
        held_out=np.concatenate([np.full(len(i), t) for i, t in zip(static, test)]),
        history=np.array([render_states(env, p.states[w[:-1]]) for p, w in zip(scored, windows)]),
        motions=np.array([frame_actions(p.qpos[p.contact:p.contact + horizon + 1:frameskip]) for p in scored]),
        target=render_states(env, np.array([p.states[w[-1]] for p, w in zip(scored, windows)])),
        block_contact=np.array([p.block[p.contact] for p in scored]),
        block_after=np.array([p.block[p.contact + horizon] for p in scored]))


def fit_linear_map(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> Callable[[np.ndarray], np.ndarray]:
    """Ridge regression y ≈ f(x) for x (N, D), y (N, M); x is standardized so the penalty weighs every latent
    dimension alike, whatever its scale."""
    mean, std, offset = x.mean(0), x.std(0) + 1e-8, y.mean(0)
    xs = (x - mean) / std
    weights = np.linalg.solve(xs.T @ xs + ridge * len(x) * np.eye(x.shape[1]), xs.T @ (y - offset))

    def linear_map(z: np.ndarray) -> np.ndarray:
        return (z - mean) / std @ weights + offset
    return linear_map


def r_squared(y: np.ndarray, guess: np.ndarray) -> float:
    """Coefficient of determination of `guess` for y (N, M), averaged over the M columns."""
    residual, total = np.square(y - guess).sum(0), np.square(y - y.mean(0)).sum(0)
    return float(np.mean(1.0 - residual / total))


@torch.no_grad()
def encode_images(model: WorldModel, images: np.ndarray) -> torch.Tensor:
    """Latents (..., D) of uint8 images (..., S, S, 3), in chunks."""
    x = torch.from_numpy(images).movedim(-1, -3)                                  # (..., 3, S, S)
    flat = x.reshape(-1, *x.shape[-3:])
    z = torch.cat([model.encode(flat[i:i + ENCODE_CHUNK]) for i in range(0, len(flat), ENCODE_CHUNK)])
    return z.reshape(*x.shape[:-3], -1)


@torch.no_grad()
def score_probe(model: WorldModel, frames: ProbeFrames) -> dict:
    """The probe's metrics (module docstring) of `model` on `frames`."""
    model.eval()
    z = encode_images(model, frames.images).double().cpu().numpy()
    train, test = ~frames.held_out, frames.held_out
    block_map = fit_linear_map(z[train], frames.block[train])
    ee_map = fit_linear_map(z[train], frames.ee[train])
    history = encode_images(model, frames.history)                                # (P, K, D)
    predicted = model.rollout(history, torch.as_tensor(frames.motions, dtype=history.dtype, device=history.device))
    horizon = frames.motions.shape[1] * model.config.frameskip
    guesses = {'predicted': block_map(predicted[:, -1].double().cpu().numpy()),
               'encoded': block_map(encode_images(model, frames.target).double().cpu().numpy()),
               'unmoved': frames.block_contact}
    metrics = {'block_probe_r2': r_squared(frames.block[test], block_map(z[test])),
               'ee_probe_r2': r_squared(frames.ee[test], ee_map(z[test])),
               'block_probe_frames': [int(train.sum()), int(test.sum())], 'block_probe_pushes': len(frames.motions)}
    for name, guess in guesses.items():
        metrics[f'block_probe_r2_{name}_{horizon}'] = r_squared(frames.block_after, guess)
        metrics[f'block_probe_error_{name}_{horizon}_m'] = float(np.linalg.norm(frames.block_after - guess,
                                                                                axis=1).mean())
    return metrics


def block_probe(model: WorldModel, env: ArmEnv, seeds: int = 120, held_out: float = 0.5, horizon: int = 10,
                stride: int = 3) -> dict:
    """Probe metrics of `model` on fresh frames of `env` (a scene with a block, rendered at the model's image size)."""
    return score_probe(model, collect_frames(env, seeds, held_out, horizon, model.config.history, stride,
                                             frameskip=model.config.frameskip))
