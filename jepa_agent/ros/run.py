"""The one `main()` every node shares: init, build (config errors end start-up cleanly), spin, shut down."""
from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from jepa_agent.config import ConfigError


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Spin the node built by `factory` until Ctrl-C or shutdown; returns the process exit code.

    A ConfigError while building (bad parameters) is logged as one FATAL line and gives exit code 2. A node that
    stops itself on an unrecoverable error sets `exit_code` (default 0) and calls `context.try_shutdown()`.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
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
