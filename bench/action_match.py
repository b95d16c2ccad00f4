"""One action definition: babbling recorded through the real nodes (sim_arm + explorer + recorder processes, real
time) against `jepa-agent data collect-sim` (the same pipeline in simulated time), compared by how the arm moves
between frames (`jepa_agent.data.dataset.action_statistics`, plus joint-speed percentiles).

    .venv/bin/python bench/action_match.py --episodes 5 --record
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jepa_agent.data.collect import collect_sim
from jepa_agent.data.dataset import action_statistics, frame_actions
from jepa_agent.data.episode_reader import open_episodes
from jepa_agent.demo import EPISODE_FRAMES, record_babbling
from jepa_agent.sim.arm_env import make_env


def motion(root: Path) -> dict[str, float]:
    """action_statistics plus the joint-speed percentiles between frames (rad/s, episodes of `root` complete)."""
    readers = [r for r in open_episodes(root) if r.status == 'complete']
    speeds = np.concatenate([np.abs(frame_actions(r.qpos)) / np.diff(r.times)[:, None] for r in readers])
    p50, p90 = np.percentile(speeds, [50, 90])
    return {**action_statistics(root), 'speed_p50': float(p50), 'speed_p90': float(p90),
            'frames': int(sum(len(r) for r in readers))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--episodes', type=int, default=5, help='episodes of 200 frames (20 s) per source')
    parser.add_argument('--seed', type=int, default=77)
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='action_match_') as tmp:
        live, sim = Path(tmp) / 'live', Path(tmp) / 'sim'
        start = time.monotonic()
        record_babbling(live, args.seed, Path(tmp) / 'logs', args.episodes)
        seconds = time.monotonic() - start
        env = make_env(image_size=64)
        start = time.monotonic()
        collect_sim(sim, args.episodes, EPISODE_FRAMES, seed=args.seed, env=env)
        sim_seconds = time.monotonic() - start
        env.close()
        numbers = {'nodes': motion(live), 'collect_sim': motion(sim), 'nodes_seconds': seconds,
                   'collect_sim_seconds': sim_seconds}
    ratios = {k: numbers['collect_sim'][k] / numbers['nodes'][k] for k in ('command_response', 'mean_speed',
                                                                          'speed_p50', 'speed_p90')}
    numbers['ratios'] = ratios
    print(json.dumps(numbers, indent=2))
    if args.record:
        from results import record
        n, s = numbers['nodes'], numbers['collect_sim']
        record('action_match', 'babbling through the nodes vs `collect-sim` (same pipeline, simulated time): how '
               'the arm moves between frames',
               f"mean joint speed {n['mean_speed']:.3f} vs {s['mean_speed']:.3f} rad/s (×{ratios['mean_speed']:.3f}), "
               f"p90 {n['speed_p90']:.3f} vs {s['speed_p90']:.3f} (×{ratios['speed_p90']:.3f}); joints move "
               f"{n['command_response']:.0%} vs {s['command_response']:.0%} of a commanded step by the next frame; "
               f"collect-sim {seconds / sim_seconds:.0f}× faster than real time",
               'within 5 %', numbers, order=35)
    return 0


if __name__ == '__main__':
    sys.exit(main())
