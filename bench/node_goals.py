"""The planner node holding goals: `jepa-agent demo` (sim_arm + planner as real processes on the hardware-like sim)
over held-out goals, with the planner's own commands/s and camera frame → command latency from /diagnostics.

    .venv/bin/python bench/node_goals.py --goals 20 --record
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--goals', type=int, default=20)
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='node_goals_') as out:
        subprocess.run([sys.executable, '-m', 'jepa_agent.cli', 'demo', '--goals', str(args.goals), '--out', out],
                       check=True)
        summary = json.loads((Path(out) / 'demo.json').read_text())
    print(json.dumps(summary, indent=2))
    if args.record:
        from results import held_text, record
        planner = summary['planner']
        record('node_goals', 'goals **held** by the planner **node** (sim_arm + planner processes; 50 ms command '
               'latency, camera 30 ms late with jitter and drops)',
               f"{held_text(summary)}; {planner['plan_rate_hz']:.1f} commands/s; camera frame → command p50 "
               f"{planner['frame_to_command_ms_p50']:.0f} ms / p95 {planner['frame_to_command_ms_p95']:.0f} ms; plan "
               f"latency p50 {planner['plan_latency_ms_p50']:.0f} ms", '≥ 90 % held', summary, order=60)
    return 0


if __name__ == '__main__':
    sys.exit(main())
