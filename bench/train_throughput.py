"""Training throughput (samples/s) and time-to-metric of the world model, on CPU or GPU.

    python bench/train_throughput.py --data data/reach_babble                       # samples/s, auto device
    python bench/train_throughput.py --data data/reach_babble --device cuda --steps 100
    python bench/train_throughput.py --data data/reach_babble --val data/reach_val --time-to-metric --max-minutes 20

A sample is one training window (history + rollout_steps frames). Time-to-metric trains with config/train.yaml and
runs the eval-model measures every --eval-every seconds until the acceptance bar is met: effective rank ≥ 50 % of
the latent size, 10-step rollout error ≤ 2× the 1-step error, and latent distance tracking the end-effector distance
(Spearman ≥ --min-ee-spearman), the property the latent-distance planner relies on.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from jepa_agent.resources import config_path
from jepa_agent.training.evaluation import evaluate
from jepa_agent.training.trainer import Trainer, load_configs, make_loader, open_windows


def make_trainer(args, out: str) -> Trainer:
    overrides = {k: v for k, v in (('device', args.device), ('batch_size', args.batch_size),
                                   ('threads', args.threads)) if v is not None}
    config, model_config, loss_config = load_configs(args.config, overrides)
    return Trainer(args.data, out, config, model_config, loss_config, progress=False)


def synchronize(trainer: Trainer) -> None:
    if trainer.runtime.device.type == 'cuda':
        torch.cuda.synchronize()


def batches(trainer: Trainer):
    while True:
        yield from make_loader(trainer.dataset, trainer.config, trainer.runtime, trainer.epoch)
        trainer.epoch += 1


def throughput(trainer: Trainer, steps: int, warmup: int = 5) -> dict:
    """Steady-state optimizer steps per second, data loading included."""
    source = batches(trainer)
    for _ in range(warmup):
        trainer.train_step(next(source))
    synchronize(trainer)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(source))
    synchronize(trainer)
    seconds = time.perf_counter() - start
    window = trainer.objective.window
    samples = steps * trainer.config.batch_size
    return {'device': torch.cuda.get_device_name() if trainer.runtime.device.type == 'cuda' else 'cpu',
            'threads': torch.get_num_threads(), 'batch_size': trainer.config.batch_size, 'window_frames': window,
            'parameters': sum(p.numel() for p in trainer.model.parameters()), 'steps': steps,
            'steps_per_s': steps / seconds, 'samples_per_s': samples / seconds,
            'frames_per_s': samples * window / seconds}


def time_to_metric(trainer: Trainer, val_dir: str, eval_every: float, max_minutes: float,
                   min_ee_spearman: float) -> dict:
    """Train until the acceptance bar holds on held-out data (or time runs out); evaluation time is excluded."""
    val = open_windows(val_dir, trainer.model.config.history + 10, stride=1)
    from jepa_agent.training.cli import sim_end_effector
    end_effector = sim_end_effector(val.meta)
    source, trained, history = batches(trainer), 0.0, []
    while trained < 60 * max_minutes:
        start = time.perf_counter()
        while time.perf_counter() - start < eval_every:
            trainer.train_step(next(source))
        synchronize(trainer)
        trained += time.perf_counter() - start
        m = evaluate(trainer.model, val, 10, max_windows=256, end_effector=end_effector)
        point = {'train_seconds': round(trained, 1), 'steps': trainer.step,
                 'effective_rank_fraction': round(m['effective_rank_fraction'], 3),
                 'rollout_error_ratio': round(m['rollout_error_ratio'], 3),
                 'rollout_error_1': round(m['rollout_error'][0], 4),
                 'latent_vs_ee_spearman': round(m.get('latent_vs_ee_spearman', float('nan')), 3)}
        history.append(point)
        print(json.dumps(point), flush=True)
        if (m['effective_rank_fraction'] >= 0.5 and m['rollout_error_ratio'] <= 2.0
                and m.get('latent_vs_ee_spearman', 1.0) >= min_ee_spearman):
            return {'reached': True, **point, 'history': history}
    return {'reached': False, 'train_seconds': round(trained, 1), 'history': history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True, help='training dataset directory')
    parser.add_argument('--config', default=str(config_path('train.yaml')))
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default=None)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: the config)')
    parser.add_argument('--steps', type=int, default=30, help='timed steps for the throughput measurement')
    parser.add_argument('--time-to-metric', action='store_true', help='also train until the acceptance bar')
    parser.add_argument('--val', default=None, help='held-out dataset for --time-to-metric')
    parser.add_argument('--eval-every', type=float, default=60.0, help='seconds of training between evaluations')
    parser.add_argument('--max-minutes', type=float, default=20.0)
    parser.add_argument('--min-ee-spearman', type=float, default=0.8)
    parser.add_argument('--json', default=None, help='also write the results here')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(args, out)
        print(repr(trainer.model))
        result = {'throughput': throughput(trainer, args.steps)}
        print(json.dumps(result['throughput']), flush=True)
        if args.time_to_metric:
            if not args.val:
                parser.error('--time-to-metric needs --val')
            trainer = make_trainer(args, out + '/ttm')
            result['time_to_metric'] = time_to_metric(trainer, args.val, args.eval_every, args.max_minutes,
                                                      args.min_ee_spearman)
            print(json.dumps({k: v for k, v in result['time_to_metric'].items() if k != 'history'}))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
