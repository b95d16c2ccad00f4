"""The topic names of every jepa_agent node: fixed and relative, so a namespace applies and users remap them the ROS
way instead of setting parameters.

    ros2 run jepa_agent planner --ros-args -r camera/image_raw:=/wrist/image_raw -r joint_states:=/arm/joint_states
    Node(package='jepa_agent', executable='planner', remappings=[('joint_states', '/arm/joint_states')])

Nodes log the names their publishers and subscriptions resolved to (namespace and remaps applied) at start-up.
Private names (`~/debug_image`, the services) are remapped the same way (`-r ~/debug_image:=/debug`).
"""

#: camera images in (sensor_msgs/Image, rgb8/bgr8/mono8); subscribed with sensor-data QoS
IMAGE = 'camera/image_raw'
#: camera intrinsics next to the images (sensor_msgs/CameraInfo); published by sim_arm
CAMERA_INFO = 'camera/camera_info'
#: measured joint states (sensor_msgs/JointState); joints are matched by name
JOINT_STATES = 'joint_states'
#: arm commands (trajectory_msgs/JointTrajectory) with ros2_control joint_trajectory_controller semantics
TRAJECTORY = 'arm_controller/joint_trajectory'
#: the block's pose in the world frame (geometry_msgs/PoseStamped), from sim_arm with each joint state when its
#: scene has a block: ground truth that a real arm's stream does not carry (the explorer's play mode needs it)
BLOCK_POSE = 'sim/block_pose'
#: goal images for the planner (sensor_msgs/Image, transient local: a goal sent before start-up counts)
GOAL_IMAGE = 'jepa_agent/goal_image'
#: the planner's whole planned horizon, for visualization (trajectory_msgs/JointTrajectory)
PLAN = 'jepa_agent/plan'
#: the world model's prediction error on the live stream (std_msgs/Float32), from the trainer
SURPRISE = 'jepa_agent/surprise'
#: checkpoint directories announced by the trainer, loaded by the planner (std_msgs/String, transient local)
MODEL_UPDATED = 'jepa_agent/model_updated'
#: the planner's view | goal | cost image (sensor_msgs/Image), private to the node
DEBUG_IMAGE = '~/debug_image'
#: node health (diagnostic_msgs/DiagnosticArray): absolute, as the ROS diagnostics tools expect
DIAGNOSTICS = '/diagnostics'

#: the topic parameters nodes once had -> the name to remap instead (start-up refuses them, saying so)
FORMER_PARAMETERS = {
    'image_topic': IMAGE, 'camera_info_topic': CAMERA_INFO, 'joint_states_topic': JOINT_STATES,
    'trajectory_topic': TRAJECTORY, 'goal_topic': GOAL_IMAGE, 'plan_topic': PLAN, 'surprise_topic': SURPRISE,
    'model_updated_topic': MODEL_UPDATED, 'debug_image_topic': DEBUG_IMAGE,
}


def remap_hint(parameter: str) -> str:
    """How to set what former topic parameter `parameter` set: the remap of its fixed name."""
    name = FORMER_PARAMETERS[parameter]
    return f"topic names are fixed; remap with --ros-args -r {name}:=<topic> (launch: remappings=[('{name}', ...)])"
