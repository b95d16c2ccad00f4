"""Reach goals held by the shipped model: `jepa-agent eval-planner`'s loop (the planner node's agent in simulated time,
plan latency charged, hardware-like arm) over held-out goals, split over worker processes of one torch thread each.

    .venv/bin/python bench/reach.py --episodes 50 --seed 1000 --workers 2 --record

Baselines through the same loop on the first --baseline-episodes goals: the CEM with the true simulator as its model
(the ceiling) and random actions.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_goals(checkpoint: str, policy: str, seeds: list[int], search: dict | None = None) -> list:
    """EpisodeResults of `policy` ('latent_cem', 'simulator_cem' or 'random') on reach goals `seeds`, with
    config/planner.yaml's CEM or that with the `search` fields replaced (e.g. num_samples, horizon)."""
    import dataclasses

    import torch

    from jepa_agent.model.checkpoint import load_checkpoint
    from jepa_agent.planning.cli import planner_settings
    from jepa_agent.planning.closed_loop import RandomPolicy, SimulatorPolicy, env_limits, make_agent
    from jepa_agent.planning.evaluate import evaluate
    from jepa_agent.planning.mpc import LatentMPC
    from jepa_agent.sim import make_env
    torch.set_num_threads(1)
    cem, agent_config = planner_settings(None)
    cem = dataclasses.replace(cem, **(search or {}))
    model, _ = load_checkpoint(checkpoint)
    env = make_env(image_size=model.config.image_size, task='reach')
    chosen = {'latent_cem': lambda: LatentMPC(model, env_limits(env), cem),
              'simulator_cem': lambda: SimulatorPolicy(env, cem), 'random': lambda: RandomPolicy(env, seed=seeds[0])}
    results = evaluate(env, make_agent(chosen[policy](), env, cem.horizon, agent_config), seeds, 'reach', 120)
    env.close()
    return results


def run_split(checkpoint: str, jobs: dict[str, tuple[str, list[int], dict | None]], workers: int) -> dict[str, list]:
    """{label: EpisodeResults} of each job (policy, seeds, search; see `run_goals`), every job's seeds dealt out to
    `workers` processes of one torch thread each."""
    chunks = [(label, policy, seeds[i::workers], search) for label, (policy, seeds, search) in jobs.items()
              for i in range(workers) if seeds[i::workers]]
    with ProcessPoolExecutor(workers) as pool:
        done = pool.map(run_goals, [checkpoint] * len(chunks), *list(zip(*chunks))[1:])
    runs: dict[str, list] = {label: [] for label in jobs}
    for (label, *_), results in zip(chunks, done):
        runs[label].extend(results)
    return runs


def main() -> int:
    from jepa_agent.planning.evaluate import summarize
    from jepa_agent.resources import model_path
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(model_path('reach_64px')))
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument('--baseline-episodes', type=int, default=5)
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    seeds = list(range(args.seed, args.seed + args.episodes))
    jobs = {'latent_cem': ('latent_cem', seeds, None)}
    jobs.update({name: (name, seeds[:args.baseline_episodes], None) for name in ('simulator_cem', 'random')
                 if args.baseline_episodes})
    runs = run_split(args.checkpoint, jobs, args.workers)
    summaries = {name: summarize(results) for name, results in runs.items()}
    print(json.dumps(summaries, indent=2))
    if args.record:
        from results import held_text, record
        s = summaries['latent_cem']
        baselines = ', '.join(f"{name.replace('_cem', '')} {round(b['success_rate'] * b['episodes'])}/{b['episodes']}"
                              for name, b in summaries.items() if name != 'latent_cem')
        record('reach', 'reach goals **held** for the last second of 12 s (the planner node\'s agent loop in '
               'simulated time, plan latency charged, hardware-like arm)',
               f"seeds {args.seed}–{args.seed + args.episodes - 1}: {held_text(s)}; final distance p50 "
               f"{s['final_distance_m']['p50'] * 100:.1f} cm; planning p50 {s['plan_latency_ms']['p50']:.0f} ms; "
               f"fastest joint {s['max_joint_speed_ratio']:.2f}× its limit; baselines (first {args.baseline_episodes}"
               f"): {baselines}", '≥ 95 % held', summaries, order=50)
    return 0


if __name__ == '__main__':
    sys.exit(main())
