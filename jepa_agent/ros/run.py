"""The one `main()` every node shares: init, build (config errors end start-up cleanly), spin, shut down."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from jepa_agent.config import ConfigError
from jepa_agent.ros.managed import ManagedNode
from jepa_agent.ros.params import check_overrides, check_params_files


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Spin the node built by `factory` until Ctrl-C or shutdown; returns the process exit code.

    A managed node (ros/managed.py) is then configured and activated, unless its `autostart` is false.
    A ConfigError while building or configuring it (bad parameters, an unusable model) is logged as one FATAL line
    and gives exit code 2; so are a missing, empty or misspelled `--params-file` (checked before rclpy reads it) and
    a parameter given to the node that it does not declare (checked once it is built; see ros/params.py). A node that
    stops itself on an unrecoverable error sets `exit_code` (default 0) and calls `context.try_shutdown()`.

    Ctrl-C and SIGTERM only ask the spin loop to end: the node is destroyed (its worker threads stopped) while the
    ROS context is still valid, and only then is the context shut down. rclpy's own signal handler would invalidate
    the context at once, under threads that may be publishing.
    """
    argv = sys.argv if args is None else args
    try:
        check_params_files(argv, name)
    except ConfigError as exc:
        rclpy.logging.get_logger(name).fatal(f'configuration error: {exc}')
        return 2
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = None
    try:
        node = factory()
        check_overrides(node, argv)
        if isinstance(node, ManagedNode):
            node.start()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ConfigError as exc:
        rclpy.logging.get_logger(name).fatal(f'configuration error: {exc}')
        return 2
    except ExternalShutdownException:
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
