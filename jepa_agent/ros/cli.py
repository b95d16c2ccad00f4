"""`jepa-agent data record start|stop|discard [--recorder /recorder]`: the recorder node's Trigger services from
the command line (this environment has no `ros2 service call`).

The ROS side of the `data` command: `jepa_agent.cli` adds it to the sub-commands of `jepa_agent.data.cli`, which
stays ROS-free; rclpy is imported only when the command runs.
"""
from __future__ import annotations

import argparse
import sys


def add_data_commands(data_commands: argparse._SubParsersAction) -> None:
    """Register `record` among the `data` sub-commands."""
    p = data_commands.add_parser('record', help="start/stop/discard an episode of a running recorder node "
                                 "(its services)")
    p.add_argument('action', choices=('start', 'stop', 'discard'))
    p.add_argument('--recorder', default='/recorder', help='recorder node name (default /recorder)')
    p.add_argument('--timeout', type=float, default=10.0)
    p.set_defaults(func=cmd_record)


def cmd_record(args) -> int:
    from jepa_agent.ros.services import call_trigger

    ok, message = call_trigger(f'{args.recorder}/{args.action}_episode', args.timeout)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1
