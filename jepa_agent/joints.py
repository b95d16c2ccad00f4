"""Which joints a command-producing node drives and their bounds: parameters shared by explorer and teleop.

Defaults describe the sim arm (checked against `ArmEnv` in the tests); another arm needs only other parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class JointLimitsConfig:
    """Joint names (matched by name in /joint_states) with position and velocity limits, in joint order."""

    joint_names: list[str] = field(default_factory=lambda: ['shoulder', 'elbow', 'wrist'])
    """Joints to command, in the order of the other lists."""
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
        if not len(self.lower) == len(self.upper) == len(self.velocity_limit) == n:
            raise ValueError(f'lower, upper and velocity_limit need one value per joint ({n}), got '
                             f'{self.lower=} {self.upper=} {self.velocity_limit=}')
        if not np.all(np.isfinite(self.lower + self.upper)) or np.any(np.array(self.lower) >= self.upper):
            raise ValueError(f'each lower limit must be finite and below its upper limit, got {self.lower=} '
                             f'{self.upper=}')
        if not np.all(np.isfinite(self.velocity_limit)) or min(self.velocity_limit) <= 0:
            raise ValueError(f'velocity limits must be finite and > 0, got {self.velocity_limit=}')
