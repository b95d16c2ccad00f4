"""Building blocks of launch/*.launch.py: launch arguments and jepa_agent nodes with their config/<node>.yaml.

Imports `launch` and `launch_ros`, which come with a ROS 2 install (never from PyPI): only launch files import this.
"""
from __future__ import annotations

import os
import shlex
import shutil

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'jepa_agent'


def share_file(*parts: str) -> PathJoinSubstitution:
    """A file installed under share/jepa_agent (config/, models/, launch/)."""
    return PathJoinSubstitution([FindPackageShare(PACKAGE), *parts])


def argument(name: str, default: str, description: str) -> DeclareLaunchArgument:
    return DeclareLaunchArgument(name, default_value=default, description=description)


def missing_terminal(prefix: str) -> str:
    """Why the command prefix `prefix` (e.g. 'xterm -e') cannot open a terminal window here; '' when it can.

    The program must be on PATH and there must be a display for its window (DISPLAY or WAYLAND_DISPLAY)."""
    words = shlex.split(prefix)
    if not words:
        return 'the terminal prefix is empty'
    if shutil.which(words[0]) is None:
        return f'{words[0]!r} is not installed'
    if not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
        return f'no display for {words[0]!r} (DISPLAY is not set)'
    return ''


def text(name: str) -> ParameterValue:
    """A launch argument passed to a string parameter verbatim (so '', 'true' or '10' stay strings)."""
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def jepa_node(executable: str, parameters: list | None = None, **kwargs) -> Node:
    """Node `executable` (node name = executable name) configured by config/<executable>.yaml, then by
    `parameters` (dicts or more files), which override it.

    The explicit namespace makes the node name fully specified, so launch writes the dicts under the node's own
    name: they then override config/<node>.yaml whatever else is on the command line (rcl applies `/**` and
    node-name entries in order of first appearance, and a `/**` dict could otherwise lose to the YAML)."""
    params = [share_file('config', f'{executable}.yaml'), *(parameters or [])]
    return Node(package=PACKAGE, executable=executable, name=executable, namespace='', output='screen',
                emulate_tty=True, parameters=params, **kwargs)
