"""The robot description: which joints the arm has, in which order, and their limits.

One typed description for every part of the product: nodes declare it as parameters (the `/**` section of
`config/*.yaml`, or the arm description a launch file passes to every node), datasets store it in `dataset.json` and
checkpoints in their metadata (`DatasetMeta` adds the frame rate and the camera image), and the planner's
`JointLimits` and the command gate are built from it. Defaults describe the sim arm; another arm needs only other
values.

    robot = RobotDescription(joint_names=['j1', 'j2'], lower=[-1, 0], upper=[1, 2], velocity_limit=[1, 1])
    robot.check_matches(RobotDescription.of(checkpoint_meta), 'the checkpoint')   # ValueError: other joints
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RobotDescription:
    """Joint names (matched by name in /joint_states) with position and velocity limits, in joint order."""

    joint_names: list[str] = field(default_factory=lambda: ['shoulder', 'elbow', 'wrist'])
    """Joints, in the order of the other lists (and of every qpos/action vector)."""
    lower: list[float] = field(default_factory=lambda: [-2.8, -2.5, -2.5])
    """Lower position limits (rad)."""
    upper: list[float] = field(default_factory=lambda: [2.8, 2.5, 2.5])
    """Upper position limits (rad)."""
    velocity_limit: list[float] = field(default_factory=lambda: [1.5, 1.5, 1.5])
    """Velocity limits (rad/s)."""

    def __post_init__(self):
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f'joint_names must be non-empty and unique, got {self.joint_names=}')
        for name in ('lower', 'upper', 'velocity_limit'):
            values = [float(v) for v in getattr(self, name)]
            if len(values) != n or not np.all(np.isfinite(values)):
                raise ValueError(f'{name} needs one value per joint ({n}), each finite, got {getattr(self, name)!r}')
            setattr(self, name, values)
        if np.any(np.array(self.lower) >= np.array(self.upper)):
            raise ValueError(f'each lower limit must be below its upper limit, got {self.lower=} {self.upper=}')
        if min(self.velocity_limit) <= 0:
            raise ValueError(f'velocity limits must be > 0, got {self.velocity_limit=}')

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def check_matches(self, other: RobotDescription, what: str, action_dim: int | None = None) -> None:
        """ValueError unless `other` (e.g. a checkpoint's) names the same joints in the same order and, when given,
        `action_dim` (the model's) is their number: a model trained on other joints cannot act on this arm."""
        if list(other.joint_names) != list(self.joint_names):
            raise ValueError(f'{what} acts on joints {other.joint_names}, this arm is described with '
                             f'{self.joint_names}')
        if action_dim is not None and action_dim != self.n_joints:
            raise ValueError(f'{what} names {self.n_joints} joints but its model acts on {action_dim}')

    @classmethod
    def of(cls, description) -> RobotDescription:
        """The robot description part of anything that holds its fields (a node config, DatasetMeta)."""
        return cls(**{f.name: getattr(description, f.name) for f in dataclasses.fields(cls)})
