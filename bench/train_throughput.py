"""Training throughput (samples/s) and time to the planner's success bar, on CPU or GPU.

    python bench/train_throughput.py --data data/reach_babble                       # samples/s, auto device
    python bench/train_throughput.py --data data/reach_babble --device cuda --steps 100
    python bench/train_throughput.py --data data/reach_babble --val data/reach_val --time-to-metric \
        --planner-episodes 10 --eval-every 150 --max-minutes 20

A sample is one training window (history + rollout_steps frames). Time-to-metric trains with config/train.yaml and,
every --eval-every seconds of training, runs the eval-model measures on --val and (with --planner-episodes N) the
closed-loop latent CEM planner in the sim toward N held-out reach goals (seeds 1000.., as `eval-planner`). It stops
when the effective rank is ≥ 50 % of the latent size, the 10-step rollout error ratio is ≤ --max-rollout-ratio, and
the planner success rate is ≥ --success-bar. Evaluation time is not counted as training time.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from jepa_agent.model.devices import DEVICE_HELP, check_device
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


def planner_success(model, episodes: int) -> float:
    """Held rate of the latent CEM planner (config/planner.yaml settings, the eval-planner loop) toward `episodes`
    held-out reach goals."""
    from jepa_agent.planning.cli import planner_settings
    from jepa_agent.planning.closed_loop import env_limits, make_agent
    from jepa_agent.planning.evaluate import evaluate as run_goals
    from jepa_agent.planning.evaluate import episode_steps, summarize
    from jepa_agent.planning.mpc import LatentMPC
    from jepa_agent.sim import make_env
    cem, agent_config = planner_settings(None)
    env = make_env(image_size=model.config.image_size, task='reach')
    agent = make_agent(LatentMPC(model.eval(), env_limits(env), cem), env, cem.horizon, agent_config)
    results = run_goals(env, agent, list(range(1000, 1000 + episodes)), 'reach', episode_steps('reach'))
    env.close()
    return summarize(results)['success_rate']


def time_to_metric(trainer: Trainer, val_dir: str, eval_every: float, max_minutes: float,
                   max_rollout_ratio: float, planner_episodes: int, success_bar: float) -> dict:
    """Train until the bar holds on held-out data (or time runs out); evaluation time is excluded."""
    from jepa_agent.training.cli import model_steps, sim_end_effector
    steps = model_steps(trainer.model)
    val = open_windows(val_dir, trainer.model.config.history + steps, 1, trainer.model.config.frameskip)
    end_effector = sim_end_effector(val.meta)
    source, trained, history = batches(trainer), 0.0, []
    while trained < 60 * max_minutes:
        start = time.perf_counter()
        while time.perf_counter() - start < eval_every:
            trainer.train_step(next(source))
        synchronize(trainer)
        trained += time.perf_counter() - start
        m = evaluate(trainer.model, val, steps, max_windows=256, end_effector=end_effector)
        point = {'train_seconds': round(trained, 1), 'steps': trainer.step,
                 'effective_rank_fraction': round(m['effective_rank_fraction'], 3),
                 'rollout_error_ratio': round(m['rollout_error_ratio'], 3),
                 'rollout_error_1': round(m['rollout_error'][0], 4),
                 'latent_vs_ee_spearman': round(m.get('latent_vs_ee_spearman', float('nan')), 3)}
        if planner_episodes:
            point['planner_success'] = planner_success(trainer.model, planner_episodes)
        trainer.model.train()
        history.append(point)
        print(json.dumps(point), flush=True)
        if (m['effective_rank_fraction'] >= 0.5 and m['rollout_error_ratio'] <= max_rollout_ratio
                and point.get('planner_success', 1.0) >= success_bar):
            return {'reached': True, **point, 'history': history}
    return {'reached': False, 'train_seconds': round(trained, 1), 'history': history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', required=True, help='training dataset directory')
    parser.add_argument('--config', default=str(config_path('train.yaml')))
    parser.add_argument('--device', type=check_device, default=None, help=DEVICE_HELP)
    parser.add_argument('--batch-size', type=int, default=None)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: the config)')
    parser.add_argument('--steps', type=int, default=30, help='timed steps for the throughput measurement')
    parser.add_argument('--time-to-metric', action='store_true', help='also train until the acceptance bar')
    parser.add_argument('--val', default=None, help='held-out dataset for --time-to-metric')
    parser.add_argument('--eval-every', type=float, default=60.0, help='seconds of training between evaluations')
    parser.add_argument('--max-minutes', type=float, default=20.0)
    parser.add_argument('--max-rollout-ratio', type=float, default=float('inf'),
                        help="bar on the 10-step / 1-step rollout error ratio (the issue's is 2; default: none)")
    parser.add_argument('--planner-episodes', type=int, default=0, help='closed-loop reach goals per evaluation')
    parser.add_argument('--success-bar', type=float, default=0.95, help='planner success rate to reach')
    parser.add_argument('--json', default=None, help='also write the results here')
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
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
                                                      args.max_rollout_ratio, args.planner_episodes,
                                                      args.success_bar)
            print(json.dumps({k: v for k, v in result['time_to_metric'].items() if k != 'history'}))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    if args.record:
        from results import record
        t = result['throughput']
        record('train_throughput', 'training throughput (shipped recipe, config/train.yaml)',
               f"{t['samples_per_s']:.0f} windows/s of {t['window_frames']} frames on {t['device']} "
               f"({t['threads']} thread(s), batch {t['batch_size']})", '—', result, order=30)


if __name__ == '__main__':
    main()
