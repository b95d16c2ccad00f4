"""Planner evaluation: closed-loop episodes toward held-out goals, metrics, a PNG summary and a GIF of episodes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from jepa_agent.planning.agent import Agent
from jepa_agent.planning.closed_loop import EpisodeResult, run_episode
from jepa_agent.sim import ArmEnv
from jepa_agent.sim.push import FAR_PERIODS

#: control periods of a reach episode (12 s at 10 Hz)
REACH_STEPS = 120


def evaluate(env: ArmEnv, agent: Agent, seeds: list[int], task: str, max_steps: int, record: int = 0,
             progress=None, command_latency_s: float = 0.05, camera_latency_s: float = 0.03) -> list[EpisodeResult]:
    """One `run_episode` per seed; the first `record` episodes keep their frames."""
    results = []
    for i, seed in enumerate(seeds):
        results.append(run_episode(env, agent, seed, task, max_steps, i < record, command_latency_s,
                                   camera_latency_s))
        if progress:
            progress(i, results[-1])
    return results


def episode_steps(task: str) -> int:
    """The default step budget of a `task` episode: REACH_STEPS for reach; for push goals the longest scripted push's
    periods twice over (`run_episode` gives each push episode twice its own push's periods, at most this)."""
    return REACH_STEPS if task == 'reach' else 2 * FAR_PERIODS


def goal_seeds(env: ArmEnv, first: int, count: int, task: str) -> list[int]:
    """The first `count` seeds from `first` whose start state has a goal of `task`: every seed has a reach goal; a
    push goal needs a scripted push that moves the block far enough (sim/push.py), which about 70 % of start
    states have (push_far: about 60 %)."""
    if env.check_task(task) == 'reach':           # a push on a scene without a block: no seed would ever have one
        return list(range(first, first + count))
    seeds, seed = [], first
    while len(seeds) < count:
        env.reset(seed, render=False)
        try:
            env.sample_goal(seed, task)
            seeds.append(seed)
        except ValueError:
            pass
        seed += 1
    return seeds


def _stats(values: list[float], *percentiles: int) -> dict[str, float | None]:
    if not values:
        return {f'p{p}': None for p in percentiles}
    return {f'p{p}': round(float(np.percentile(values, p)), 3) for p in percentiles}


#: a block that ended this far (m) from where it started was moved by the arm (its resting jitter is far less)
BLOCK_MOVED_M = 0.02


def summarize(results: list[EpisodeResult]) -> dict:
    """JSON-ready metrics: success rate, steps to success, final distance, plan latency percentiles, and how often
    the arm moved the block (on a reach: knocked it away) and succeeded all the same."""
    successes = [r for r in results if r.success]
    moved = [r for r in results if r.block_moved > BLOCK_MOVED_M]
    latencies = [ms for r in results for ms in r.latencies_ms]
    return {
        'episodes': len(results),
        'success_rate': len(successes) / max(len(results), 1),
        'held_rate': sum(r.held for r in results) / max(len(results), 1),
        'touched_rate': sum(r.touched for r in results) / max(len(results), 1),
        'steps_to_success': {'mean': round(float(np.mean([r.steps for r in successes])), 2) if successes else None,
                             **_stats([r.steps for r in successes], 50, 95)},
        'final_distance_m': {'mean': round(float(np.mean([r.final_distance for r in results])), 4) if results else None,
                             **_stats([r.final_distance for r in results], 50, 95)},
        'plan_latency_ms': _stats(latencies, 50, 95),
        'holds': int(sum(r.holds for r in results)),
        'at_goal_commands': int(sum(r.at_goal for r in results)),
        'max_joint_speed_ratio': round(max((r.peak_speed_ratio for r in results), default=0.0), 4),
        'commands_over_velocity_limit': int(sum(r.commands_over_limit for r in results)),
        'block_moved_rate': len(moved) / max(len(results), 1),
        'success_rate_block_moved': sum(r.success for r in moved) / len(moved) if moved else None,
    }


def write_summary_png(path: Path, summaries: dict[str, dict], runs: dict[str, list[EpisodeResult]],
                      title: str) -> None:
    """Success rate, steps-to-success histogram and final-distance histogram per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = list(summaries)
    bars = axes[0].bar(names, [summaries[n]['success_rate'] for n in names], color=[f'C{i}' for i in range(len(names))])
    axes[0].bar_label(bars, labels=[f"{summaries[n]['success_rate']:.0%} of {summaries[n]['episodes']}" for n in names])
    axes[0].set(ylim=(0, 1.15), ylabel='success rate', title='success')   # headroom for the bar labels
    for i, name in enumerate(names):
        axes[1].hist([r.steps for r in runs[name] if r.success], bins=20, alpha=0.6, label=name, color=f'C{i}')
        axes[2].hist([r.final_distance * 100 for r in runs[name]], bins=20, alpha=0.6, label=name, color=f'C{i}')
    axes[1].set(xlabel='steps to success', ylabel='episodes', title='steps to success')
    axes[2].set(xlabel='final distance to goal (cm)', title='final distance')
    axes[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gif(path: Path, episodes: list[EpisodeResult], scale: int = 3, fps: int = 10) -> None:
    """Animated strips (current | goal | planned end pose) of the recorded episodes, one after the other."""
    from PIL import Image
    frames = [Image.fromarray(np.kron(f, np.ones((scale, scale, 1), np.uint8)))
              for episode in episodes for f in episode.frames]
    if frames:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
