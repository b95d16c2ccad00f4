"""An arm simulated in Gazebo (gz sim): bridge its camera (and, if needed, its joint topics) to ROS with ros_gz_bridge,
then run the same nodes as on a real arm (real_arm.launch.py) on simulated time.

    gz sim my_arm_world.sdf                                       # your world: the arm, a camera sensor, a table
    ros2 launch jepa_agent gazebo_arm.launch.py params_file:=my_arm.yaml \\
        gz_camera_topic:=/world/default/model/arm/link/camera_link/sensor/camera/image
    ros2 launch jepa_agent gazebo_arm.launch.py control:=gz record:=true plan:=false \\
        gz_joint_state_topic:=/world/default/model/arm/joint_state gz_trajectory_topic:=/model/arm/joint_trajectory

Camera: `parameter_bridge` bridges gz.msgs.Image → sensor_msgs/msg/Image (and CameraInfo) and /clock, one way
(gz → ROS), remapped to `camera_topic` and `camera_info_topic` (default: camera_info beside camera_topic). Control:
  control:=ros2_control (default) — the arm runs gz_ros2_control; its controller_manager lives inside Gazebo and
    already speaks ROS: joint_state_broadcaster publishes /joint_states and the joint_trajectory_controller
    listens on `trajectory_topic`. Spawn those controllers in your robot bringup; nothing else to bridge.
  control:=gz — the arm uses Gazebo's own JointStatePublisher and JointTrajectoryController systems: their topics
    are bridged too (gz.msgs.Model → sensor_msgs/msg/JointState, trajectory_msgs/msg/JointTrajectory →
    gz.msgs.JointTrajectory).
Needs the ros_gz_bridge package (ros-$ROS_DISTRO-ros-gz-bridge); all other arguments go to real_arm.launch.py.
"""
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import EqualsSubstitution, LaunchConfiguration
from launch_ros.actions import Node

from jepa_agent.ros import topics
from jepa_agent.ros.launch import TOPIC_ARGUMENTS, argument, output_dir, share_file, topic_arguments, topic_remaps

#: real_arm.launch.py arguments passed through unchanged
PASSED_ON = (*TOPIC_ARGUMENTS, 'params_file', 'checkpoint', 'goal_image', 'plan', 'record', 'dataset_dir',
             'episode_frames', 'learn', 'checkpoint_dir')


def bridge(name: str, topics: list, remappings: list, **kwargs) -> Node:
    """A ros_gz_bridge parameter_bridge; each topic is `<gz topic>@<ROS type><direction><gz type>`."""
    return Node(package='ros_gz_bridge', executable='parameter_bridge', name=name, output='screen',
                arguments=topics, remappings=remappings, parameters=[{'use_sim_time': True}], **kwargs)


def camera_bridge(context) -> list[Node]:
    """The camera image and camera_info (and /clock) bridged to the topics the nodes are remapped to."""
    gz, remaps = LaunchConfiguration, topic_remaps(context)
    return [bridge('camera_bridge',
                   [[gz('gz_camera_topic'), '@sensor_msgs/msg/Image[gz.msgs.Image'],
                    [gz('gz_camera_info_topic'), '@sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo'],
                    '/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock'],
                   [(gz('gz_camera_topic'), remaps[topics.IMAGE]),
                    (gz('gz_camera_info_topic'), remaps[topics.CAMERA_INFO])])]


def generate_launch_description():
    gz = LaunchConfiguration
    return LaunchDescription([
        argument('gz_camera_topic', '/camera/image', 'Gazebo camera sensor image topic (gz topic -l).'),
        argument('gz_camera_info_topic', '/camera/camera_info', 'Gazebo camera_info topic of that sensor.'),
        argument('control', 'ros2_control', "'ros2_control' (gz_ros2_control: nothing to bridge) or 'gz'."),
        argument('gz_joint_state_topic', '/world/default/model/arm/joint_state',
                 'control:=gz — JointStatePublisher topic (gz.msgs.Model).'),
        argument('gz_trajectory_topic', '/model/arm/joint_trajectory',
                 'control:=gz — JointTrajectoryController topic (gz.msgs.JointTrajectory).'),
        *topic_arguments('ROS JointTrajectory command topic.'),
        argument('params_file', '', 'ROS parameter file with your joint_names, lower, upper, velocity_limit.'),
        argument('checkpoint', '', "World model for planner/trainer; '' = the shipped sim model."),
        argument('goal_image', '', 'Goal image file for the planner (optional).'),
        argument('plan', 'true', 'Run the planner.'),
        argument('record', 'false', 'Run the recorder.'),
        argument('dataset_dir', output_dir('gazebo'), 'Where the recorder writes episodes.'),
        argument('episode_frames', '0', '0 = start/stop episodes with /recorder services; N = auto episodes.'),
        argument('learn', 'false', 'Run the online trainer.'),
        argument('checkpoint_dir', output_dir('online'), 'Where the online trainer writes checkpoints.'),
        OpaqueFunction(function=camera_bridge),
        bridge('control_bridge',
               [[gz('gz_joint_state_topic'), '@sensor_msgs/msg/JointState[gz.msgs.Model'],
                [gz('gz_trajectory_topic'), '@trajectory_msgs/msg/JointTrajectory]gz.msgs.JointTrajectory']],
               [(gz('gz_joint_state_topic'), gz('joint_states_topic')),
                (gz('gz_trajectory_topic'), gz('trajectory_topic'))],
               condition=IfCondition(EqualsSubstitution(gz('control'), 'gz'))),
        IncludeLaunchDescription(
            share_file('launch', 'real_arm.launch.py'),
            launch_arguments={**{name: gz(name) for name in PASSED_ON}, 'use_sim_time': 'true'}.items()),
    ])
