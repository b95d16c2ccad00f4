"""Keep learning without drifting: the `trainer` node, started from the shipped model, learns on the live
hardware-like sim (sim_arm + explorer + trainer processes) for --minutes; every checkpoint it announces is then
scored with `jepa-agent eval-model` on held-out episodes recorded through the nodes beforehand (another seed).

    .venv/bin/python bench/online_learning.py --minutes 10 --record

Prints the live 10-step error (share of the no-change error) of the starting model and of each announced checkpoint
against the minute it was announced, and the trainer's own announced / withheld counts.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jepa_agent.demo import record_babbling, run_nodes_until
from jepa_agent.resources import model_path


def live_error(checkpoint: Path, data: Path, out: Path) -> dict:
    """eval-model's 10-step error and its share of the no-change error for `checkpoint` on `data`."""
    subprocess.run([sys.executable, '-m', 'jepa_agent.cli', 'eval-model', '--checkpoint', str(checkpoint), '--data',
                    str(data), '--json', str(out), '--no-block-probe'], check=True, capture_output=True)
    m = json.loads(out.read_text())
    return {'rollout_error_10': m['rollout_error'][-1], 'share': m['rollout_error'][-1] / m['persistence_error'][-1],
            'effective_rank_fraction': m['effective_rank_fraction']}


def learn_live(checkpoints: Path, minutes: float, seed: int, log_dir: Path) -> dict[str, float]:
    """Run sim_arm + explorer + trainer; returns {checkpoint dir: minute its files appeared}."""
    start, seen = time.monotonic(), {}

    def note_checkpoints() -> bool:
        for path in checkpoints.glob('online-*'):
            seen.setdefault(str(path), (time.monotonic() - start) / 60)
        return False                                  # run the whole time

    run_nodes_until({'sim_arm': [f'seed:={seed}'], 'explorer': [f'seed:={seed}'],
                     'trainer': [f'checkpoint_dir:={checkpoints}', 'keep_checkpoints:=1000']},
                    log_dir, note_checkpoints, timeout_s=minutes * 60, poll_s=2.0)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--held-out-episodes', type=int, default=3)
    parser.add_argument('--seed', type=int, default=300)
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='online_learning_') as tmp:
        tmp = Path(tmp)
        record_babbling(tmp / 'held_out', args.seed + 1000, tmp / 'logs_held_out', args.held_out_episodes)
        seen = learn_live(tmp / 'checkpoints', args.minutes, args.seed, tmp / 'logs')
        withheld = (tmp / 'logs' / 'trainer.log').read_text(errors='replace').count('withheld the checkpoint')
        rows = [{'minute': 0.0, 'checkpoint': 'shipped', **live_error(model_path('reach_64px'), tmp / 'held_out',
                                                                        tmp / 'eval.json')}]
        for path, minute in sorted(seen.items(), key=lambda item: item[1]):
            rows.append({'minute': round(minute, 2), 'checkpoint': Path(path).name,
                         **live_error(Path(path), tmp / 'held_out', tmp / 'eval.json')})
    for row in rows:
        print(f"{row['minute']:6.1f} min  {row['checkpoint']:<14} 10-step error {row['rollout_error_10']:.4f} = "
              f"{row['share']:.2%} of no-change, rank {row['effective_rank_fraction']:.0%}")
    worse = [r for before, r in zip(rows, rows[1:]) if r['share'] > before['share']]
    print(f'{len(rows) - 1} announced, {withheld} withheld; {len(worse)} announced '
          'checkpoint(s) worse on the held-out recording than the one before')
    if args.record:
        from results import record
        last = rows[-1]
        record('online_learning', f'trainer node from the shipped model on the live sim for {args.minutes:g} min: '
               'held-out live 10-step error of each announced checkpoint',
               f"shipped model {rows[0]['share']:.2%} of the no-change error; {len(rows) - 1} checkpoint(s) "
               f"announced, {withheld} withheld (not better on the trainer's held-out live windows); newest announced "
               f"{last['share']:.2%} at {last['minute']:.1f} min; {len(worse)} worse than the one before",
               'lower within 10 min; none worse', {'rows': rows, 'withheld': withheld}, order=45)
    return 0


if __name__ == '__main__':
    sys.exit(main())
