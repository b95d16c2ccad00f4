"""`jepa-agent`: the command-line entry point.

    jepa-agent demo                      # sim arm + planner with the shipped model, several goals
    jepa-agent data info DIR             # data: info | verify | collect-sim | import-bag | {export,import}-lerobot
    jepa-agent train --data DIR --out DIR
    jepa-agent eval-model --checkpoint PATH --data DIR
    jepa-agent eval-planner --checkpoint PATH --episodes 50 --seed 1000
    jepa-agent seal-checkpoint PATH      # record the weights' sha256 in a checkpoint saved before checksums

A configuration error (a bad or misspelled key or section in a --config file) ends with one line and exit code 2;
other failures (a corrupt checkpoint, missing data) with one line and exit code 1.

Each sub-command lives beside the code it drives; this file only wires them together, including the ROS-side
`data record` (jepa_agent.ros.cli) into the ROS-free `data` command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from jepa_agent.config import ConfigError
from jepa_agent.ros.cli import add_data_commands

#: modules exposing `add_commands(subparsers)`; each registered parser sets `func(args) -> int`
COMMAND_MODULES = ('jepa_agent.data.cli', 'jepa_agent.training.cli', 'jepa_agent.planning.cli', 'jepa_agent.demo')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='jepa-agent', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        commands = module.add_commands(sub)
        if name == 'jepa_agent.data.cli':
            add_data_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f'jepa-agent: configuration error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
