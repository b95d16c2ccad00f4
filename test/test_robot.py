"""The robot description: validated once, shared by datasets, checkpoints, planner limits and the sim."""
import dataclasses

import pytest

from jepa_agent.data.episodes import DatasetMeta
from jepa_agent.planning.constraints import JointLimits
from jepa_agent.robot import RobotDescription
from jepa_agent.sim import make_env


@pytest.mark.parametrize('change, message', [
    ({'joint_names': ['a', 'a', 'b']}, 'unique'),
    ({'lower': [-1.0, 0.0]}, 'one value per joint'),
    ({'upper': [2.8, -3.0, 2.5]}, 'below its upper'),
    ({'velocity_limit': [1.0, 0.0, 1.0]}, '> 0'),
    ({'lower': [float('nan'), -2.5, -2.5]}, 'finite'),
])
def test_invalid_descriptions_are_refused_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        RobotDescription(**change)


def test_the_sim_describes_itself_as_the_default_arm():
    env = make_env()
    try:
        assert env.robot == RobotDescription()
        limits = JointLimits.of(env.robot, env.control_dt)
        assert limits.lower.tolist() == env.robot.lower and limits.dt == env.control_dt
    finally:
        env.close()


def test_dataset_meta_carries_the_description_and_refuses_to_guess():
    robot = RobotDescription(joint_names=['j1', 'j2'], lower=[-1, 0], upper=[1, 2], velocity_limit=[1, 3])
    meta = DatasetMeta(**dataclasses.asdict(robot), rate_hz=20.0, image_height=48, image_width=64)
    assert meta.robot == robot and meta.lower == [-1.0, 0.0]
    checkpoint_metadata = {**meta.to_dict(), 'training': {'steps': 3}}
    assert DatasetMeta.from_dict(checkpoint_metadata) == meta
    with pytest.raises(ValueError, match=r"lacks \['rate_hz'\]"):
        DatasetMeta.from_dict({k: v for k, v in meta.to_dict().items() if k != 'rate_hz'})
    with pytest.raises(ValueError, match='below its upper'):
        DatasetMeta(**{**meta.to_dict(), 'upper': [1, -1]})


def test_a_model_for_other_joints_does_not_match():
    arm = RobotDescription()
    arm.check_matches(RobotDescription(), 'the checkpoint')
    reordered = RobotDescription(joint_names=['elbow', 'shoulder', 'wrist'])
    with pytest.raises(ValueError, match="the checkpoint acts on joints \\['elbow'"):
        arm.check_matches(reordered, 'the checkpoint')
    with pytest.raises(ValueError, match='the checkpoint names 3 joints but its model acts on 2'):
        arm.check_matches(RobotDescription(), 'the checkpoint', action_dim=2)
