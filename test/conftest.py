"""Shared test fixtures: isolated DDS domain per run, real node processes, a spinning rclpy probe node."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Each pytest run gets its own DDS domain on localhost only, so parallel runs never see each other's topics.
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 101 + 1))   # adjacent pids never share one
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
# Loopback UDP only: a node killed with -9 (test_recorder_node) leaves Fast DDS shared-memory ports behind that
# slowed the delivery of later tests' streams to the probe (50 Hz published, 20-34 Hz received).
os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'UDPv4')
os.environ.setdefault('MUJOCO_GL', 'egl')


class NodeProcess:
    """A jepa_agent node started as a real OS process (`python -m jepa_agent.nodes.<name>`)."""

    def __init__(self, name: str, params: dict | None = None, remaps: dict | None = None,
                 log_dir: Path | None = None, args: list[str] | None = None, stdin=None,
                 params_file: Path | None = None):
        cmd = [sys.executable, '-m', f'jepa_agent.nodes.{name}', *(args or []), '--ros-args']
        if params_file is not None:
            cmd += ['--params-file', str(params_file)]
        for key, value in (params or {}).items():
            if isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, (list, tuple)):
                value = '[' + ','.join(repr(v) if isinstance(v, str) else str(v) for v in value) + ']'
            cmd += ['-p', f'{key}:={value}']
        for src, dst in (remaps or {}).items():
            cmd += ['-r', f'{src}:={dst}']
        env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
                   PYTHONUNBUFFERED='1')
        self.log_path = (log_dir or Path('/tmp')) / f'{name}-{os.getpid()}-{time.monotonic_ns()}.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (like Ctrl-C / ros2 launch), then kill if needed; returns the exit code."""
        if self.alive():
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_node(tmp_path):
    """Factory fixture: start_node('sim_arm', params={...}) -> NodeProcess; all are stopped at teardown."""
    procs: list[NodeProcess] = []

    def start(name: str, **kwargs) -> NodeProcess:
        proc = NodeProcess(name, log_dir=tmp_path, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


@contextlib.contextmanager
def spinning_node(name: str):
    """An rclpy node in its own context, spun by a single-threaded executor in a background thread (rclpy's
    multi-threaded one delivered a 10 Hz stream in bursts, up to 3 s apart, on this 2-core machine)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        thread.join(timeout=5)


@pytest.fixture
def ros_probe():
    """An rclpy node spinning in a background thread, for subscribing/publishing from the test."""
    with spinning_node(f'test_probe_{os.getpid()}') as node:
        yield node


@pytest.fixture
def torch_one_thread():
    """Tiny models on one torch thread: thread start-up costs more than it saves on a busy CPU."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wait_for(predicate, timeout: float = 20.0, period: float = 0.05) -> bool:
    """Poll `predicate` until true or timeout; returns its last truthiness."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())
