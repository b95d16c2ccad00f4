"""Keep learning after deployment: a bounded replay buffer of live frames, background training, surprise.

    learner = OnlineLearner(model, metadata, OnlineLearnerConfig(checkpoint_dir='runs/online'))
    learner.observe(image, qpos, target, time)      # every frame, from any thread
    learner.start()                                 # trains in a background thread at a capped duty cycle
    ...
    learner.stop()

Checkpoints are gated: every `holdout_every`-th stretch of `holdout_stretch` live frames is held out (never trained
on; training windows never touch it), and a checkpoint is written and announced only if the model's multi-step
prediction error on the held-out windows in the buffer is no worse than that of the model announced last (at first,
the one it started from) by more than `announce_margin`. A withheld checkpoint is not written; the reason (both
errors) is reported. The error is the offline trainer's rollout error (`prediction_errors`) over `holdout_horizon`
steps as a fraction of the persistence baseline's (the last seen latent) on the same windows, each model in its own
latent space: 0 is perfect, 1 is "no better than predicting that nothing moves".

Surprise is the world model's error on the newest transition: the latent it predicted for the current view from
the previous K views and the action taken, against the latent it actually sees, divided by the latent variance so
that values stay comparable while the model trains (≈ 1 means "no better than guessing the mean view").
The training loss is the offline trainer's `JEPAObjective`; the learner adds only the buffer, the schedule and the
bookkeeping (the buffer: replay.py; frame checks: live_frames.py; the held-out error: evaluation.py). ROS-free:
the `trainer` node feeds it and publishes what it reports.
"""
from __future__ import annotations

import copy
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jepa_agent.config import bounded, check_ranges
from jepa_agent.model.checkpoint import save_checkpoint
from jepa_agent.model.devices import check_device, resolve_device
from jepa_agent.model.world_model import WorldModel
from jepa_agent.training.evaluation import held_out_error
from jepa_agent.data.episodes import FrameError
from jepa_agent.training.live_frames import LiveFrameCheck
from jepa_agent.training.losses import JEPAObjective, LossConfig, NonFiniteBatchError
from jepa_agent.training.replay import ReplayBuffer

log = logging.getLogger(__name__)

#: latents encoded to estimate the latent variance before the first training step
VARIANCE_SAMPLE = 64
#: fewest held-out windows a checkpoint is judged on (fewer: it is withheld)
MIN_HOLDOUT_WINDOWS = 4


@dataclass
class OnlineLearnerConfig:
    """Online learner parameters (the `trainer` node's learning parameters share these names)."""

    # replay buffer
    buffer_frames: int = bounded(3000, ge=8)
    """Live frames kept in memory; the oldest are dropped first (3000 × 64 px ≈ 37 MB)."""
    min_frames: int = bounded(30, ge=1)
    """Live frames needed before training starts."""
    seed_dataset: str = ''
    """Optional recorded dataset directory mixed into every batch (keeps old experience from being forgotten)."""
    seed_fraction: float = bounded(0.5, ge=0, le=1)
    """Share of each batch drawn from `seed_dataset` when one is given."""
    # optimisation
    batch_size: int = bounded(16, ge=2)
    """Windows per training step (at least 2: the projector has BatchNorm)."""
    learning_rate: float = bounded(1e-4, gt=0)
    """AdamW learning rate."""
    rollout_steps: int = bounded(2, ge=1)
    """Rollout horizon trained per window (windows hold history K + this many frames)."""
    state_weight: float = bounded(1.0, ge=0)
    """Weight of the state-head term (latent → measured joints) for models that have a state head, as in offline
    training: it keeps the latent's joint geometry, which the planner's cost relies on, from drifting."""
    duty_cycle: float = bounded(0.5, gt=0, le=1)
    """Largest fraction of wall time spent training; the rest is left to the other nodes on the machine."""
    device: str = 'cpu'
    """Torch device for the learner: 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    # outputs
    checkpoint_dir: str = ''
    """Where checkpoints are written ('' = never)."""
    checkpoint_every_s: float = bounded(60.0, gt=0)
    """Seconds between checkpoints (only written after new training steps)."""
    keep_checkpoints: int = bounded(3, ge=1)
    """Newest checkpoints kept in `checkpoint_dir`; older ones are deleted."""
    # announce gate (held-out live windows)
    holdout_every: int = bounded(5, ge=2)
    """Every n-th stretch of live frames is held out: never trained on, used to judge checkpoints (5 = 20 %; 1 would
    hold out every frame)."""
    holdout_stretch: int = bounded(40, ge=2)
    """Frames per stretch (>= model history + holdout_horizon); held-out windows lie inside one stretch."""
    holdout_horizon: int = bounded(10, ge=1)
    """Prediction steps of the held-out error (the planner rolls the model out this far)."""
    holdout_windows: int = bounded(32, ge=MIN_HOLDOUT_WINDOWS)
    """Most held-out windows a checkpoint is judged on, spread evenly over those in the buffer (at least 4 needed)."""
    announce_margin: float = bounded(0.0, gt=-1)
    """A checkpoint is announced only if its held-out error <= (1 + margin) x the announced model's: 0 = no worse,
    0.02 = at most 2 % worse (small slips can then add up over checkpoints), -0.05 = at least 5 % better."""
    seed: int = 0
    """Seed of the batch sampler."""

    def __post_init__(self):
        check_ranges(self)
        check_device(self.device)
        if self.min_frames > self.buffer_frames:
            raise ValueError(f'min_frames must be <= buffer_frames, got {self.min_frames=} {self.buffer_frames=}')
        if self.holdout_stretch <= self.holdout_horizon:
            raise ValueError(f'holdout_stretch must be > holdout_horizon, got {self.holdout_stretch=} '
                             f'{self.holdout_horizon=}')


def train_keeping_batch_norm_statistics(model: torch.nn.Module) -> None:
    """Training mode, except that BatchNorm layers normalize with (and keep) their running statistics: live batches
    are small and their frames correlated, and statistics updated from them moved a well-trained model's held-out
    10-step error from 5 % to 14 % of persistence within 50 steps even at a learning rate of 1e-9."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


class OnlineLearner:
    """Trains a WorldModel on the live stream in a background thread; reports surprise, and announces checkpoints
    that are no worse than the announced model on held-out live windows."""

    def __init__(self, model: WorldModel, metadata: dict, config: OnlineLearnerConfig | None = None, *,
                 rate_hz: float | None = None,
                 on_surprise: Callable[[float], None] | None = None,
                 on_checkpoint: Callable[[Path], None] | None = None,
                 on_withheld: Callable[[str], None] | None = None):
        """`metadata` is the checkpoint metadata (joint names, limits, rate) carried into new checkpoints;
        `rate_hz` (default: metadata['rate_hz']; ValueError if neither says) is the frame rate the model was trained at.
        `on_checkpoint(path)` is called for each announced checkpoint, `on_withheld(message)` (default: a logged
        warning) for each withheld one."""
        if model.config.frameskip != 1:     # its replay windows and surprise take consecutive frames as model steps
            raise ValueError(f'online learning needs a model whose step is one frame, got frameskip '
                             f'{model.config.frameskip}')
        self.config = config or OnlineLearnerConfig()
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        self.metadata = dict(metadata)
        self.rate_hz = float(rate_hz or self.metadata.get('rate_hz') or 0.0)
        if not self.rate_hz > 0:
            raise ValueError('the frame rate the model was trained at is unknown: pass rate_hz or a checkpoint whose '
                             'metadata has it')
        self.on_surprise, self.on_checkpoint, self.on_withheld = on_surprise, on_checkpoint, on_withheld
        state_weight = self.config.state_weight if self.model.state_head is not None else 0.0
        self.objective = JEPAObjective(self.model, LossConfig(rollout_steps=self.config.rollout_steps,
                                                              state_weight=state_weight))
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                           lr=self.config.learning_rate)
        mc, c = self.model.config, self.config
        self.window = self.objective.window
        self.holdout_window = mc.history + c.holdout_horizon
        """Frames per held-out window: history K + holdout_horizon."""
        if self.holdout_window > c.holdout_stretch:
            raise ValueError(f'holdout_stretch ({c.holdout_stretch}) must hold the model history ({mc.history}) + '
                             f'holdout_horizon ({c.holdout_horizon}) frames')
        if self.window > (c.holdout_every - 1) * c.holdout_stretch:
            raise ValueError(f'a training window of {self.window} frames does not fit between held-out stretches '
                             f'({c.holdout_every - 1} x holdout_stretch {c.holdout_stretch} frames)')
        self.frame_check = LiveFrameCheck(mc.image_size, mc.action_dim, self.metadata)
        self.buffer = ReplayBuffer(c.buffer_frames, mc.image_size, mc.action_dim, 1.0 / self.rate_hz,
                                   holdout_stretch=c.holdout_stretch, holdout_every=c.holdout_every)
        self.seed_data = self._open_seed_dataset(self.config.seed_dataset)
        self.rng = np.random.default_rng(self.config.seed)
        self.steps = 0
        self.skipped_batches = 0
        self.last_loss: float | None = None
        self.last_surprise: float | None = None
        self._latent_variance: float | None = None
        self._surprise_seen = 0
        self._last_checkpoint_step = 0
        self._last_checkpoint_time = time.monotonic()
        # announce gate: a frozen copy of the announced weights (at first, the starting model's)
        self.announced_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.announced_path: Path | None = None
        self.checkpoints_announced = 0
        self.checkpoints_withheld = 0
        self.last_holdout_error: float | None = None
        """Held-out error of the last checkpoint candidate (fraction of persistence)."""
        self.last_announced_error: float | None = None
        """Held-out error of the announced model on the same windows."""
        self.last_holdout_windows = 0
        self.last_withheld_reason = ''
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _open_seed_dataset(self, root: str):
        if not root:
            return None
        from jepa_agent.data.dataset import WindowDataset
        data = WindowDataset(root, window=self.window)
        names, size = data.meta.get('joint_names'), self.model.config.image_size
        if 'joint_names' in self.metadata and names != self.metadata['joint_names']:
            raise ValueError(f'seed dataset {root} has joints {names}, the model {self.metadata["joint_names"]}')
        if (data.meta.get('image_height'), data.meta.get('image_width')) != (size, size):
            raise ValueError(f'seed dataset {root} has {data.meta.get("image_width")}x'
                             f'{data.meta.get("image_height")} images, the model needs {size}x{size}')
        if len(data) == 0:
            raise ValueError(f'seed dataset {root} has no window of {self.window} frames')
        return data

    # -- input -----------------------------------------------------------------------------------------------
    def observe(self, image: np.ndarray, qpos: np.ndarray, target: np.ndarray, stamp: float) -> None:
        """Add one live frame: camera image (H, W, 3) uint8, measured and commanded joint positions (radians),
        time in seconds. Raises FrameError (the frame is dropped and the sequence broken) if it is unusable."""
        try:
            chw, qpos, _ = self.frame_check(image, qpos, target, stamp)
        except FrameError:
            self.buffer.break_sequence()
            raise
        self.buffer.add(chw, qpos, float(stamp))

    # -- learning --------------------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Enough live frames to train."""
        return len(self.buffer) >= max(self.config.min_frames, self.window)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(images, actions, qpos) of live windows, mixed with seed-dataset windows when one is given."""
        n_seed = round(self.config.batch_size * self.config.seed_fraction) if self.seed_data is not None else 0
        starts = self.buffer.window_starts(self.window, self.config.batch_size - n_seed, self.rng)
        if len(starts) + n_seed < 2:
            return None
        batch = [torch.from_numpy(part) for part in self.buffer.windows(starts, self.window)]
        if n_seed:
            items = [self.seed_data[int(i)] for i in self.rng.integers(0, len(self.seed_data), n_seed)]
            batch = [torch.cat([part, torch.stack([it[key] for it in items])])
                     for part, key in zip(batch, ('images', 'actions', 'qpos'))]
        return tuple(part.to(self.device) for part in batch)

    def train_step(self) -> float | None:
        """One optimizer step on a batch of replayed windows; the loss, or None if no usable batch."""
        batch = self._batch()
        if batch is None:
            return None
        train_keeping_batch_norm_statistics(self.model)
        try:
            images, actions, qpos = batch
            loss, terms = self.objective(images, actions, self.steps, qpos)
        except NonFiniteBatchError as exc:
            return self._skip(f'skipped a training batch: {exc}')
        if not torch.isfinite(loss):
            return self._skip('skipped a training batch: the loss is not finite')
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.objective.after_step()
        self.steps += 1
        self.last_loss = float(loss.detach())
        variance = float(terms['latents'].flatten(0, 1).var(0).mean())
        self._latent_variance = variance if self._latent_variance is None else \
            0.9 * self._latent_variance + 0.1 * variance
        return self.last_loss

    def _skip(self, message: str) -> None:
        self.skipped_batches += 1
        log.warning(message)
        return None

    @torch.no_grad()
    def surprise(self) -> float | None:
        """Normalized prediction error of the newest transition, or None until K+1 unbroken frames exist."""
        newest = self.buffer.newest(self.model.config.history + 1)
        if newest is None:
            return None
        images, actions, _ = newest
        self.model.eval()
        z = self.model.encode(torch.from_numpy(images).to(self.device))                      # (K+1, D)
        action = torch.from_numpy(actions[-1]).to(self.device)
        predicted = self.model.predict(z[None, :-1], action[None])[0]
        error = float((predicted - z[-1]).square().mean()) / self._variance()
        return error if np.isfinite(error) else None

    def _variance(self) -> float:
        """Mean per-dimension latent variance: from training batches, else from a sample of the buffer."""
        if self._latent_variance is None:
            n = min(len(self.buffer), VARIANCE_SAMPLE)
            starts = self.buffer.window_starts(1, n, self.rng)
            if len(starts) < 2:
                return 1.0
            images = self.buffer.windows(starts, 1)[0]
            z = self.model.encode(torch.from_numpy(images[:, 0]).to(self.device))
            self._latent_variance = float(z.var(0).mean())
        return max(self._latent_variance, 1e-8)

    # -- checkpoints -----------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write a checkpoint `<checkpoint_dir>/online-<step>` and delete all but the newest few."""
        root = Path(self.config.checkpoint_dir)
        metadata = dict(self.metadata, online_steps=self.steps, rate_hz=self.rate_hz)
        path = save_checkpoint(self.model, root / f'online-{self.steps:07d}', metadata)
        for old in sorted(root.glob('online-*'))[:-self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        self._last_checkpoint_step, self._last_checkpoint_time = self.steps, time.monotonic()
        return path

    def _checkpoint_due(self) -> bool:
        return bool(self.config.checkpoint_dir) and self.steps > self._last_checkpoint_step and \
            time.monotonic() - self._last_checkpoint_time >= self.config.checkpoint_every_s

    def judge(self) -> str | None:
        """Compare the current weights with the announced ones on the held-out windows now in the buffer; None if
        they may be announced, else why not. Records both errors (`last_holdout_error`, `last_announced_error`)."""
        starts = self.buffer.holdout_starts(self.holdout_window, self.config.holdout_windows)
        self.last_holdout_windows = len(starts)
        if len(starts) < MIN_HOLDOUT_WINDOWS:
            self.last_holdout_error = self.last_announced_error = None
            return (f'only {len(starts)} held-out windows of {self.holdout_window} frames in the buffer so far '
                    f'(need {MIN_HOLDOUT_WINDOWS})')
        images, actions, _ = (torch.from_numpy(part).to(self.device)
                              for part in self.buffer.windows(starts, self.holdout_window))
        candidate = self.last_holdout_error = held_out_error(self.model, images, actions)
        announced = self.last_announced_error = held_out_error(self.announced_model, images, actions)
        errors = (f'held-out {self.config.holdout_horizon}-step error {candidate:.4g} vs {announced:.4g} of the '
                  f'announced model (fractions of persistence, {len(starts)} windows)')
        if not math.isfinite(candidate):
            return f'{errors}: the new latents do not move over the held-out windows'
        if candidate > (1 + self.config.announce_margin) * announced:
            return f'{errors}: worse than the announce margin {self.config.announce_margin:+.0%} allows'
        return None

    def checkpoint(self) -> Path | None:
        """Judge the current weights (`judge`); write and announce them if they pass, else withhold them (nothing
        is written) and report why. The announced checkpoint's path, or None."""
        self._last_checkpoint_step, self._last_checkpoint_time = self.steps, time.monotonic()
        reason = self.judge()
        if reason is not None:
            self.checkpoints_withheld += 1
            self.last_withheld_reason = reason
            message = f'withheld the checkpoint after {self.steps} online steps: {reason}'
            if self.on_withheld:
                self.on_withheld(message)
            else:
                log.warning(message)
            return None
        path = self.announced_path = self.save()
        self.announced_model.load_state_dict(self.model.state_dict())
        self.checkpoints_announced += 1
        if self.on_checkpoint:
            self.on_checkpoint(path)
        return path

    # -- background loop -------------------------------------------------------------------------------------
    def step(self) -> bool:
        """One round of the loop: surprise of a new frame, one training step, a judged checkpoint when due.
        Whether it trained."""
        if self.buffer.total != self._surprise_seen:
            self._surprise_seen = self.buffer.total
            value = self.surprise()
            if value is not None:
                self.last_surprise = value
                if self.on_surprise:
                    self.on_surprise(value)
        trained = self.ready and self.train_step() is not None
        if self._checkpoint_due():
            self.checkpoint()
        return trained

    def start(self) -> None:
        """Run `step()` in a background thread, sleeping so that busy time ≤ duty_cycle of wall time."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='online-learner', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        idle = 1.0 / (2 * self.rate_hz)
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                trained = self.step()
            except Exception:   # noqa: BLE001  (a failing step must not silently kill learning)
                log.exception('online learning step failed; retrying after a pause')
                self._stop.wait(1.0)
                continue
            busy = time.monotonic() - began   # no usable batch yet (e.g. only held-out frames): wait for frames
            self._stop.wait(max(busy * (1 - self.config.duty_cycle) / self.config.duty_cycle,
                                0.0 if trained else idle))

    def stop(self) -> None:
        """Stop the background thread (the current step finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
