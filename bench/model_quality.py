"""The shipped world model on held-out episodes **recorded through the nodes** (sim_arm + explorer + recorder
processes on the hardware-like sim, `jepa_agent.demo.record_babbling`) or from `jepa-agent data collect-sim`, then
`jepa-agent eval-model` (collapse, rollout error against the no-change baseline, state head).

    .venv/bin/python bench/model_quality.py --record                     # 5 live episodes of 20 s
    .venv/bin/python bench/model_quality.py --source collect-sim --episodes 10
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from jepa_agent.demo import record_babbling


def jepa_agent(*args: str) -> None:
    subprocess.run([sys.executable, '-m', 'jepa_agent.cli', *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(Path(__file__).resolve().parents[1] / 'models' / 'reach_64px'))
    parser.add_argument('--source', choices=('nodes', 'collect-sim'), default='nodes')
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--seed', type=int, default=100000, help='held-out seed (scene and babbling)')
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='model_quality_') as tmp:
        data = Path(tmp) / 'val'
        if args.source == 'nodes':
            record_babbling(data, args.seed, Path(tmp) / 'logs', args.episodes)
        else:
            jepa_agent('data', 'collect-sim', '--out', str(data), '--episodes', str(args.episodes), '--steps', '200',
                       '--seed', str(args.seed))
        jepa_agent('eval-model', '--checkpoint', args.checkpoint, '--data', str(data), '--json', f'{tmp}/eval.json')
        metrics = json.loads(Path(f'{tmp}/eval.json').read_text())
    errors, baseline = metrics['rollout_error'], metrics['persistence_error']
    share = errors[-1] / baseline[-1]
    print(f'10-step rollout error {errors[-1]:.4f} = {share:.1%} of the no-change error {baseline[-1]:.3f}')
    if args.record:
        from results import record
        m = metrics
        record('model_quality', f'world model on held-out episodes recorded through the {args.source} '
               '(`jepa-agent eval-model`)',
               f"effective rank {m['effective_rank']:.1f}/{m['latent_dim']} ({m['effective_rank_fraction']:.0%}); "
               f"10-step rollout error {errors[-1]:.3f} = **{share:.1%} of the no-change error** ({baseline[-1]:.2f}); "
               f"1-step {errors[0]:.4f}", 'rank ≥ 50 %; 10-step ≤ 5 % of no-change',
               {**{k: v for k, v in m.items() if not isinstance(v, list) or len(v) <= 16},
                'source': args.source, 'share_of_persistence_10': share}, order=40)
    return 0


if __name__ == '__main__':
    sys.exit(main())
