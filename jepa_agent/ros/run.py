"""The one `main()` every node shares: init, build (config errors end start-up cleanly), spin, shut down."""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from jepa_agent.config import ConfigError
from jepa_agent.ros.params import check_overrides, check_params_files


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Spin the node built by `factory` until Ctrl-C or shutdown; returns the process exit code.

    A ConfigError while building (bad parameters) is logged as one FATAL line and gives exit code 2; so are a
    missing, empty or misspelled `--params-file` (checked before rclpy reads it) and a parameter given to the node
    that it does not declare (checked once it is built; see ros/params.py). A node that stops itself on an
    unrecoverable error sets `exit_code` (default 0) and calls `context.try_shutdown()`.
    """
    argv = sys.argv if args is None else args
    try:
        check_params_files(argv, name)
    except ConfigError as exc:
        rclpy.logging.get_logger(name).fatal(f'configuration error: {exc}')
        return 2
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        check_overrides(node, argv)
        rclpy.spin(node)
    except ConfigError as exc:
        rclpy.logging.get_logger(name).fatal(f'configuration error: {exc}')
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # a message take racing with Ctrl-C's context shutdown (seen with 500 Hz streams) is a clean stop
    finally:
        # Ctrl-C under `ros2 launch` arrives twice (from the terminal and forwarded by launch): the second must
        # not interrupt the clean-up with a KeyboardInterrupt traceback and a 'process has died' exit code.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return getattr(node, 'exit_code', 0)
