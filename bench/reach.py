"""Goals reached by the shipped model: `jepa-agent eval-planner`'s loop (the planner node's agent in simulated time,
plan latency charged, hardware-like arm) over held-out goals, split over worker processes of one torch thread each.

    .venv/bin/python bench/reach.py --episodes 50 --seed 1000 --workers 2 --record
    .venv/bin/python bench/reach.py --task push --episodes 20 --seed 8000 --baseline-episodes 20 --record

Baselines through the same loop on the first --baseline-episodes goals: the CEM with the true simulator as its model
(the ceiling), random actions and, for push goals, the scripted push replayed open loop.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_goals(checkpoint: str, policy: str, seeds: list[int], search: dict | None = None, task: str = 'reach') -> list:
    """EpisodeResults of `policy` ('latent_cem', 'simulator_cem', 'random' or 'replay') on `task` goals `seeds`, with
    config/planner.yaml's CEM or that with the `search` fields replaced (e.g. num_samples, horizon)."""
    import dataclasses

    import torch

    from jepa_agent.model.checkpoint import load_checkpoint
    from jepa_agent.planning.cli import planner_settings
    from jepa_agent.planning.closed_loop import RandomPolicy, ReplayPolicy, SimulatorPolicy, env_limits, make_agent
    from jepa_agent.planning.evaluate import episode_steps, evaluate
    from jepa_agent.planning.mpc import LatentMPC
    from jepa_agent.sim import make_env
    torch.set_num_threads(1)
    cem, agent_config = planner_settings(None)
    cem = dataclasses.replace(cem, **(search or {}))
    model, _ = load_checkpoint(checkpoint)
    env = make_env(image_size=model.config.image_size, task=task)
    chosen = {'latent_cem': lambda: LatentMPC(model, env_limits(env), cem),
              'simulator_cem': lambda: SimulatorPolicy(env, cem), 'random': lambda: RandomPolicy(env, seed=seeds[0]),
              'replay': lambda: ReplayPolicy(env, cem.horizon)}
    results = evaluate(env, make_agent(chosen[policy](), env, cem.horizon, agent_config), seeds, task,
                       episode_steps(task))
    env.close()
    return results


def run_split(checkpoint: str, jobs: dict[str, tuple[str, list[int], dict | None]], workers: int,
              task: str = 'reach') -> dict[str, list]:
    """{label: EpisodeResults} of each job (policy, seeds, search; see `run_goals`) on `task` goals, every job's
    seeds dealt out to `workers` processes of one torch thread each."""
    chunks = [(label, policy, seeds[i::workers], search) for label, (policy, seeds, search) in jobs.items()
              for i in range(workers) if seeds[i::workers]]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')) as pool:   # no inherited EGL
        done = pool.map(run_goals, [checkpoint] * len(chunks), *list(zip(*chunks))[1:], [task] * len(chunks))
    runs: dict[str, list] = {label: [] for label in jobs}
    for (label, *_), results in zip(chunks, done):
        runs[label].extend(results)
    return runs


#: the README row of each task: what is measured, the bar, the row's place
ROWS = {'reach': ('reach goals **held** for the last second of 12 s (the planner node\'s agent loop in simulated '
                  'time, plan latency charged, hardware-like arm)', '≥ 95 % held', 50),
        'push': ('push goals: the block within 4 cm of its goal at the end of twice the scripted push\'s periods (the '
                 'same agent loop; ceiling, random and replay of the push alongside)', '≥ 80 %; ceiling ≥ 90 %', 51),
        'push_far': ('push_far goals (two scripted pushes, the block 15 cm or more from its start), scored as push',
                     'reported', 52)}


def record_run(args, seeds: list[int], summaries: dict) -> None:
    """bench/results/<task>.json: the planner's and the baselines' success on these goals."""
    from results import held_text, record

    def success(s: dict) -> str:
        if args.task != 'reach':
            return f"**{round(s['success_rate'] * s['episodes'])}/{s['episodes']}** ({s['success_rate']:.0%}; held " \
                   f"{s['held_rate']:.0%}, touched {s['touched_rate']:.0%})"
        knocked = round(s['block_moved_rate'] * s['episodes'])
        held = f", held {round(s['success_rate_block_moved'] * knocked)}" if knocked else ''
        return f"{held_text(s)}; the block knocked away in {knocked}{held}"

    s = summaries['latent_cem']
    baselines = ', '.join(f"{name.replace('_cem', '')} {round(b['success_rate'] * b['episodes'])}/{b['episodes']}"
                          for name, b in summaries.items() if name != 'latent_cem')
    metric, target, order = ROWS[args.task]
    record(args.task, metric, f"seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} goals): {success(s)}; final distance p50 "
           f"{s['final_distance_m']['p50'] * 100:.1f} cm; planning p50 {s['plan_latency_ms']['p50']:.0f} ms; "
           f"fastest joint {s['max_joint_speed_ratio']:.2f}× its limit; baselines (first {args.baseline_episodes}): "
           f"{baselines}", target, summaries, order=order)


def main() -> int:
    from jepa_agent.planning.evaluate import goal_seeds, summarize
    from jepa_agent.resources import model_path
    from jepa_agent.sim import make_env
    from jepa_agent.sim.arm_env import TASKS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(model_path('reach_64px')))
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--seed', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument('--baseline-episodes', type=int, default=5)
    parser.add_argument('--task', choices=TASKS, default='reach')
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    seeds = goal_seeds(make_env(task=args.task), args.seed, args.episodes, args.task)
    baselines = ('simulator_cem', 'random') + (() if args.task == 'reach' else ('replay',))
    jobs = {'latent_cem': ('latent_cem', seeds, None)}
    jobs.update({name: (name, seeds[:args.baseline_episodes], None) for name in baselines if args.baseline_episodes})
    runs = run_split(args.checkpoint, jobs, args.workers, args.task)
    summaries = {name: summarize(results) for name, results in runs.items()}
    print(json.dumps(summaries, indent=2))
    if args.record:
        record_run(args, seeds, summaries)
    return 0


if __name__ == '__main__':
    sys.exit(main())
