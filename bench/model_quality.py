"""The shipped world model on held-out episodes: `jepa-agent data collect-sim` of episodes no training run uses, then
`jepa-agent eval-model` (collapse, rollout error against the no-change baseline, state head).

    .venv/bin/python bench/model_quality.py --record
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def jepa_agent(*args: str) -> None:
    subprocess.run([sys.executable, '-m', 'jepa_agent.cli', *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(Path(__file__).resolve().parents[1] / 'models' / 'reach_64px'))
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--seed', type=int, default=100000, help='first held-out episode seed')
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='model_quality_') as tmp:
        jepa_agent('data', 'collect-sim', '--out', f'{tmp}/val', '--episodes', str(args.episodes), '--steps', '200',
                   '--seed', str(args.seed))
        jepa_agent('eval-model', '--checkpoint', args.checkpoint, '--data', f'{tmp}/val', '--json', f'{tmp}/eval.json')
        metrics = json.loads(Path(f'{tmp}/eval.json').read_text())
    if args.record:
        from results import record
        m = metrics
        errors, baseline = m['rollout_error'], m['persistence_error']
        record('model_quality', 'world model on held-out episodes (`jepa-agent eval-model`)',
               f"effective rank {m['effective_rank']:.1f}/{m['latent_dim']} ({m['effective_rank_fraction']:.0%}); "
               f"rollout error {errors[0]:.4f} @1, {errors[-1]:.3f} @10 (no-change baseline {baseline[-1]:.2f} @10), "
               f"10-step / 1-step ratio {m['rollout_error_ratio']:.1f}", 'rank ≥ 50 %; 10-step ≤ 2× 1-step',
               {k: v for k, v in m.items() if not isinstance(v, list) or len(v) <= 16}, order=40)
    return 0


if __name__ == '__main__':
    sys.exit(main())
