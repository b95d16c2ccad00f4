"""joint_trajectory_controller semantics without ROS: what setpoint a position-controlled arm follows right now.

A trajectory is a list of waypoints with times relative to its start. Motion begins at the start time from the
arm's position at that moment and is linearly interpolated through the waypoints; after the last one the arm holds
it. A new trajectory replaces the running one (ros2_control's topic interface does the same). With
`interpolate_from_desired_state` (the controller parameter of that name) a new trajectory begins from the setpoint
the running one had reached instead, so an arm that lags its setpoint is not pulled back at every new trajectory;
the first one still begins from the arm's position.
"""
from __future__ import annotations

import numpy as np

from jepa_agent.command_gate import point_at, speed_ratios


class TrajectoryError(ValueError):
    """A trajectory cannot be followed; the text says why."""


class TrajectoryFollower:
    """Piecewise-linear setpoints for one running trajectory, bounded by the joint limits it was checked against."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, velocity_limit: np.ndarray | None = None,
                 interpolate_from_desired_state: bool = False):
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.velocity_limit = None if velocity_limit is None else np.asarray(velocity_limit, float)
        self.interpolate_from_desired_state = interpolate_from_desired_state
        self.starts = 0
        """Trajectories started so far (a trajectory starts when its motion begins, see `setpoint`)."""
        self.start_speed_ratio = float('nan')
        """Largest joint speed, as a multiple of its velocity limit, that the newest trajectory asks for from the
        position where it started (its first segment; NaN before any start or without a velocity limit)."""
        self._times: np.ndarray | None = None       # (N,) seconds after start
        self._positions: np.ndarray | None = None   # (N, J)
        self._start = 0.0
        self._anchor: np.ndarray | None = None      # where the trajectory started
        self._setpoint: np.ndarray | None = None    # the newest setpoint

    @property
    def active(self) -> bool:
        """True while a trajectory is loaded (running, pending, or holding its last point)."""
        return self._times is not None

    def replace(self, times: np.ndarray, positions: np.ndarray, start: float) -> None:
        """Load a trajectory starting at time `start` (same clock as `setpoint`), replacing any running one.

        Raises TrajectoryError, leaving the running trajectory untouched, if shapes, values, times or limits are bad.
        """
        times, positions = np.asarray(times, float), np.atleast_2d(np.asarray(positions, float))
        self.check(times, positions)
        self._times, self._positions, self._start, self._anchor = times, positions, float(start), None

    def check(self, times: np.ndarray, positions: np.ndarray) -> None:
        """Raise TrajectoryError if the trajectory cannot be followed (shapes, values, times, position limits)."""
        times, positions = np.asarray(times, float), np.atleast_2d(np.asarray(positions, float))
        if times.ndim != 1 or times.size == 0 or positions.shape != (times.size, self.lower.size):
            raise TrajectoryError(f'expected N times and (N, {self.lower.size}) positions, '
                                  f'got {times.shape} and {positions.shape}')
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(positions))):
            raise TrajectoryError('trajectory contains NaN or inf')
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            raise TrajectoryError(f'times must be non-negative and strictly increasing, got {times.tolist()}')
        outside = (positions < self.lower) | (positions > self.upper)
        if np.any(outside):
            point, joint = np.argwhere(outside)[0]
            raise TrajectoryError(f'point {point} joint {joint} = {positions[point, joint]:.4f} is outside the '
                                  f'limits [{self.lower[joint]:.4f}, {self.upper[joint]:.4f}]')

    def clear(self) -> None:
        """Drop the trajectory (e.g. on reset); `setpoint` returns None until the next one."""
        self._times = self._positions = self._anchor = self._setpoint = None

    def setpoint(self, now: float, current: np.ndarray) -> np.ndarray | None:
        """Setpoint at time `now`, or None before the start or without a trajectory (the caller holds).

        `current` is the measured position; the first call at or after the start anchors the motion there (or at
        the newest setpoint, with `interpolate_from_desired_state`).
        """
        if self._times is None or now < self._start:
            return None
        if self._anchor is None:
            desired = self.interpolate_from_desired_state and self._setpoint is not None
            self._anchor = (self._setpoint if desired else np.asarray(current, float)).copy()
            self.starts += 1
            if self.velocity_limit is not None:
                self.start_speed_ratio = float(speed_ratios(self._times[:1], self._positions[:1], self._anchor,
                                                            self.velocity_limit)[0])
        self._setpoint = point_at(now - self._start, self._anchor, self._times, self._positions)
        return self._setpoint
