"""`jepa-agent train`, `jepa-agent eval-model` and `jepa-agent seal-checkpoint`.

    jepa-agent train --data data/babble --out runs/reach [--config config/train.yaml] [--max-minutes 15] [--resume]
    torchrun --nproc_per_node 2 -m jepa_agent.cli train --data data/babble --out runs/ddp     # multi-process DDP
    jepa-agent eval-model --checkpoint runs/reach --data data/val --json runs/reach/eval.json [--probe-seeds 100]
    jepa-agent seal-checkpoint runs/old     # record the weights' sha256 in a checkpoint saved before checksums
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from jepa_agent.config import ConfigError
from jepa_agent.model.devices import DEVICE_HELP, check_device, resolve_device
from jepa_agent.resources import config_path

HORIZON = 10
#: reset states the block probe renders by default (training/probe.py; about 40 s on a 2-core CPU)
PROBE_SEEDS = 100
#: the block probe's after-contact guesses, as printed
PROBE_GUESSES = (('predicted', 'probe of the predicted latent'), ('encoded', 'of the true frame'),
                 ('unmoved', 'block left where it was'))


def add_commands(subparsers) -> None:
    train = subparsers.add_parser('train', help='train a world model on a recorded dataset',
                                  description=__doc__, formatter_class=_raw())
    train.add_argument('--data', required=True, help='dataset directory (jepa-agent data collect-sim/record)')
    train.add_argument('--out', required=True, help='output directory: checkpoint, optimizer state, tensorboard/')
    train.add_argument('--config', default=None, help='ROS-style YAML with a `train` section '
                       '(default: config/train.yaml)')
    train.add_argument('--max-minutes', type=float, default=None,
                       help='time budget for the whole run, refit included (default: the config\'s max_minutes)')
    train.add_argument('--steps', type=int, default=None, help='override the configured number of steps')
    train.add_argument('--device', type=check_device, default=None, help=f'override the device: {DEVICE_HELP}')
    train.add_argument('--resume', action='store_true', help='continue the run in --out')
    train.add_argument('--no-progress', action='store_true', help='no progress bar')
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser('eval-model', help='rollout error, collapse and latent-distance statistics',
                                     description=__doc__, formatter_class=_raw())
    evaluate.add_argument('--checkpoint', required=True, help='checkpoint directory (or a file in it)')
    evaluate.add_argument('--data', required=True, help='dataset directory to evaluate on (held-out episodes)')
    evaluate.add_argument('--json', default=None, help='write the metrics here as JSON')
    evaluate.add_argument('--plot', default=None, help='PNG plot path (default: next to --json, else none)')
    evaluate.add_argument('--windows', type=int, default=512, help='number of evaluation windows')
    evaluate.add_argument('--device', type=check_device, default='auto', help=DEVICE_HELP)
    evaluate.add_argument('--probe-seeds', type=int, default=PROBE_SEEDS, help='sim start states of the block probe '
                          '(linear probe of the block position from latents; sim-arm datasets only)')
    evaluate.add_argument('--no-block-probe', action='store_true', help='skip the block probe')
    evaluate.set_defaults(func=cmd_eval_model)

    seal = subparsers.add_parser('seal-checkpoint', help="record the weights' sha256 in a checkpoint's config.json",
                                 description='Record the sha256 of DIR/model.safetensors in DIR/config.json, so that a '
                                 'checkpoint saved before checksums existed loads again. Only for weights you trust: '
                                 'every load then refuses any other bytes.')
    seal.add_argument('checkpoint', help='checkpoint directory (or a file in it)')
    seal.set_defaults(func=cmd_seal_checkpoint)


def _raw():
    import argparse
    return argparse.RawDescriptionHelpFormatter


def _fail(command: str, exc: Exception) -> int:
    print(f'jepa-agent {command}: error: {exc}', file=sys.stderr)
    return 1


def cmd_train(args) -> int:
    from jepa_agent.training.trainer import load_configs, train
    config_file = args.config or (config_path('train.yaml') if config_path('train.yaml').exists() else None)
    overrides = {k: v for k, v in (('steps', args.steps), ('device', args.device)) if v is not None}
    try:   # the whole file (nested model: and loss: too) is checked before any data is opened
        load_configs(config_file, overrides)
    except ConfigError as exc:
        in_file = config_file and str(config_file) not in str(exc)
        raise ConfigError(f'{config_file}: {exc}' if in_file else str(exc)) from None
    try:
        scalars = train(args.data, args.out, config_file, overrides, resume=args.resume,
                        max_minutes=args.max_minutes, progress=not args.no_progress)
    except ConfigError:
        raise
    except (ValueError, OSError) as exc:
        return _fail('train', exc)
    summary = ', '.join(f'{k}={v:.4g}' for k, v in scalars.items() if k.startswith(('loss/', 'latent/', 'refit/')))
    print(f'checkpoint written to {args.out} ({summary})')
    return 0


def cmd_eval_model(args) -> int:
    from jepa_agent.data.episodes import DatasetMeta
    from jepa_agent.model.checkpoint import load_checkpoint
    from jepa_agent.training.evaluation import evaluate
    from jepa_agent.training.trainer import open_windows
    try:
        model, metadata = load_checkpoint(args.checkpoint, resolve_device(args.device))
        steps = model_steps(model)
        dataset = open_windows(args.data, model.config.history + steps, 1, model.config.frameskip)
        DatasetMeta.from_dict(dataset.meta).robot.check_matches(DatasetMeta.from_dict(metadata).robot, 'the checkpoint')
        metrics = evaluate(model, dataset, steps, args.windows, end_effector=sim_end_effector(dataset.meta))
        if not args.no_block_probe:
            metrics.update(sim_block_probe(model, dataset.meta, args.probe_seeds))
    except ConfigError:
        raise
    except (ValueError, OSError) as exc:
        return _fail('eval-model', exc)
    metrics = {'checkpoint': str(args.checkpoint), 'data': str(args.data), **metrics}
    print(format_metrics(metrics))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(metrics, indent=2) + '\n')
    plot = args.plot or (str(Path(args.json).with_suffix('.png')) if args.json else None)
    if plot:
        plot_metrics(metrics, plot)
        print(f'plot written to {plot}')
    return 0


def cmd_seal_checkpoint(args) -> int:
    from jepa_agent.model.checkpoint import CheckpointError, seal_checkpoint
    try:
        digest = seal_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        return _fail('seal-checkpoint', exc)
    print(f'{args.checkpoint}: weights sha256 {digest} recorded in config.json')
    return 0


def sim_arm(meta: dict, **overrides):
    """The sim's arm (make_env(**overrides)) when the dataset comes from it (the same joint names), else None."""
    try:
        from jepa_agent.sim.arm_env import make_env
    except ImportError:   # no MuJoCo on this machine
        return None
    env = make_env(**overrides)
    return env if list(env.joint_names) == list(meta['joint_names']) else None


def sim_end_effector(meta: dict):
    """End-effector xy from joint positions via the sim's kinematics, when the dataset comes from that arm."""
    env = sim_arm(meta)
    return None if env is None else lambda qpos: np.stack([env.forward_kinematics(q) for q in qpos])


def model_steps(model) -> int:
    """Model steps eval-model rolls out: HORIZON control periods (at least one step of a frameskip model)."""
    return max(1, HORIZON // model.config.frameskip)


def sim_block_probe(model, meta: dict, seeds: int) -> dict:
    """Block-probe metrics (training/probe.py) on the sim, when the dataset comes from its arm; {} otherwise: a probe
    on another arm's scene would not say what the model saw in its own data."""
    from jepa_agent.training.probe import block_probe
    env = sim_arm(meta, image_size=model.config.image_size, task='push')
    return block_probe(model, env, seeds, horizon=HORIZON) if env is not None and env.has_block else {}


def format_metrics(m: dict) -> str:
    errors = ' '.join(f'{e:.3f}' for e in m['rollout_error'])
    lines = [f"latent_dim {m['latent_dim']}  effective_rank {m['effective_rank']:.1f} "
             f"({100 * m['effective_rank_fraction']:.0f} %)  per-dim std mean {m['std_mean']:.3f} "
             f"min {m['std_min']:.3f}",
             f'rollout error (normalized) h=1..{len(m["rollout_error"])} steps of {m["frameskip"]} period(s): {errors}',
             f"last-step / 1-step error ratio {m['rollout_error_ratio']:.2f}",
             'no-change baseline error: ' + ' '.join(f'{e:.3f}' for e in m['persistence_error']),
             f"latent distance vs joint distance (Spearman) {m['latent_vs_joint_spearman']:.3f}"]
    if 'latent_vs_ee_spearman' in m:
        lines.append(f"latent distance vs end-effector distance (Spearman) {m['latent_vs_ee_spearman']:.3f}")
    if 'block_probe_r2' in m:
        lines += format_block_probe(m)
    return '\n'.join(lines)


def format_block_probe(m: dict) -> list[str]:
    """Lines of the block probe's metrics (training/probe.py)."""
    guesses = ', '.join(f"{label} {m[f'block_probe_r2_{name}_{HORIZON}']:.3f} / "
                        f"{100 * m[f'block_probe_error_{name}_{HORIZON}_m']:.1f} cm" for name, label in PROBE_GUESSES)
    return [f"linear probe from latents, R² on held-out sim frames: block {m['block_probe_r2']:.3f}, "
            f"end effector {m['ee_probe_r2']:.3f}",
            f"block {HORIZON} steps after contact ({m['block_probe_pushes']} pushes), R² / mean error: {guesses}"]


def plot_metrics(m: dict, path: str | Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    horizons = range(1, len(m['rollout_error']) + 1)
    left.plot(horizons, m['rollout_error'], marker='o', label='world model')
    left.plot(horizons, m['persistence_error'], marker='x', linestyle=':', label='no-change baseline')
    left.legend()
    left.set(xlabel='steps ahead', ylabel='latent MSE / latent variance', title='rollout error', ylim=(0, None))
    right.bar(range(m['latent_dim']), sorted(m['per_dim_std'], reverse=True))
    right.set(xlabel='latent dimension (sorted)', ylabel='std',
              title=f"collapse check: effective rank {m['effective_rank']:.1f} / {m['latent_dim']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
