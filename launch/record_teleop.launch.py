"""Record teleoperated demonstrations: the arm (simulated or yours) + keyboard teleop + the episode recorder.

    ros2 launch jepa_agent record_teleop.launch.py dataset_dir:=data/teleop
    ros2 launch jepa_agent record_teleop.launch.py sim:=false camera_topic:=/wrist_cam/image_raw \\
        trajectory_topic:=/my_arm_controller/joint_trajectory params_file:=my_arm.yaml

The keyboard node needs a terminal: it opens in `teleop_terminal` (xterm by default). Where that program or a
display is missing, the launch says so in one log line and records without it: run the `ros2 run jepa_agent
teleop_keyboard ...` that line shows in a second shell (teleop:=false skips the line). Episodes start and stop with
    ros2 service call /recorder/start_episode std_srvs/srv/Trigger
    ros2 service call /recorder/stop_episode std_srvs/srv/Trigger      (or /recorder/discard_episode)
or set episode_frames:=200 to record back-to-back episodes of that many frames (auto mode).
The nodes' fixed topic names (jepa_agent/ros/topics.py) are remapped to camera_topic, camera_info_topic (default:
camera_info beside camera_topic), joint_states_topic and trajectory_topic.
`params_file` (optional) is a ROS parameter file applied to every node after its config/<node>.yaml: put your arm's
joint_names, lower, upper, velocity_limit under `/**: ros__parameters:` (docs/plug_in_your_arm.md).
"""
import shlex

from launch import LaunchDescription
from launch.actions import GroupAction, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

from jepa_agent.ros import topics
from jepa_agent.ros.launch import (argument, jepa_node, missing_terminal, output_dir, set_remaps, text,
                                  topic_arguments, topic_remaps)


def teleop(context, extra: list) -> list:
    """teleop_keyboard in its own terminal window, or one log line saying why not and what to run instead."""
    if not IfCondition(LaunchConfiguration('teleop')).evaluate(context):
        return []
    terminal = LaunchConfiguration('teleop_terminal').perform(context)
    missing = missing_terminal(terminal)
    if not missing:
        return [jepa_node('teleop_keyboard', extra, prefix=terminal)]
    return [LogInfo(msg=f'teleop_keyboard not started: {missing} (teleop_terminal:={shlex.quote(terminal)}); '
                        f'jog from a second shell: {second_shell_command(context, extra)}')]


def second_shell_command(context, extra: list) -> str:
    """`ros2 run` of teleop_keyboard on this launch's topics, with its parameter file."""
    ros_args = []
    remaps = topic_remaps(context)
    for name in (topics.JOINT_STATES, topics.TRAJECTORY):
        if remaps[name] != '/' + name:
            ros_args += ['-r', f'{name}:={remaps[name]}']
    for path in extra:
        ros_args += ['--params-file', path]
    command = ['ros2', 'run', 'jepa_agent', 'teleop_keyboard']
    return shlex.join([*command, '--ros-args', *ros_args] if ros_args else command)


def nodes(context):
    extra = [f for f in [LaunchConfiguration('params_file').perform(context)] if f]
    return [GroupAction([
        *set_remaps(context),
        jepa_node('sim_arm', extra, condition=IfCondition(LaunchConfiguration('sim'))),
        *teleop(context, extra),
        jepa_node('recorder', [*extra, {'dataset_dir': text('dataset_dir'),
                                        'rate_hz': LaunchConfiguration('rate_hz'),
                                        'episode_frames': LaunchConfiguration('episode_frames')}]),
    ])]


def generate_launch_description():
    return LaunchDescription([
        argument('sim', 'true', 'Start the MuJoCo sim arm (false: a real or Gazebo arm provides the topics).'),
        argument('teleop', 'true', 'Start teleop_keyboard in its own terminal (where teleop_terminal can open one).'),
        argument('teleop_terminal', 'xterm -e',
                 'Command prefix that gives teleop_keyboard a terminal window (on PATH, with a display).'),
        argument('dataset_dir', output_dir('teleop'), 'Where episodes are written.'),
        argument('rate_hz', '10.0', 'Dataset frame rate.'),
        argument('episode_frames', '0', '0 = start/stop episodes with the recorder services; N = auto episodes.'),
        *topic_arguments("The controller's JointTrajectory topic (what teleop publishes and the recorder logs)."),
        argument('params_file', '', 'Optional ROS parameter file for all nodes (your arm: joints and limits).'),
        OpaqueFunction(function=nodes),
    ])
