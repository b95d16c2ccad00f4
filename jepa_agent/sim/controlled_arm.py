"""The sim arm behind a joint_trajectory_controller, on any clock: the `sim_arm` node ticks it in real time,
evaluations in simulated time, so both see the same controller.

    arm = ControlledArm(env, command_latency_s=0.05)
    arm.send(times, positions, now=t)        # a JointTrajectory: starts after the latency, from where the arm is then
    arm.tick(t, 0.01)                        # one control period of physics at time t

Controller semantics (ros2_control's joint_trajectory_controller): a new trajectory replaces the running one and
starts from the arm's position at that moment (or from the controller's setpoint, with the env config's
`interpolate_from_desired_state`), interpolated linearly to each point's time_from_start, with no speed clamping
(`controller: rate_limited` in the env's config clamps setpoint speed instead). `monitor` records what the arm really
did against its velocity limits.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from jepa_agent.sim.arm_env import ArmEnv
from jepa_agent.sim.trajectory import TrajectoryFollower

#: a trajectory's first segment counts as breaking the velocity limit above this ratio (float rounding aside)
SPEED_TOLERANCE = 1.001


class MotionMonitor:
    """What the arm really did against its velocity limits: the fastest joint speed seen, and the trajectories
    whose first segment asked for more than the limit from where they started."""

    def __init__(self, velocity_limit: np.ndarray):
        self.velocity_limit = np.asarray(velocity_limit, float)
        self.max_speed_ratio = 0.0
        self.max_start_ratio = 0.0
        self.commands = self.commands_over_limit = 0

    def moved(self, joint_velocities: np.ndarray) -> None:
        self.max_speed_ratio = max(self.max_speed_ratio, float(np.max(np.abs(joint_velocities) / self.velocity_limit)))

    def command_started(self, start_speed_ratio: float) -> None:
        self.commands += 1
        self.max_start_ratio = max(self.max_start_ratio, start_speed_ratio)
        self.commands_over_limit += int(start_speed_ratio > SPEED_TOLERANCE)

    def diagnostics(self) -> dict[str, str]:
        return {'max_joint_speed_ratio': f'{self.max_speed_ratio:.4f}', 'commands_started': str(self.commands),
                'commands_over_velocity_limit': str(self.commands_over_limit),
                'max_command_start_speed_ratio': f'{self.max_start_ratio:.4f}'}


class ControlledArm:
    """`env`'s arm following trajectories sent to it, `command_latency_s` after they are sent."""

    def __init__(self, env: ArmEnv, command_latency_s: float = 0.0):
        if not 0.0 <= command_latency_s <= 2.0:
            raise ValueError(f'command_latency_s must be in [0, 2], got {command_latency_s=}')
        self.env, self.command_latency_s = env, command_latency_s
        self.follower = TrajectoryFollower(env.lower, env.upper, env.velocity_limit,
                                           env.config.interpolate_from_desired_state)
        self.monitor = MotionMonitor(env.velocity_limit)
        self._in_transit: deque[tuple[float, float, np.ndarray, np.ndarray]] = deque()  # (due, stamp, times, pos)

    def send(self, times: np.ndarray, positions: np.ndarray, now: float, stamp: float = 0.0) -> None:
        """Queue a trajectory (times from its start, positions (N, J) in env joint order); stamp 0 = start on
        arrival. Raises TrajectoryError (nothing queued) if it cannot be followed."""
        times, positions = np.asarray(times, float), np.atleast_2d(np.asarray(positions, float))
        self.follower.check(times, positions)
        self._in_transit.append((now + self.command_latency_s, stamp, times, positions))

    def clear(self) -> None:
        """Drop the running trajectory and those in transit (e.g. on reset)."""
        self.follower.clear()
        self._in_transit.clear()

    def tick(self, now: float, period: float) -> None:
        """Start the trajectories due by `now`, set the setpoint for `now`, and simulate `period` seconds."""
        env = self.env
        while self._in_transit and self._in_transit[0][0] <= now:
            due, stamp, times, positions = self._in_transit.popleft()
            self.follower.replace(times, positions, start=stamp if stamp > 0 else due)
        starts = self.follower.starts
        setpoint = self.follower.setpoint(now, env.joint_positions())
        if self.follower.starts != starts:
            self.monitor.command_started(self.follower.start_speed_ratio)
        if setpoint is not None:
            if env.config.controller == 'rate_limited':          # setpoints move at most velocity × period
                step = env.velocity_limit * period
                setpoint = np.clip(setpoint, env.joint_targets() - step, env.joint_targets() + step)
            env.set_joint_targets(setpoint)
        env.advance(period)
        self.monitor.moved(env.joint_velocities())
