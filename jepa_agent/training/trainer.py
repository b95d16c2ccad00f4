"""Offline training loop: one process, or several under torchrun (DDP, gradients averaged, regularizer global).

    jepa-agent train --data data/babble --out runs/reach                      # CPU or the one GPU
    torchrun --nproc_per_node 4 -m jepa_agent.cli train --data ... --out ...  # multi-GPU (gloo on CPU)

`out/` always holds the latest checkpoint (model.safetensors + config.json, see model/checkpoint.py), the
optimizer state for `--resume` (train_state.pt), and TensorBoard scalars (tensorboard/).
"""
from __future__ import annotations

import copy
import ctypes
import dataclasses
import math
import os
import random
import time
import warnings
from types import SimpleNamespace
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from jepa_agent.config import build, load_section
from jepa_agent.data.dataset import WindowDataset, collate_windows
from jepa_agent.model.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from jepa_agent.model.devices import check_device, resolve_device
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.training.evaluation import latent_statistics
from jepa_agent.training.losses import JEPAObjective, LossConfig, NonFiniteBatchError
from jepa_agent.training.refit import encode_dataset, fit_state_readout, refit_predictor
from jepa_agent.training.schedule import cosine_with_warmup

STATE_FILE = 'train_state.pt'
CONFIG_SECTION = 'train'


class TrainingBudgetWarning(UserWarning):
    """Training stopped on its time budget before there was time for the refit."""


#: end-to-end steps of a session before its time budget is planned, and the first of them left out of the timing
BUDGET_PROBE_STEPS, BUDGET_WARMUP_STEPS = 20, 5
#: the refit's timed estimate is scaled by this for the reserve (the rest of the budget is end-to-end training)
REFIT_RESERVE_FACTOR = 1.25
#: budget plans between timings of the refit (about a second each: often enough to follow a machine's load)
REFIT_TIMED_EVERY = 5


@dataclass
class TrainConfig:
    """Offline training parameters (config/train.yaml, node key `train`; nested `model:` and `loss:` sections)."""

    # schedule
    steps: int = 3000
    """Optimizer steps in total (a resumed run continues up to this count)."""
    batch_size: int = 32
    """Windows per step and per process."""
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    """Gradient-norm clip; 0 disables."""
    max_minutes: float = 0.0
    """Time budget for the whole run, refit included; 0 = no limit. When the steps do not fit, the learning-rate
    schedule is shortened to the steps that do, and time is reserved for the refit (timed on the data)."""
    # data
    stride: int = 1
    """Frames between consecutive training windows inside an episode."""
    num_workers: int = 0
    """DataLoader worker processes (0 = load in the training process; best on small CPUs)."""
    # runtime
    seed: int = 0
    device: str = 'auto'
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N'; under torchrun each rank given 'auto' or
    'cuda' takes cuda:LOCAL_RANK."""
    bf16: bool = True
    """bfloat16 autocast on CUDA (ignored on CPU)."""
    threads: int = 0
    """torch CPU threads per process; 0 = torch's default."""
    skip_nonfinite: bool = False
    """Skip batches with NaN/inf inputs or loss with a warning instead of stopping with an error."""
    # predictor refit (training/refit.py)
    predictor_refit_steps: int = 0
    """After the last end-to-end step, steps that train the predictor alone on latents of the frozen encoder
    (encoded once, so they are cheap); 0 disables. Runs in the main process."""
    predictor_refit_batch_size: int = 64
    state_readout_hidden: int = 0
    """Once the end-to-end steps are done, fit an MLP state readout of this hidden width on the frozen latents (the
    planner's joint-space cost reads the joints through it): after each predictor refit, or on `--resume` of a
    finished run that has none; 0 = none."""
    state_readout_steps: int = 6000
    """Steps of that fit (batches of 512 frames' latents: seconds on a CPU)."""
    # logging
    log_every: int = 20
    checkpoint_every: int = 500

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f'steps and batch_size must be >= 1, got {self.steps=} {self.batch_size=}')
        if self.learning_rate <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f'need learning_rate > 0, weight_decay >= 0, grad_clip >= 0, got '
                             f'{self.learning_rate=} {self.weight_decay=} {self.grad_clip=}')
        if min(self.warmup_steps, self.max_minutes, self.threads, self.num_workers, self.predictor_refit_steps,
               self.state_readout_hidden) < 0:
            raise ValueError(f'counts must be >= 0, got {self.warmup_steps=} {self.max_minutes=} {self.threads=} '
                             f'{self.num_workers=} {self.predictor_refit_steps=} {self.state_readout_hidden=}')
        if self.state_readout_steps < 1:
            raise ValueError(f'state_readout_steps must be >= 1, got {self.state_readout_steps=}')
        if self.predictor_refit_batch_size < 1:
            raise ValueError(f'predictor_refit_batch_size must be >= 1, got {self.predictor_refit_batch_size=}')
        if self.stride < 1 or self.log_every < 1 or self.checkpoint_every < 1:
            raise ValueError(f'need stride, log_every, checkpoint_every >= 1, got {self.stride=} '
                             f'{self.log_every=} {self.checkpoint_every=}')
        check_device(self.device)


def load_configs(path: str | Path | None, overrides: dict | None = None
                 ) -> tuple[TrainConfig, ModelConfig, LossConfig]:
    """The `train` section of a ROS-style YAML file: flat TrainConfig keys plus nested `model:` and `loss:`."""
    params = load_section(path, CONFIG_SECTION) if path else {}
    for key, value in (overrides or {}).items():   # nested sections are merged key by key
        both_dicts = isinstance(value, dict) and isinstance(params.get(key), dict)
        params[key] = {**params[key], **value} if both_dicts else value
    model = build(ModelConfig, params.pop('model', None), section=f'{CONFIG_SECTION}.model')
    loss = build(LossConfig, params.pop('loss', None), section=f'{CONFIG_SECTION}.loss')
    return build(TrainConfig, params, section=CONFIG_SECTION), model, loss


# -- process setup ----------------------------------------------------------------------------------------------
@dataclass
class Runtime:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


#: glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve every allocation from its heap and keep what is freed there. By default each tensor
    over 32 MB (a batch of windows, its activations) is mapped afresh and unmapped when freed, so the kernel zeroes
    new pages on every training step: on the 2-core CPU that took more time than the arithmetic (arm4, 80 px:
    40 steps in 65 s, 38 s of it in the kernel; 27 s with this, for a third more resident memory). False where the
    C library has no mallopt (not glibc)."""
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    return mallopt is not None and bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))


def setup_runtime(config: TrainConfig) -> Runtime:
    """Device choice and, under torchrun (WORLD_SIZE > 1), the process group: NCCL on GPUs, gloo on CPU. Freed
    memory stays in the process (`keep_freed_memory`)."""
    keep_freed_memory()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    want_cuda = device.type == 'cuda'
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if want_cuda and device.index is None:
        device = torch.device('cuda', local_rank)
    if want_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if want_cuda else 'gloo')
    return Runtime(rank, world, device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- model and data ---------------------------------------------------------------------------------------------
def open_windows(data_dir: str | Path, window: int, stride: int, frameskip: int = 1):
    """WindowDataset over `data_dir`, refusing one without a single usable window."""
    dataset = WindowDataset(data_dir, window=window, stride=stride, frameskip=frameskip)
    if len(dataset) == 0:
        raise ValueError(f'dataset {data_dir} has no episode with at least {dataset.span} frames (one window: the '
                         f'history plus the predicted steps, {frameskip} frame(s) apart); record longer episodes')
    return dataset


def fit_model_config(config: ModelConfig, meta: dict) -> ModelConfig:
    """Take the data-given parts of the architecture (joints, image size, action scale) from dataset metadata."""
    if meta['image_height'] != meta['image_width']:
        raise ValueError(f"images must be square, got {meta['image_height']}x{meta['image_width']}")
    scale = config.action_scale or [v * config.frameskip / meta['rate_hz'] for v in meta['velocity_limit']]
    return dataclasses.replace(config, action_dim=len(meta['joint_names']), image_size=meta['image_height'],
                               action_scale=scale)


def checkpoint_metadata(meta: dict, extra: dict) -> dict:
    """Dataset metadata that users of a checkpoint need (joints, limits, rate, camera) plus training facts."""
    keys = ('joint_names', 'lower', 'upper', 'velocity_limit', 'rate_hz', 'image_height', 'image_width',
            'encoding', 'source')
    return {**{k: meta[k] for k in keys if k in meta}, **extra}


def make_loader(dataset, config: TrainConfig, runtime: Runtime, epoch: int) -> DataLoader:
    if runtime.distributed:
        sampler = DistributedSampler(dataset, runtime.world, runtime.rank, shuffle=True, seed=config.seed)
        sampler.set_epoch(epoch)
    else:
        generator = torch.Generator().manual_seed(config.seed + epoch)
        sampler = RandomSampler(dataset, generator=generator)
    per_rank = math.ceil(len(dataset) / runtime.world)
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                      collate_fn=collate_windows, drop_last=per_rank >= config.batch_size,
                      pin_memory=runtime.device.type == 'cuda')


# -- the loop ---------------------------------------------------------------------------------------------------
class Trainer:
    """Holds model, objective, optimizer and counters; `run()` trains until steps or time run out."""

    def __init__(self, data_dir: str | Path, out_dir: str | Path, config: TrainConfig,
                 model_config: ModelConfig, loss_config: LossConfig, resume: bool = False, progress: bool = True):
        self.config, self.loss_config = config, loss_config
        self.out_dir, self.data_dir, self.progress = Path(out_dir), Path(data_dir), progress
        self.runtime = setup_runtime(config)
        seed_everything(config.seed + self.runtime.rank)
        state_file = self.out_dir / STATE_FILE
        if not resume and (self.out_dir / CONFIG_FILE).exists():
            raise ValueError(f'{self.out_dir} already holds a checkpoint; pass --resume to continue it or choose '
                             f'another --out')
        if resume and not state_file.exists():
            raise ValueError(f'cannot resume: {state_file} does not exist')
        if resume:
            self.model, _ = load_checkpoint(self.out_dir, self.runtime.device)
        else:
            if model_config.state_readout_hidden:
                raise ValueError('the state readout is fitted after training: set the train section\'s '
                                 'state_readout_hidden, not the model\'s')
            probe = open_windows(data_dir, 2, 1)
            model_config = dataclasses.replace(fit_model_config(model_config, probe.meta),
                                               state_head=model_config.state_head or loss_config.state_weight > 0)
            self.model = WorldModel(model_config).to(self.runtime.device)
        self.objective = JEPAObjective(self.model, loss_config).to(self.runtime.device)
        self.dataset = open_windows(data_dir, self.objective.window, config.stride, self.model.config.frameskip)
        self._check_compatible(self.dataset.meta)
        readout = self.model.state_readout        # fitted after training, by the refit alone
        fitted_later = {id(p) for p in readout.parameters()} if readout is not None else set()
        trainable = [p for p in self.objective.parameters() if p.requires_grad and id(p) not in fitted_later]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.step, self.epoch, self.samples, self.elapsed, self.skipped = 0, 0, 0, 0.0, 0
        self.refit_at_step: int | None = None   # end-to-end step count when the predictor was last refitted
        self.schedule_steps = config.steps      # where the learning-rate schedule ends (a time budget may move it)
        self.refit_reserve_s: float | None = None   # seconds of the budget kept for the refit, once timed
        self.refit_fits = False                 # whether the budget had room for that reserve when first timed
        self._budget_plans = 0
        if resume:
            self._load_state(state_file)
            if self.step < config.steps:        # the state readout fitted after training is fitted again at the end
                self.model.state_readout = None
                self.model.config = dataclasses.replace(self.model.config, state_readout_hidden=0)
        self.ddp = self.objective
        if self.runtime.distributed:
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.objective, broadcast_buffers=True)
        self.writer = None
        if self.runtime.main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.out_dir / 'tensorboard'))

    def _check_compatible(self, meta: dict) -> None:
        c = self.model.config
        if len(meta['joint_names']) != c.action_dim or meta['image_height'] != c.image_size:
            raise ValueError(f"dataset ({len(meta['joint_names'])} joints, {meta['image_height']} px) does not "
                             f'match the model ({c.action_dim} joints, {c.image_size} px)')

    # -- one step ------------------------------------------------------------------------------------------------
    def _over_ranks(self, values: list[float], op: dist.ReduceOp) -> list[float]:
        """`values` reduced by `op` over all ranks (as they are in a single process)."""
        if not self.runtime.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.runtime.device)
        dist.all_reduce(t, op=op)
        return t.tolist()

    def _all_agree(self, *flags: bool) -> list[bool]:
        """OR of each flag over all ranks, so every rank skips/stops together (no rank left in a collective)."""
        return [bool(v) for v in self._over_ranks([float(f) for f in flags], dist.ReduceOp.MAX)]

    def _batch_ok(self, images: torch.Tensor, actions: torch.Tensor, qpos: torch.Tensor) -> bool:
        bad_input = not (bool(torch.isfinite(actions).all()) and bool(torch.isfinite(qpos).all())) or (
            images.is_floating_point() and not bool(torch.isfinite(images).all()))
        (bad,) = self._all_agree(bad_input)
        return self._tolerate(bad, f'batch at step {self.step} holds NaN/inf values')

    def _tolerate(self, bad: bool, what: str) -> bool:
        if not bad:
            return True
        if not self.config.skip_nonfinite:
            raise NonFiniteBatchError(f'{what} (set skip_nonfinite: true to skip such batches)')
        self.skipped += 1
        warnings.warn(f'skipping: {what}', RuntimeWarning, stacklevel=2)
        return False

    def train_step(self, batch: dict) -> dict | None:
        """One optimizer step on `batch`; None when the batch was skipped as non-finite."""
        device = self.runtime.device
        images = batch['images'].to(device, non_blocking=True)
        actions = batch['actions'].to(device, non_blocking=True)
        qpos = batch['qpos'].to(device, non_blocking=True)
        if not self._batch_ok(images, actions, qpos):
            return None
        for group in self.optimizer.param_groups:
            group['lr'] = self.config.learning_rate * cosine_with_warmup(self.step, self.schedule_steps,
                                                                         self.config.warmup_steps)
        self.objective.train()
        use_bf16 = self.config.bf16 and device.type == 'cuda'
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, terms = self.ddp(images, actions, self.step, qpos)
        (bad,) = self._all_agree(not bool(torch.isfinite(loss)))
        if not self._tolerate(bad, f'loss is not finite at step {self.step}'):
            return None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.objective.after_step()
        self.step += 1
        self.samples += images.shape[0] * self.runtime.world
        return terms

    # -- logging and checkpoints -----------------------------------------------------------------------------
    def _log(self, terms: dict) -> dict:
        stats = latent_statistics(terms['latents'].flatten(0, 1))
        scalars = {f'loss/{k}': float(terms[k])
                   for k in ('total', 'teacher_forcing', 'rollout', 'regularizer', 'state')}
        scalars.update({'latent/std_mean': stats['std_mean'], 'latent/std_min': stats['std_min'],
                        'latent/effective_rank': stats['effective_rank'],
                        'lr': self.optimizer.param_groups[0]['lr'],
                        'throughput/samples_per_s': self.samples / max(self.elapsed, 1e-9)})
        scalars.update({f'rollout_error/h{h + 1}': float(e) for h, e in enumerate(terms['rollout_error'])})
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, self.step)
        return scalars

    def save(self, last_scalars: dict) -> None:
        if not self.runtime.main:
            return
        training = {'steps': self.step, 'schedule_steps': self.schedule_steps, 'samples': self.samples,
                    'train_seconds': round(self.elapsed, 1),
                    'processes': self.runtime.world, 'device': self.runtime.device.type,
                    'predictor_refit_at_step': self.refit_at_step,
                    'data': str(self.data_dir), 'skipped_batches': self.skipped,
                    'train_config': dataclasses.asdict(self.config),
                    'loss_config': dataclasses.asdict(self.loss_config),
                    'last_scalars': {k: round(v, 6) for k, v in last_scalars.items()}}
        save_checkpoint(self.model, self.out_dir, checkpoint_metadata(self.dataset.meta, {'training': training}))
        state = {'optimizer': self.optimizer.state_dict(), 'step': self.step, 'epoch': self.epoch,
                 'samples': self.samples, 'elapsed': self.elapsed, 'skipped': self.skipped,
                 'refit_at_step': self.refit_at_step,
                 'target': self.objective.target.state_dict() if self.objective.target is not None else None}
        tmp = self.out_dir / (STATE_FILE + '.tmp')
        torch.save(state, tmp)
        os.replace(tmp, self.out_dir / STATE_FILE)

    def _load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.runtime.device, weights_only=True)
        self.optimizer.load_state_dict(state['optimizer'])
        self.step, self.epoch, self.samples = state['step'], state['epoch'], state['samples']
        self.elapsed, self.skipped = state['elapsed'], state['skipped']
        self.refit_at_step = state.get('refit_at_step')
        if self.objective.target is not None and state.get('target') is not None:
            self.objective.target.load_state_dict(state['target'])

    # -- run ------------------------------------------------------------------------------------------------
    def _refit(self, scalars: dict) -> None:
        """Once the end-to-end steps are done, or the time budget stopped them with room left for it: refit the
        predictor, unless it was at this step already, then fit the state readout if asked and the model lacks one
        (or the predictor was just refitted)."""
        c = self.config
        if not self._refits():
            return
        if self.step < c.steps:                 # the time budget stopped the end-to-end steps
            if not self.refit_fits:
                skipped = ' and the state readout' if c.state_readout_hidden else ''
                warnings.warn(f'the time budget stopped training at step {self.step} of {c.steps}, with no room left '
                              f'for the predictor refit ({c.predictor_refit_steps} steps){skipped}: SKIPPED; finish '
                              'with the same command plus --resume (and a larger --max-minutes)',
                              TrainingBudgetWarning, stacklevel=3)
                return
            print(f'time budget: end-to-end training stopped at step {self.step} of {c.steps}, where its learning-rate '
                  f'schedule ended; the refit takes the {self.refit_reserve_s:.0f} s kept for it', flush=True)
        refit = bool(c.predictor_refit_steps) and self.refit_at_step != self.step
        readout = bool(c.state_readout_hidden) and (refit or self.model.state_readout is None)
        if not (refit or readout):
            return
        start = time.monotonic()
        encoded = encode_dataset(self.model, self.dataset)        # once: neither fit changes the encoder
        if refit:
            terms = refit_predictor(self.model, self.dataset, encoded, self.loss_config, c.predictor_refit_steps,
                                    c.predictor_refit_batch_size, c.learning_rate, c.weight_decay, c.grad_clip,
                                    seed=c.seed, progress=self.progress)
            self.refit_at_step = self.step
            scalars.update({f'refit/{k}': v for k, v in terms.items()})
            for name in ('teacher_forcing', 'rollout'):
                self.writer.add_scalar(f'refit/{name}', terms[name], self.step)
        if readout:
            fitted = fit_state_readout(self.model, encoded[0], encoded[3], c.state_readout_hidden,
                                       c.state_readout_steps, seed=c.seed, progress=self.progress)
            scalars.update({f'refit/state_readout_rmse_{j}': v for j, v in enumerate(fitted['rmse_rad'])})
        self.elapsed += time.monotonic() - start

    def _refits(self) -> bool:
        """Whether this process refits after the end-to-end steps (the main one, when asked to)."""
        return self.runtime.main and bool(self.config.predictor_refit_steps or self.config.state_readout_hidden)

    def _plan_budget(self, batch: dict, step_s: float, remaining_s: float) -> None:
        """Fit the rest of the run into `remaining_s`: keep the refit's timed share (REFIT_RESERVE_FACTOR × its
        estimate, timed again every REFIT_TIMED_EVERY plans: a busy machine slows it), and end the learning-rate
        schedule at the last end-to-end step that fits (the same on every rank), so the steps that run are annealed
        ones."""
        first = self.refit_reserve_s is None
        if first or self._budget_plans % REFIT_TIMED_EVERY == 0:
            self.refit_reserve_s = REFIT_RESERVE_FACTOR * self._time_refit(batch) if self._refits() else 0.0
        if first:
            self.refit_fits = remaining_s > self.refit_reserve_s     # the run then stops when only that is left
        self._budget_plans += 1
        fit = self.step + max(0, int((remaining_s - self.refit_reserve_s) / step_s))
        (steps,) = self._over_ranks([min(self.config.steps, fit)], dist.ReduceOp.MIN)   # rank 0 alone refits
        self.schedule_steps = int(steps)

    def _time_refit(self, batch: dict) -> float:
        """Seconds the refit will take: encoding every frame, the predictor refit and the state readout, each timed
        on this batch, on a copy of the model (nothing of the run changes)."""
        c, model, device = self.config, copy.deepcopy(self.model), self.runtime.device
        images, qpos = batch['images'].to(device), batch['qpos'].to(device).flatten(0, 1)
        b, t = images.shape[:2]
        start = time.monotonic()
        with torch.no_grad():
            latents = model.eval().encode(images.flatten(0, 1))
        seconds = (time.monotonic() - start) * float(self.dataset.episode_lengths.sum()) / (b * t)
        actions = torch.cat([batch['actions'], batch['actions'][:, :1]], 1).flatten(0, 1).to(latents)
        encoded = (latents, actions, torch.arange(b, device=device) * t, qpos)
        windows = SimpleNamespace(window=t, frameskip=1)
        fits = ((c.predictor_refit_steps, 10, lambda n: refit_predictor(
                    model, windows, encoded, self.loss_config, n, c.predictor_refit_batch_size, c.learning_rate)),
                (c.state_readout_steps if c.state_readout_hidden else 0, 50,
                 lambda n: fit_state_readout(model, latents, qpos, c.state_readout_hidden, n)))
        for steps, timed, fit in fits:
            if steps:
                start = time.monotonic()
                fit(timed)
                seconds += (time.monotonic() - start) * steps / timed
        return seconds

    def run(self, max_minutes: float | None = None) -> dict:
        """Train until `config.steps` or the time budget (`max_minutes`, default config.max_minutes), then refit;
        returns the last scalars. A budget holds the refit too (`_plan_budget`)."""
        from tqdm import tqdm
        limit = 60 * (self.config.max_minutes if max_minutes is None else max_minutes) or math.inf
        bar = tqdm(total=self.config.steps, initial=self.step, disable=not (self.progress and self.runtime.main),
                   desc='train', unit='step', dynamic_ncols=True)
        scalars: dict = {}
        started = time.monotonic() - self.elapsed
        session_start, first_step, timed_from = time.monotonic(), self.step, None
        stop = self.step >= self.config.steps
        while not stop:
            for batch in make_loader(self.dataset, self.config, self.runtime, self.epoch):
                terms = self.train_step(batch)
                now = time.monotonic()
                self.elapsed, done = now - started, self.step - first_step
                timed_from = now if done == BUDGET_WARMUP_STEPS else timed_from
                if math.isfinite(limit) and done >= BUDGET_PROBE_STEPS and terms is not None and (
                        done == BUDGET_PROBE_STEPS or done % self.config.log_every == 0):
                    self._plan_budget(batch, (now - timed_from) / (done - BUDGET_WARMUP_STEPS),
                                      limit - (now - session_start))
                    bar.total = self.schedule_steps
                    bar.refresh()
                budget = limit - (self.refit_reserve_s or 0.0)
                (stop,) = self._all_agree(self.step >= self.config.steps or now - session_start >= budget)
                if terms is not None:
                    bar.update(1)
                    if self.runtime.main and (self.step % self.config.log_every == 0 or stop):
                        scalars = self._log(terms)
                        bar.set_postfix(loss=f"{scalars['loss/total']:.4f}",
                                        rank=f"{scalars['latent/effective_rank']:.1f}")
                    if self.step % self.config.checkpoint_every == 0:
                        self.save(scalars)
                if stop:
                    break
            else:
                self.epoch += 1
        bar.close()
        self._refit(scalars)
        self.save(scalars)
        if self.writer is not None:
            self.writer.close()
        return scalars


def train(data_dir: str | Path, out_dir: str | Path, config_file: str | Path | None = None,
          overrides: dict | None = None, resume: bool = False, max_minutes: float | None = None,
          progress: bool = True) -> dict:
    """Train from a YAML config (optional) plus overrides; returns the last logged scalars."""
    config, model_config, loss_config = load_configs(config_file, overrides)
    trainer = Trainer(data_dir, out_dir, config, model_config, loss_config, resume=resume, progress=progress)
    try:
        scalars = trainer.run(max_minutes)
        if dist.is_initialized():
            dist.barrier()      # rank 0 refits alone: the others wait, so no rank tears gloo down under a live peer
        return scalars
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
