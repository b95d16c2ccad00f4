"""The simulated arm reaching a goal view with the latent planner and the shipped world model.

    ros2 launch jepa_agent sim_demo.launch.py
    ros2 launch jepa_agent sim_demo.launch.py goal_seed:=1003 checkpoint:=runs/reach

The sim starts in scene `goal_seed`; the goal image is that scene with the arm at a reachable pose drawn from the same
seed (`jepa_agent.demo.write_goal_image`, the goals of `jepa-agent demo` and `eval-planner`). Change the goal at run
time by publishing an image on /jepa_agent/goal_image, or with
`ros2 service call /planner/set_goal_from_current_view std_srvs/srv/Trigger` after moving the arm.
Parameters: config/sim_arm.yaml and config/planner.yaml, overridden by the arguments below.
"""
import tempfile
from pathlib import Path

from launch import LaunchDescription
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration

from jepa_agent.demo import write_goal_image
from jepa_agent.ros.launch import argument, jepa_node, text


def sim_and_planner(context):
    seed = int(LaunchConfiguration('goal_seed').perform(context))
    size = int(LaunchConfiguration('image_size').perform(context))
    task = LaunchConfiguration('task').perform(context)
    goal = write_goal_image(seed, Path(tempfile.gettempdir()) / f'jepa_agent_goal_{task}_{seed}_{size}px.png',
                            image_size=size, task=task)
    return [
        jepa_node('sim_arm', [{'seed': seed, 'image_size': size, 'task': task}]),
        jepa_node('planner', [{'checkpoint': text('checkpoint'), 'goal_image_path': str(goal)}]),
    ]


def generate_launch_description():
    return LaunchDescription([
        argument('goal_seed', '1000', 'Scene and goal seed (eval-planner uses 1000 onwards).'),
        argument('checkpoint', '', "World-model checkpoint directory for the planner; '' = the shipped reach_64px."),
        argument('image_size', '64', 'Sim camera size in pixels (the planner resizes to its model).'),
        argument('task', 'reach', 'Goal kind: reach (arm pose) or push (block position).'),
        OpaqueFunction(function=sim_and_planner),
    ])
