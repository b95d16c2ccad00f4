"""The command gate: the last check every joint command passes right before it is published to the arm.

    gate = CommandGate(lower, upper, velocity_limit, stale_timeout_s=0.5, config=CommandGateConfig())
    times, positions = gate.admit(positions, times, JointReading(q, age_s=0.02), camera_age_s=0.04, now=t)
    # raises CommandRefused(reason): publish nothing, the arm finishes its last trajectory

Why here and not in the planner: a command is planned from a joint state that is already old when planning starts,
and published 0.1–0.4 s later; a joint_trajectory_controller then starts it from wherever the arm *is* and moves to
the first point by its `time_from_start`, however far that is. So feasibility is decided at publish time, from the
newest joint state, with the time until the command takes effect added as a bound: during `age + latency` seconds
the arm can move at most `velocity_limit × (age + latency)` away from the measured position, so the first point is
given that much more time. A controller with `interpolate_from_desired_state` starts instead from its own setpoint,
which leads a lagging arm; given the caller's clock (`now`), the gate also times the first point from where the
commands it admitted put that setpoint when this one takes effect, plus `command_latency_s` for the latency's
variation, so the first segment is within the limit whichever way the controller starts. Later points are given
enough time that no joint exceeds `velocity_fraction` of its limit between consecutive points. Time is stretched,
positions are only moved into the position limits, so the arm follows the planned path, just not faster than
allowed. ROS-free: the planner, explorer and teleop nodes call it, each as the only node commanding its arm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jepa_agent.config import bounded, check_ranges


class CommandRefused(RuntimeError):
    """Nothing may be published now; the text says why (stale state, disabled, non-finite, bad shape)."""


@dataclass
class CommandGateConfig:
    """Command gate parameters (the `command_gate.*` parameters of every node that commands the arm)."""

    command_latency_s: float = bounded(0.05, ge=0, le=1)
    """Time (s) from publishing a command until the controller starts executing it (transport + controller
    cycle). The arm may keep moving that long; the first point is given time for it."""
    velocity_fraction: float = bounded(0.9, gt=0, le=1)
    """Fraction of each joint's velocity limit that commanded motion may use; the rest covers servo overshoot at
    direction reversals (measured on the sim arm: 6 % above a setpoint moving at the limit)."""
    max_acceleration: float = bounded(0.0, ge=0)
    """Optional acceleration limit (rad/s², every joint; 0 = none): each segment lasts at least as long as a
    rest-to-rest move over it at this acceleration (2·sqrt(distance / max_acceleration))."""

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class JointReading:
    """The newest measured joint positions (rad, gate joint order) and their age (s) at the moment of the check."""

    positions: np.ndarray
    age_s: float


def speed_ratios(times: np.ndarray, positions: np.ndarray, start: np.ndarray, velocity_limit: np.ndarray
                 ) -> np.ndarray:
    """Per-segment largest joint speed as a multiple of its limit when a controller moves from `start` through
    `positions` (N, J) at `times` (N,) s after the start: (N,) ratios, > 1 means a limit is exceeded."""
    path = np.vstack([np.asarray(start, float)[None], np.asarray(positions, float)])
    durations = np.diff(np.concatenate([[0.0], np.asarray(times, float)]))
    with np.errstate(divide='ignore', invalid='ignore'):
        speed = np.abs(np.diff(path, axis=0)) / np.maximum(durations, 1e-12)[:, None]
    return np.max(speed / np.asarray(velocity_limit, float), axis=1)


def point_at(t: float, start: np.ndarray, times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Where a trajectory that starts at `start` and moves linearly through `positions` (N, J) at `times` (N,) s
    after its start is, `t` s after its start (after the last point: that point; a first point at time 0 is
    jumped to)."""
    knots, values = np.asarray(times, float), np.atleast_2d(positions)
    if knots[0] > 0:
        knots, values = np.concatenate([[0.0], knots]), np.vstack([start, values])
    return np.array([np.interp(t, knots, values[:, j]) for j in range(values.shape[1])])


@dataclass(frozen=True)
class ExecutedTrajectory:
    """A trajectory as a controller executes it: from `start` at `effect` (s, the caller's clock), linearly through
    `positions` (N, J) at `times` (N,) s after `effect`."""

    effect: float
    start: np.ndarray
    times: np.ndarray
    positions: np.ndarray

    def position_at(self, t: float) -> np.ndarray:
        return point_at(t - self.effect, self.start, self.times, self.positions)


class CommandGate:
    """Admits or refuses joint trajectories for one arm (limits in joint order, radians and rad/s); joint states
    and camera frames older than `stale_timeout_s` refuse every command."""

    def __init__(self, lower, upper, velocity_limit, stale_timeout_s: float = 0.5,
                 config: CommandGateConfig | None = None):
        self.lower, self.upper, self.velocity = (np.asarray(v, float).reshape(-1)
                                                 for v in (lower, upper, velocity_limit))
        if not (self.lower.size == self.upper.size == self.velocity.size > 0):
            raise ValueError('lower, upper and velocity_limit need one value per joint')
        if not (np.all(np.isfinite(self.lower)) and np.all(self.lower < self.upper) and np.all(self.velocity > 0)):
            raise ValueError(f'need finite lower < upper and velocity > 0, got {self.lower=} {self.upper=} '
                             f'{self.velocity=}')
        if not stale_timeout_s > 0:
            raise ValueError(f'stale_timeout_s must be > 0, got {stale_timeout_s=}')
        self.stale_timeout_s = float(stale_timeout_s)
        self.config = config or CommandGateConfig()
        self._admitted: ExecutedTrajectory | None = None     # the newest command admitted with a clock

    @property
    def n_joints(self) -> int:
        return self.lower.size

    def admit(self, positions, times, joints: JointReading | None, *, enabled: bool = True,
              camera_age_s: float | None = None, now: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times (N,), positions (N, J)) safe to publish now, or CommandRefused.

        `times` are the planned time_from_start of each point (s); they are only ever made later. `camera_age_s`
        is the age of the newest camera frame for nodes that act on images (None: the node does not use one).
        `now` is the caller's clock (s): with it, the first point is also timed from the controller's setpoint (see
        the module docstring), and an admitted command is taken as published. A clock that went back (a new episode
        in simulated time, a restarted sim clock) forgets the commands admitted before.
        """
        if not enabled:
            raise CommandRefused('disabled')
        self._check_fresh(joints, camera_age_s)
        positions = np.atleast_2d(np.asarray(positions, dtype=float))
        times = np.asarray(times, dtype=float).reshape(-1)
        q = np.asarray(joints.positions, dtype=float).reshape(-1)
        if positions.shape != (times.size, self.n_joints) or times.size == 0 or q.shape != (self.n_joints,):
            raise CommandRefused(f'expected N times and (N, {self.n_joints}) positions from {self.n_joints} joint '
                                 f'positions, got {times.shape}, {positions.shape} and {q.shape}')
        if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(times)) and np.all(np.isfinite(q))):
            raise CommandRefused('command or joint state is not finite')
        positions = np.clip(positions, self.lower, self.upper)
        latency, fraction = self.config.command_latency_s, self.config.velocity_fraction
        first = self._shortest(q, positions[0]) + (joints.age_s + latency) / fraction  # the arm may move meanwhile
        if now is not None and self._admitted is not None and now + latency < self._admitted.effect:
            self._admitted = None
        setpoint = None if now is None else self.setpoint_at(now + latency)
        if setpoint is not None:           # it moves at most velocity_fraction × limit while the latency varies
            first = max(first, self._shortest(setpoint, positions[0]) + latency)
        times = self._retime(positions, times, first)
        if now is not None:
            self._admitted = ExecutedTrajectory(now + latency, q if setpoint is None else setpoint, times, positions)
        return times, positions

    def setpoint_at(self, t: float) -> np.ndarray | None:
        """Where the newest admitted command puts the controller's setpoint at `t` on the caller's clock, if it
        starts from where the command before it put it (`interpolate_from_desired_state`); None before any."""
        return None if self._admitted is None else self._admitted.position_at(t)

    def _check_fresh(self, joints: JointReading | None, camera_age_s: float | None) -> None:
        limit = self.stale_timeout_s
        if joints is None:
            raise CommandRefused('no joint state yet')
        if not np.isfinite(joints.age_s) or joints.age_s > limit:
            raise CommandRefused(f'joint state is {joints.age_s:.2f} s old (stale_timeout_s {limit:g})')
        if camera_age_s is not None and (not np.isfinite(camera_age_s) or camera_age_s > limit):
            raise CommandRefused(f'camera frame is {camera_age_s:.2f} s old (stale_timeout_s {limit:g})')

    def _shortest(self, start: np.ndarray, end: np.ndarray) -> float:
        """Shortest time (s) of a segment: no joint beyond velocity_fraction of its limit, nor the acceleration."""
        distance = np.abs(np.asarray(end, float) - start)
        shortest = float(np.max(distance / (self.velocity * self.config.velocity_fraction)))
        if self.config.max_acceleration > 0:
            shortest = max(shortest, 2 * float(np.sqrt(distance.max() / self.config.max_acceleration)))
        return shortest

    def _retime(self, positions: np.ndarray, times: np.ndarray, first: float) -> np.ndarray:
        """Planned times, each made later where needed: the first point `first` s or more after the start, each next
        point the shortest segment time or more after the one before."""
        out = np.empty_like(times)
        previous = 0.0
        for k, planned in enumerate(times):
            shortest = first if k == 0 else self._shortest(positions[k - 1], positions[k])
            previous = out[k] = max(planned, previous + shortest, previous + 1e-3)
        return out
