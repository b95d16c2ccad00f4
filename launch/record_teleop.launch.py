"""Record teleoperated demonstrations: the arm (simulated or yours) + keyboard teleop + the episode recorder.

    ros2 launch jepa_agent record_teleop.launch.py dataset_dir:=data/teleop
    ros2 launch jepa_agent record_teleop.launch.py sim:=false camera_topic:=/wrist_cam/image_raw \\
        command_topic:=/my_arm_controller/joint_trajectory params_file:=my_arm.yaml

The keyboard node needs a terminal: it opens in `teleop_terminal` (xterm by default). Without one, pass
teleop:=false and run `ros2 run jepa_agent teleop_keyboard` in a second shell. Episodes start and stop with
    ros2 service call /recorder/start_episode std_srvs/srv/Trigger
    ros2 service call /recorder/stop_episode std_srvs/srv/Trigger      (or /recorder/discard_episode)
or set episode_frames:=200 to record back-to-back episodes of that many frames (auto mode).
`params_file` (optional) is a ROS parameter file applied to every node after its config/<node>.yaml: put your arm's
joint_names, lower, upper, velocity_limit under `/**: ros__parameters:` (docs/plug_in_your_arm.md).
"""
from launch import LaunchDescription
from launch.actions import GroupAction, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import SetRemap

from jepa_agent.ros.launch import argument, jepa_node, text


def nodes(context):
    extra = [LaunchConfiguration('params_file').perform(context)]
    extra = [f for f in extra if f]
    return [GroupAction([
        SetRemap('/camera/image_raw', LaunchConfiguration('camera_topic')),
        SetRemap('/joint_states', LaunchConfiguration('joint_states_topic')),
        SetRemap('/arm_controller/joint_trajectory', LaunchConfiguration('command_topic')),
        jepa_node('sim_arm', extra, condition=IfCondition(LaunchConfiguration('sim'))),
        jepa_node('teleop_keyboard', extra, condition=IfCondition(LaunchConfiguration('teleop')),
                  prefix=LaunchConfiguration('teleop_terminal')),
        jepa_node('recorder', [*extra, {'dataset_dir': text('dataset_dir'),
                                        'rate_hz': LaunchConfiguration('rate_hz'),
                                        'episode_frames': LaunchConfiguration('episode_frames')}]),
    ])]


def generate_launch_description():
    return LaunchDescription([
        argument('sim', 'true', 'Start the MuJoCo sim arm (false: a real or Gazebo arm provides the topics).'),
        argument('teleop', 'true', 'Start teleop_keyboard in its own terminal.'),
        argument('teleop_terminal', 'xterm -e', 'Command prefix that gives teleop_keyboard a terminal.'),
        argument('dataset_dir', 'data/teleop', 'Where episodes are written.'),
        argument('rate_hz', '10.0', 'Dataset frame rate.'),
        argument('episode_frames', '0', '0 = start/stop episodes with the recorder services; N = auto episodes.'),
        argument('camera_topic', '/camera/image_raw', 'Camera image topic (sensor_msgs/Image).'),
        argument('joint_states_topic', '/joint_states', 'Joint state topic (sensor_msgs/JointState).'),
        argument('command_topic', '/arm_controller/joint_trajectory',
                 "The controller's JointTrajectory topic (what teleop publishes and the recorder logs)."),
        argument('params_file', '', 'Optional ROS parameter file for all nodes (your arm: joints and limits).'),
        OpaqueFunction(function=nodes),
    ])
