"""Search settings side by side on the same model: the deployed CEM (config/planner.yaml), a LeWM-style search
(300 samples × 30 iterations × H5) and a DINO-WM-style one (100 × 10 × H5), all with the deployed cost terms. For
each: ms per plan on one CPU thread, and reach goals held through the planner node's agent loop (plan latency is
charged, so a slow search also pays in control).

    .venv/bin/python bench/search_compare.py --goals 20 --record
"""
from __future__ import annotations

import argparse
import os
import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: name -> (samples, iterations, horizon) of the anchors' searches
ANCHORS = {'LeWM-style': (300, 30, 5), 'DINO-WM-style': (100, 10, 5)}


def searches() -> dict[str, tuple[int, int, int]]:
    from jepa_agent.planning.cli import planner_settings
    cem = planner_settings(None)[0]
    return {'deployed': (cem.num_samples, cem.num_iterations, cem.horizon), **ANCHORS}


def plan_ms(checkpoint: str, size: tuple[int, int, int]) -> dict:
    """Plan latency percentiles (ms) of one search on one thread, as bench/plan_latency.py measures it."""
    from plan_latency import bench_cem
    samples, iterations, horizon = size
    args = Namespace(checkpoint=checkpoint, device='cpu', threads=1, samples=samples, iterations=iterations,
                     horizon=horizon, config=None, compile=False, warmup=3, repeats=20)
    return bench_cem(args)['plan_ms']


def main() -> int:
    from reach import run_split

    from jepa_agent.planning.evaluate import summarize
    from jepa_agent.resources import model_path
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(model_path('reach_64px')))
    parser.add_argument('--goals', type=int, default=20)
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    seeds = list(range(args.seed, args.seed + args.goals))
    sizes = searches()
    fields = {name: dict(zip(('num_samples', 'num_iterations', 'horizon'), size)) for name, size in sizes.items()}
    runs = run_split(args.checkpoint, {name: ('latent_cem', seeds, fields[name]) for name in sizes}, args.workers)
    rows = {name: {'plan_ms': plan_ms(args.checkpoint, size), **summarize(runs[name])} for name, size in sizes.items()}
    print('| search | ms per plan p50 (1 thread) | held | touched |\n|---|---:|---:|---:|')
    for name, row in rows.items():
        print(f"| {name} | {row['plan_ms']['p50']:.0f} | {row['success_rate']:.0%} | {row['touched_rate']:.0%} |")
    if args.record:
        from results import record
        record('search_compare', f'search settings on the same model, {args.goals} reach goals (seeds {seeds[0]}–'
               f'{seeds[-1]}): ms per plan on one thread, goals held', '; '.join(
                   f"{name} {'%d × %d × H%d' % sizes[name]}: "
                   f"{row['plan_ms']['p50']:.0f} ms, {round(row['success_rate'] * row['episodes'])}/"
                   f"{row['episodes']} held" for name, row in rows.items()),
               'deployed ≤ 33 ms at equal success', rows, order=72)
    return 0


if __name__ == '__main__':
    sys.exit(main())
