"""Search settings side by side on the same model: the deployed CEM (config/planner.yaml) with its rollout run by
each `cem.runtime` (eager torch, torch.compile, ONNX Runtime), a LeWM-style search (300 samples × 30 iterations × H5)
and a DINO-WM-style one (100 × 10 × H5; plain CEM, no shrinking population or reused elites, no search ahead), all
with the deployed cost terms. For each: ms of compute per camera frame (encoding and the whole search; the searches
plan in turn on the same frames) on one CPU thread (and on the GPU, when there is one), and reach goals held through
the planner node's agent loop (plan latency is charged, so a slow search also pays in control).

    .venv/bin/python bench/search_compare.py --goals 20 --record
"""
from __future__ import annotations

import argparse
import os
import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: the anchors' CEM: the whole search on each frame, no shrinking population or reused elites
PLAIN_CEM = {'population_decay': 1.0, 'elite_reuse': 0, 'anticipate': False}
#: name -> the cem.* fields that differ from the deployed search
SEARCHES = {'deployed, torch': {'runtime': 'torch'}, 'deployed, compiled': {'runtime': 'compile'},
            'deployed, ONNX Runtime': {'runtime': 'onnxruntime'},
            'LeWM-style': {'num_samples': 300, 'num_iterations': 30, 'horizon': 5, **PLAIN_CEM},
            'DINO-WM-style': {'num_samples': 100, 'num_iterations': 10, 'horizon': 5, **PLAIN_CEM}}


def size(search: dict) -> str:
    """'samples × iterations × H' of a search (the deployed one's fields where it keeps them)."""
    from jepa_agent.planning.cli import planner_settings
    cem = planner_settings(None)[0]
    fields = {'num_samples': cem.num_samples, 'num_iterations': cem.num_iterations, 'horizon': cem.horizon, **search}
    return '{num_samples} × {num_iterations} × H{horizon}'.format(**fields)


def plan_ms(checkpoint: str, device: str = 'cpu') -> dict[str, dict]:
    """Compute per frame (ms percentiles: encoding and the whole search, the part made ahead of the frame included)
    of every search on one CPU thread (or the GPU), the searches planning in turn as bench/plan_latency.py times them
    (their ratios do not depend on what else the machine does meanwhile)."""
    import dataclasses

    from plan_latency import time_searches

    from jepa_agent.planning.cli import planner_settings
    deployed = planner_settings(None)[0]
    args = Namespace(checkpoint=checkpoint, device=device, threads=1, warmup=3, repeats=30)
    timed = time_searches(args, {name: dataclasses.replace(deployed, **search) for name, search in SEARCHES.items()})
    return {name: result['per_frame_ms'] for name, result in timed.items()}


def main() -> int:
    import torch
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
    timed = plan_ms(args.checkpoint)                                                       # on an idle machine
    runs = run_split(args.checkpoint, {name: ('latent_cem', seeds, search) for name, search in SEARCHES.items()},
                     args.workers)
    rows = {name: {'plan_ms': timed[name], **summarize(runs[name])} for name in SEARCHES}
    gpu = torch.cuda.is_available()                  # the same searches timed on the GPU too, when there is one
    for name, ms in plan_ms(args.checkpoint, 'cuda').items() if gpu else ():
        rows[name]['plan_ms_cuda'] = ms
    print(f"| search | ms per frame p50 (1 thread){' | GPU' if gpu else ''} | held | touched |\n"
          f"|---|---:|{'---:|' if gpu else ''}---:|---:|")
    for name, row in rows.items():
        on_gpu = f" | {row['plan_ms_cuda']['p50']:.1f}" if gpu else ''
        print(f"| {name} {size(SEARCHES[name])} | {row['plan_ms']['p50']:.0f}{on_gpu} | {row['success_rate']:.0%} "
              f"| {row['touched_rate']:.0%} |")
    if args.record:
        from results import record
        record('search_compare', f'search settings on the same model, {args.goals} reach goals (seeds {seeds[0]}–'
               f'{seeds[-1]}): ms of compute per frame on one thread, goals held', '; '.join(
                   f"{name} {size(SEARCHES[name])}: {row['plan_ms']['p50']:.0f} ms, "
                   f"{round(row['success_rate'] * row['episodes'])}/{row['episodes']} held"
                   for name, row in rows.items()),
               'deployed ≤ 33 ms at equal success', rows, order=72)
    return 0


if __name__ == '__main__':
    sys.exit(main())
