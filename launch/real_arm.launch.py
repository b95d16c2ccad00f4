"""Your arm (no sim): planner, and optionally recorder and online trainer, on your camera/joint/controller topics.

    ros2 launch jepa_agent real_arm.launch.py params_file:=my_arm.yaml checkpoint:=runs/my_arm \\
        camera_topic:=/wrist_camera/image_raw trajectory_topic:=/joint_trajectory_controller/joint_trajectory \\
        goal_image:=goal.png
    ros2 launch jepa_agent real_arm.launch.py params_file:=my_arm.yaml plan:=false record:=true   # log data

Every jepa_agent node uses the fixed names camera/image_raw, joint_states and arm_controller/joint_trajectory
(jepa_agent/ros/topics.py); this file remaps them to the topic arguments below. `params_file` is a ROS parameter
file applied after each node's config/<node>.yaml: your joint names and limits under `/**: ros__parameters:` (see
docs/plug_in_your_arm.md). The controller must be a
ros2_control joint_trajectory_controller (or anything taking trajectory_msgs/JointTrajectory with its semantics).
Set the goal by publishing an image on /jepa_agent/goal_image, with goal_image:=<file>, or with
`ros2 service call /planner/set_goal_from_current_view std_srvs/srv/Trigger`.
"""
from launch import LaunchDescription
from launch.actions import GroupAction, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

from jepa_agent.ros.launch import argument, jepa_node, output_dir, set_remaps, text, topic_arguments


def nodes(context):
    extra = [f for f in [LaunchConfiguration('params_file').perform(context)] if f]
    sim_time = {'use_sim_time': LaunchConfiguration('use_sim_time')}

    def enabled(name):
        return IfCondition(LaunchConfiguration(name))
    return [GroupAction([
        *set_remaps(context),
        jepa_node('planner', [*extra, sim_time, {'checkpoint': text('checkpoint'),
                                                 'goal_image_path': text('goal_image')}],
                  condition=enabled('plan')),
        jepa_node('recorder', [*extra, sim_time, {'dataset_dir': text('dataset_dir'),
                                                  'episode_frames': LaunchConfiguration('episode_frames')}],
                  condition=enabled('record')),
        jepa_node('trainer', [*extra, sim_time, {'checkpoint': text('checkpoint'),
                                                 'checkpoint_dir': text('checkpoint_dir')}],
                  condition=enabled('learn')),
    ])]


def generate_launch_description():
    return LaunchDescription([
        *topic_arguments("Your joint_trajectory_controller's command topic (trajectory_msgs/JointTrajectory)."),
        argument('params_file', '', 'ROS parameter file with your joint_names, lower, upper, velocity_limit.'),
        argument('checkpoint', '', "World model trained on your arm's data; '' = the shipped sim model."),
        argument('goal_image', '', 'Goal image file for the planner (optional).'),
        argument('plan', 'true', 'Run the planner (it commands the arm once it has a goal).'),
        argument('record', 'false', 'Run the recorder (auto mode if episode_frames > 0).'),
        argument('dataset_dir', output_dir('real'), 'Where the recorder writes episodes.'),
        argument('episode_frames', '0', '0 = start/stop episodes with /recorder services; N = auto episodes.'),
        argument('learn', 'false', 'Run the online trainer (announces new checkpoints to the planner).'),
        argument('checkpoint_dir', output_dir('online'), 'Where the online trainer writes checkpoints.'),
        argument('use_sim_time', 'false', 'Use /clock (set true under Gazebo).'),
        OpaqueFunction(function=nodes),
    ])
