"""Building blocks of launch/*.launch.py: launch arguments, the remaps of the fixed topic names (ros/topics.py) and
jepa_agent nodes with their config/<node>.yaml.

Imports `launch` and `launch_ros`, which come with a ROS 2 install (never from PyPI): only launch files import this.
"""
from __future__ import annotations

import os
import posixpath
import shlex
import shutil

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, SetRemap
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from jepa_agent.ros import topics

PACKAGE = 'jepa_agent'
#: the launch arguments that name the arm's topics -> the fixed name each one remaps (jepa_agent.ros.topics)
TOPIC_ARGUMENTS = {'camera_topic': topics.IMAGE, 'camera_info_topic': topics.CAMERA_INFO,
                   'joint_states_topic': topics.JOINT_STATES, 'trajectory_topic': topics.TRAJECTORY}


def share_file(*parts: str) -> PathJoinSubstitution:
    """A file installed under share/jepa_agent (config/, models/, launch/)."""
    return PathJoinSubstitution([FindPackageShare(PACKAGE), *parts])


def output_dir(name: str) -> str:
    """Where a launch file writes `name` (episodes, checkpoints) unless told: $ROS_HOME/jepa_agent/<name>, ROS_HOME
    defaulting to ~/.ros as for ROS logs, so the directory `ros2 launch` was started in does not matter."""
    home = os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return os.path.join(home, PACKAGE, name)


def argument(name: str, default: str, description: str) -> DeclareLaunchArgument:
    return DeclareLaunchArgument(name, default_value=default, description=description)


def topic_arguments(trajectory: str) -> list[DeclareLaunchArgument]:
    """The TOPIC_ARGUMENTS, defaults the standard names; `trajectory` describes what the command topic is here."""
    return [
        argument('camera_topic', '/' + topics.IMAGE, 'Camera image topic (sensor_msgs/Image, rgb8/bgr8/mono8).'),
        argument('camera_info_topic', '', "Camera info topic (sensor_msgs/CameraInfo); '' = camera_info beside "
                 'camera_topic (image_transport convention).'),
        argument('joint_states_topic', '/' + topics.JOINT_STATES, 'Joint state topic (sensor_msgs/JointState).'),
        argument('trajectory_topic', '/' + topics.TRAJECTORY, trajectory),
    ]


def topic_remaps(context) -> dict[str, str]:
    """{fixed name: topic} from the TOPIC_ARGUMENTS; camera_info beside the camera unless given."""
    remaps = {name: LaunchConfiguration(arg).perform(context) for arg, name in TOPIC_ARGUMENTS.items()}
    camera = remaps[topics.IMAGE]
    remaps[topics.CAMERA_INFO] = remaps[topics.CAMERA_INFO] or posixpath.join(posixpath.dirname(camera), 'camera_info')
    return remaps


def set_remaps(context) -> list[SetRemap]:
    """The topic_remaps as SetRemap actions: every node after them in a GroupAction uses those topics."""
    return [SetRemap(name, topic) for name, topic in topic_remaps(context).items()]


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
