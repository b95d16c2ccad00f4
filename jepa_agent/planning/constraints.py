"""Hard joint bounds for planned actions: position limits, velocity limits and a per-step trust region.

An action is the joint-target delta from the measured position over one control period (jepa_agent/data/dataset.py).
Projecting a sequence step by step from the measured `q0` keeps every implied joint target inside the position limits
and every step within `max_step` = min(trust region, velocity limit × dt), so whatever the sampler proposes, the
commands derived from a plan are safe to publish.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from jepa_agent.robot import RobotDescription


@dataclass(frozen=True)
class JointLimits:
    """Per-joint bounds of the arm being planned for (radians, rad/s, seconds)."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    dt: float
    """Control period: one action spans dt seconds."""

    def __post_init__(self):
        lower, upper, velocity = (np.asarray(v, dtype=np.float64).reshape(-1)
                                  for v in (self.lower, self.upper, self.velocity))
        if not (lower.shape == upper.shape == velocity.shape) or lower.size == 0:
            raise ValueError(f'limits must be non-empty and of equal length, got {lower=} {upper=} {velocity=}')
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
            raise ValueError(f'need finite lower < upper for every joint, got {lower=} {upper=}')
        if not (np.all(np.isfinite(velocity)) and np.all(velocity > 0)):
            raise ValueError(f'velocity limits must be finite and > 0, got {velocity=}')
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f'dt must be > 0, got {self.dt=}')
        object.__setattr__(self, 'lower', lower)
        object.__setattr__(self, 'upper', upper)
        object.__setattr__(self, 'velocity', velocity)

    @classmethod
    def of(cls, robot: RobotDescription, dt: float) -> JointLimits:
        """The bounds of a described arm, one action per `dt` seconds."""
        return cls(robot.lower, robot.upper, robot.velocity_limit, dt)

    def per_step(self, periods: int) -> JointLimits:
        """The same bounds with one step spanning `periods` control periods (a world model's frameskip)."""
        return self if periods == 1 else dataclasses.replace(self, dt=self.dt * periods)

    @property
    def n_joints(self) -> int:
        return self.lower.size

    def max_step(self, trust_region: float = np.inf) -> np.ndarray:
        """Largest per-step joint change allowed (rad): velocity limit × dt, capped by the trust region."""
        return np.minimum(self.velocity * self.dt, trust_region)

    def contains(self, positions: np.ndarray, q0: np.ndarray, trust_region: float = np.inf,
                 atol: float = 1e-6) -> bool:
        """Whether consecutive targets `positions` (H, J) from measured `q0` respect every bound."""
        path = np.vstack([np.asarray(q0, dtype=np.float64)[None], positions])
        steps = np.abs(np.diff(path, axis=0))
        return bool(np.all(positions >= self.lower - atol) and np.all(positions <= self.upper + atol)
                    and np.all(steps <= self.max_step(trust_region) + atol))


def project(actions: torch.Tensor, q0: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
            max_step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip action sequences to the bounds, tracking the implied joint targets from the measured `q0`.

    actions (N, H, J), q0 (J,) → (feasible actions (N, H, J), implied joint targets (N, H, J)).
    Requires q0 within `max_step` of the limits (see `start_is_feasible`), so the first step is bounded too.
    """
    q = q0.expand(actions.shape[0], -1)                       # (N, J)
    feasible, targets = [], []
    for a in actions.unbind(1):                               # H steps of (N, J)
        q_next = torch.clamp(q + torch.clamp(a, -max_step, max_step), lower, upper)
        feasible.append(q_next - q)
        targets.append(q_next)
        q = q_next
    return torch.stack(feasible, 1), torch.stack(targets, 1)


def start_is_feasible(q0: np.ndarray, limits: JointLimits, max_step: np.ndarray) -> bool:
    """A measured position further than one step outside the limits cannot be recovered in bounds: refuse it."""
    q0 = np.asarray(q0, dtype=np.float64)
    return bool(q0.shape == limits.lower.shape and np.all(np.isfinite(q0))
                and np.all(q0 >= limits.lower - max_step) and np.all(q0 <= limits.upper + max_step))
