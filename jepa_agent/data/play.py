"""Play: task-unlabeled data that touches the world, `data collect-sim --source play`'s policy.

Babbling alone rarely touches the block (the arm sweeps the whole joint space), so a world model learns little about
pushing from it. Play alternates noisy scripted approach-and-push primitives toward the block (`sim/push.py`'s
waypoints and inverse-kinematics steps, with noise on both) with babbling segments, by time in a configurable ratio.
It reads the block and the end effector from the sim, so it exists in simulation only; curiosity
(`jepa_agent.data.curiosity`) is the alternative that needs no knowledge of the scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jepa_agent.config import bounded, check_ranges
from jepa_agent.data.babble import MotorBabbler
from jepa_agent.sim.arm_env import ArmEnv
from jepa_agent.sim.push import WAYPOINT_TOLERANCE, WORKSPACE, draw_push, ik_step

PUSH_CANDIDATES = 8         # pushes drawn to choose one from
REACH_TOLERANCE = 0.02      # m a waypoint may lie outside the workspace


@dataclass
class PlayConfig:
    """Play parameters."""

    babble_fraction: float = bounded(0.5, ge=0, lt=1)
    """Fraction of the time spent babbling between pushes (each babbling segment lasts, on average, the previous
    push's duration × babble_fraction / (1 − babble_fraction))."""
    waypoint_noise: float = bounded(0.01, ge=0, le=0.05)
    """Standard deviation (m) of the noise added to each push waypoint."""
    step_noise: float = bounded(0.2, ge=0, le=1)
    """Standard deviation of the noise on each push step, as a fraction of the velocity limit × period."""
    push_seconds: float = bounded(4.0, gt=0)
    """A push ends when its last waypoint is reached or after this long."""
    push_speed: float = bounded(0.3, gt=0, le=1)
    """Speed of the tip from the block's face on, as a fraction of the approach's: slow pushes make more frames of
    contact (at full speed a push is over in two or three periods)."""

    def __post_init__(self):
        check_ranges(self)


class PlayPolicy:
    """Yields the next joint target every period (`MotorBabbler`'s interface): a noisy scripted push toward the
    block, then a babbling segment, and so on."""

    def __init__(self, env: ArmEnv, babbler: MotorBabbler, config: PlayConfig | None = None, seed: int = 0):
        self.env, self.babbler = env, babbler
        self.config = config or PlayConfig()
        self.rng = np.random.default_rng([seed, 0x91A7])
        self._waypoints: list[np.ndarray] = []      # of the push under way, the next first
        self._push_time = 0.0                       # seconds into the push under way (or the last one)
        self._babble_left = 0.0                     # seconds of babbling before the next push

    def next_target(self, measured: np.ndarray, dt: float) -> np.ndarray:
        """Joint target for the period of length `dt` starting now, with the arm measured at `measured`."""
        if not self._waypoints and self._babble_left <= 0:
            self._start_push()
        if self._waypoints:
            target = self._push_target(np.asarray(measured, float), dt)
            if target is not None:
                return target
        self._babble_left -= dt
        return self.babbler.next_target(measured, dt)

    def _start_push(self) -> None:
        """Of PUSH_CANDIDATES drawn pushes, one whose waypoints lie inside the workspace (a waypoint out of reach
        stalls the arm), starting near the tip (a long approach wastes time and sweeps through the block) and ending
        near the workspace's middle (a block pushed out of reach ends play)."""
        ee = self.env.ee_pos()[:2]

        def badness(waypoints: np.ndarray) -> tuple[float, float]:
            r = np.linalg.norm(waypoints, axis=1)
            outside = np.maximum(WORKSPACE[0] - r, r - WORKSPACE[1]).max()
            return max(0.0, outside), np.linalg.norm(waypoints[0] - ee) + abs(r[-1] - np.mean(WORKSPACE))

        waypoints = min((draw_push(self.env.block_pos(), self.rng) for _ in range(PUSH_CANDIDATES)), key=badness)
        if badness(waypoints)[0] > REACH_TOLERANCE:                  # the block is out of reach: babble instead
            self._babble_left = self.config.push_seconds
            return
        self._waypoints = list(waypoints + self.rng.normal(0.0, self.config.waypoint_noise, waypoints.shape))
        self._push_time = 0.0

    def _push_target(self, measured: np.ndarray, dt: float) -> np.ndarray | None:
        """One noisy inverse-kinematics step toward the current waypoint, or None when the push is over (then the
        babbling segment's length is drawn)."""
        while self._waypoints and np.linalg.norm(self.env.ee_pos()[:2] - self._waypoints[0]) < WAYPOINT_TOLERANCE:
            self._waypoints.pop(0)
        if not self._waypoints or self._push_time >= self.config.push_seconds:
            self._waypoints = []
            f = self.config.babble_fraction
            self._babble_left = self.rng.exponential(self._push_time * f / (1 - f)) if f > 0 else 0.0
            return None
        self._push_time += dt
        limit = self.babbler.velocity_limit * dt
        noise = self.rng.normal(0.0, self.config.step_noise, limit.shape) * limit
        speed = self.config.push_speed if len(self._waypoints) == 1 else 1.0     # pushing, or approaching
        step = np.clip(ik_step(self.env, self._waypoints[0]) * speed + noise, -limit, limit)
        return np.clip(measured + step, self.babbler.lower, self.babbler.upper)
