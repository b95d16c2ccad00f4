"""Motor babbling: smooth random joint targets within limits, the explorer node's and `data collect-sim`'s policy.

Random interaction is rich in dynamics as long as it covers the joint space and varies its speed, so waypoints
are drawn uniformly in the limits and approached at a random fraction of the velocity limit. The walk continues
from its own previous target while the arm follows it: a moving arm's measured position lags its command by the
command and sensing latency, and a walk restarted from it every period moved the arm about 30 % slower than drawn
through the nodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jepa_agent.config import bounded, check_ranges

#: the walk continues from its previous target while the arm is within this many periods of full-speed motion of it
FOLLOW_PERIODS = 3.0


@dataclass
class BabbleConfig:
    """Explorer parameters."""

    amplitude: float = bounded(1.0, gt=0, le=1)
    """Fraction (0..1] of each joint's range that waypoints may span, around the range centre."""
    waypoint_interval: float = bounded(1.5, gt=0)
    """Mean seconds between new random waypoints."""
    speed_fraction_min: float = bounded(0.3, gt=0, le=1)
    """Slowest approach speed as a fraction of the velocity limit."""
    seed: int = 0
    """Random seed (explorer runs are reproducible)."""
    follow_target: bool = True
    """Continue the walk from the previous target while the arm follows it (false: from the measured position every
    period, which through the nodes' latencies moved the arm about 30 % slower)."""

    def __post_init__(self):
        check_ranges(self)


class MotorBabbler:
    """Yields the next joint target every control period: a rate-limited walk towards random waypoints."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, velocity_limit: np.ndarray,
                 config: BabbleConfig | None = None):
        self.config = config or BabbleConfig()
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.velocity_limit = np.asarray(velocity_limit, float)
        self.rng = np.random.default_rng(self.config.seed)
        self._waypoint: np.ndarray | None = None
        self._speed = self.velocity_limit
        self._time_left = 0.0
        self._last: np.ndarray | None = None       # the previous target

    def _new_waypoint(self) -> None:
        centre, half = (self.upper + self.lower) / 2, (self.upper - self.lower) / 2
        self._waypoint = centre + self.rng.uniform(-1, 1, centre.shape) * half * self.config.amplitude
        frac = self.rng.uniform(self.config.speed_fraction_min, 1.0, centre.shape)
        self._speed = frac * self.velocity_limit
        self._time_left = self.rng.exponential(self.config.waypoint_interval)

    def next_target(self, measured: np.ndarray, dt: float) -> np.ndarray:
        """Joint target for the period of length `dt` starting now, with the arm measured at `measured`: one step on
        from the previous target while the arm follows it (`follow_target`), else (start, reset, a refused command)
        from `measured`."""
        current = np.asarray(measured, float)
        if self.config.follow_target and self._last is not None and \
                np.all(np.abs(self._last - current) <= FOLLOW_PERIODS * self.velocity_limit * dt):
            current = self._last
        self._time_left -= dt
        if self._waypoint is None or self._time_left <= 0 or np.allclose(current, self._waypoint, atol=0.02):
            self._new_waypoint()
        step = np.clip(self._waypoint - current, -self._speed * dt, self._speed * dt)
        self._last = np.clip(current + step, self.lower, self.upper)
        return self._last.copy()
