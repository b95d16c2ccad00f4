"""The whole learning loop live: the sim arm babbles, everything is recorded, the world model keeps training on the
stream, and the planner reloads each new checkpoint.

    ros2 launch jepa_agent explore_and_learn.launch.py                      # explore: babble + record + learn
    ros2 launch jepa_agent explore_and_learn.launch.py explore_mode:=curiosity   # linger where the model is surprised
    ros2 launch jepa_agent explore_and_learn.launch.py mode:=plan goal_seed:=1002 \\
        checkpoint:=$HOME/.ros/jepa_agent/online/online-0001200          # plan with what was learnt, still learning

mode:=explore — the explorer drives the arm; the planner loads every new checkpoint but stays disabled (one node
commands the arm at a time). mode:=plan — no explorer; the planner is enabled and reaches the goal of `goal_seed`
while the trainer keeps learning from its motion. The trainer starts from `checkpoint` ('' = the shipped model),
writes checkpoints to `checkpoint_dir` every `checkpoint_every_s` and announces them on /jepa_agent/model_updated;
/jepa_agent/surprise shows how well the model predicts what it sees. The recorder (auto mode, `episode_frames` per
episode) keeps the data for offline training: `jepa-agent train --data <dataset_dir> --out runs/reach`.
"""
import tempfile
from pathlib import Path

from launch import LaunchDescription
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration

from jepa_agent.demo import write_goal_image
from jepa_agent.ros.launch import argument, jepa_node, output_dir, text


def nodes(context):
    mode = LaunchConfiguration('mode').perform(context)
    if mode not in ('explore', 'plan'):
        raise ValueError(f"mode must be 'explore' or 'plan', got {mode!r}")
    seed = int(LaunchConfiguration('goal_seed').perform(context))
    goal = ''
    if mode == 'plan':
        goal = str(write_goal_image(seed, Path(tempfile.gettempdir()) / f'jepa_agent_goal_reach_{seed}_64px.png'))
    actions = [
        jepa_node('sim_arm', [{'seed': seed}]),
        jepa_node('recorder', [{'dataset_dir': text('dataset_dir'),
                                'episode_frames': LaunchConfiguration('episode_frames')}]),
        jepa_node('trainer', [{'checkpoint': text('checkpoint'), 'checkpoint_dir': text('checkpoint_dir'),
                               'checkpoint_every_s': LaunchConfiguration('checkpoint_every_s'),
                               'duty_cycle': LaunchConfiguration('duty_cycle')}]),
        jepa_node('planner', [{'checkpoint': text('checkpoint'), 'enabled': mode == 'plan',
                               'goal_image_path': goal}]),
    ]
    if mode == 'explore':
        actions.append(jepa_node('explorer', [{'seed': LaunchConfiguration('explore_seed'),
                                               'mode': text('explore_mode')}]))
    return actions


def generate_launch_description():
    return LaunchDescription([
        argument('mode', 'explore', "'explore' (explorer drives, planner disabled) or 'plan' (planner drives)."),
        argument('checkpoint', '', "Starting world model for trainer and planner; '' = the shipped reach_64px."),
        argument('checkpoint_dir', output_dir('online'), 'Where the trainer writes online checkpoints.'),
        argument('checkpoint_every_s', '60.0', 'Seconds between online checkpoints (each reloads the planner).'),
        argument('duty_cycle', '0.5', 'Largest fraction of wall time the trainer spends training.'),
        argument('dataset_dir', output_dir('explore'), 'Where the recorder writes episodes.'),
        argument('episode_frames', '300', 'Frames per recorded episode (auto mode).'),
        argument('explore_seed', '0', 'Seed of the motor babbling.'),
        argument('explore_mode', 'babble', "'babble', 'curiosity' (linger where the trainer is surprised) or 'play' "
                 "(push the block between babbling)."),
        argument('goal_seed', '1000', 'Scene seed (and, in plan mode, the goal drawn from it).'),
        OpaqueFunction(function=nodes),
    ])
