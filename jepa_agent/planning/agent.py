"""The agent loop: timestamped camera frames and joint states in, safe arm commands (or a reasoned hold) out.

    agent = Agent(policy, limits, gate, AgentConfig())
    agent.set_goal(goal_image)                      # new goal: frame history and warm start are forgotten
    agent.observe(image, t, q)                      # every camera frame, stamped on the agent's clock
    plan = agent.plan(now, joints)                  # Plan, or Hold(reason)
    command = agent.command(plan, later, newest_joints, camera_age_s=...)   # Command (gated), or Hold(reason)
    agent.prepare(after, newest_joints)             # search ahead for the next frame (cem.anticipate)

The planner node, `eval-planner` (in simulated time, charging each plan's measured latency) and the demo (through
the node) all run this object, so their numbers are the node's. ROS-free: times are plain seconds on one clock.

Why two calls: a plan takes 0.1–0.4 s on a CPU, and the arm keeps executing the last command meanwhile. `plan`
therefore plans from where the arm will be when the new command takes effect (the motion of the commands sent,
rolled forward by the expected plan latency + command latency from the measured position, is fed to the policy as
actions already in flight), and `command` then sends the planned points on the plan's own timeline, dropping those
already in the past, through the command gate with the newest joint state.

Searching ahead: a plan's search is mostly done before its frame arrives. `prepare`, called right after a command,
has the policy search from the newest frame for when a plan made on the next frame will take effect; that plan then
only continues the search on the fresh view, so the path from frame to command is short.

Converging without oscillation: once the goal is reached the model's cost is flat within its noise, and replanning
every period would chase that noise. `hold_ratio` is a deadband: when the best plan's predicted cost does not beat
the predicted cost of staying where the arm will be by that factor, the agent commands the arm to stop there
instead (`at_goal` is True) and moves again only when a plan clearly beats staying (`release_ratio`). The policy
gives staying an infinite cost while the goal is far, so the arm never stops there.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from jepa_agent.command_gate import CommandGate, CommandRefused, ExecutedTrajectory, JointReading
from jepa_agent.config import bounded, check_ranges
from jepa_agent.planning.cem import Plan
from jepa_agent.planning.constraints import JointLimits


@dataclass
class AgentConfig:
    """When the agent plans, what it sends, and when it holds (the planner node's top-level parameters)."""

    execute_steps: int = bounded(1, ge=1)
    """Fewest planned control periods published per plan (receding horizon)."""
    cover_latency: bool = True
    """Publish enough steps to last until the next plan (the longest recent interval between plans, plus one
    period), at most the horizon."""
    stale_timeout_s: float = bounded(0.5, gt=0)
    """Camera frames or joint states older than this make the agent hold (the gate checks again at publish)."""
    compensate_latency: bool = True
    """Plan from where the arm will be when the command takes effect, not from where the frame saw it."""
    hold_ratio: float = bounded(0.9, ge=0, lt=1)
    """Deadband: send a plan only if its predicted cost is below hold_ratio × the predicted cost of staying put,
    else stop the arm where it will be (at the goal); 0 = always send."""
    release_ratio: float = bounded(0.5, ge=0, lt=1)
    """Hysteresis: once stopped at the goal, move again only for a plan below release_ratio × the cost of staying
    (<= hold_ratio; 0 = same as hold_ratio; unused when hold_ratio is 0)."""
    tracking_gain: float = bounded(0.3, ge=0, le=1)
    """Integral action on where the arm settles: for each joint the commands sent hold still, and that is still, each
    command adds this share of its error (planned minus measured position) to an offset that the joint's commanded
    positions carry, so an arm whose controller settles short of its setpoint (gravity on a position servo, a
    trajectory controller that restarts every trajectory from where the arm is) ends where the plan puts it;
    0 = off."""
    tracking_limit_rad: float = bounded(0.2, ge=0)
    """Largest tracking offset per joint (rad)."""

    def __post_init__(self):
        check_ranges(self)
        if self.hold_ratio and self.release_ratio > self.hold_ratio:
            raise ValueError(f'release_ratio must be in [0, hold_ratio], got {self.release_ratio=} '
                             f'{self.hold_ratio=}')


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    t: float
    """When the frame was taken (its stamp), seconds on the agent's clock."""
    q: np.ndarray | None = None
    """Joint positions when it was taken (None if unknown)."""


@dataclass(frozen=True)
class Hold:
    """Nothing is sent; the arm finishes its last command and stays at its end."""

    reason: str


@dataclass(frozen=True)
class Command:
    """A gated trajectory to publish now: times from its start (s) and positions (N, J)."""

    times: np.ndarray
    positions: np.ndarray
    plan: Plan


class Policy(Protocol):
    """What chooses the actions: the latent MPC, or an evaluation baseline."""

    needs_images: bool
    charged_latency_s: float | None
    """Plan time that evaluations in simulated time charge instead of the measured one; None = the measured one."""
    periods_per_step: int
    """Control periods one planned step spans (a world model's frameskip; 1 for the baselines)."""

    def set_goal(self, goal) -> None: ...

    def plan(self, frames: list[Frame], q: np.ndarray, in_flight: np.ndarray, shift: int) -> Plan | None:
        """Plan from `frames` (oldest first, one step apart, the newest last) and the measured joint positions `q`,
        after the joint targets `in_flight` (k, J) that the arm goes through, one per step after the newest frame,
        before the plan takes effect; `shift`: steps to advance the warm start. None = no usable plan."""

    def prepare(self, frames: list[Frame], q: np.ndarray, in_flight: np.ndarray, shift: int,
                stop: Callable[[], bool] | None = None) -> bool:
        """Search ahead for the plan the next frame will ask for, as `plan` would from these inputs (`in_flight`
        reaches until a plan made on the next frame takes effect); the next `plan` continues that search. `stop`:
        True when the next frame is waiting. False = nothing prepared (the policy does not search ahead)."""

    def stay_cost(self) -> float:
        """Predicted cost of holding the in-flight end position over the horizon, for the last `plan` call;
        infinite where the policy does not see the goal near (the agent then never stops the arm)."""


def plan_start(q: np.ndarray, in_flight: np.ndarray) -> np.ndarray:
    """Where a plan starts: the end of the positions in flight, or the measured position `q` if none are."""
    return in_flight[-1] if len(in_flight) else q


#: a joint is still when its planned speed over STILL_PERIODS control periods, and its measured speed since the last
#: joint reading, are below this share of its velocity limit
STILL_SPEED_FRACTION, STILL_PERIODS = 0.05, 2


class Agent:
    """One goal-reaching loop for the planner node and the evaluations (see the module docstring)."""

    def __init__(self, policy: Policy, limits: JointLimits, gate: CommandGate, config: AgentConfig | None = None,
                 horizon: int = 1):
        self.policy, self.control_limits, self.gate = policy, limits, gate
        self.config = config or AgentConfig()
        self.horizon = horizon
        self.has_goal = False
        self.reset()

    @property
    def limits(self) -> JointLimits:
        """The arm's limits with one planned step as the period (the policy may be hot-swapped)."""
        return self.control_limits.per_step(self.policy.periods_per_step)

    # -- episode ---------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget frames, commands sent and timing (a new goal starts a new episode)."""
        self._frames: deque[Frame] = deque(maxlen=64)
        self._sent: deque[ExecutedTrajectory] = deque(maxlen=4)     # planned positions: without the tracking offset
        self._latencies: deque[float] = deque(maxlen=5)
        self._publish_times: deque[float] = deque(maxlen=6)
        self._frame_ages: deque[float] = deque(maxlen=5)      # newest frame's age when a plan was asked for
        self._pending: tuple[float, float] | None = None     # (when the plan was asked for, time of its q0)
        self._last_origin: float | None = None
        self.at_goal = False
        self._stop: np.ndarray | None = None                # where the arm was stopped at the goal
        self._last_reading: tuple[float, np.ndarray] | None = None     # (when, joint positions) at the last command
        self.tracking_offset = np.zeros(self.control_limits.n_joints)
        """(J,) rad added to every commanded position (`tracking_gain`)."""

    def set_goal(self, goal) -> None:
        """Plan toward `goal` (an image for the latent planner) from now on; ValueError if it cannot be used."""
        self.policy.set_goal(goal)
        self.reset()
        self.has_goal = True

    def clear_goal(self) -> None:
        self.has_goal = False

    def newest_image(self) -> np.ndarray | None:
        return self._frames[-1].image if self._frames else None

    def observe(self, image: np.ndarray, t: float, q: np.ndarray | None = None) -> None:
        """A camera frame taken at `t`, with the joint positions `q` then if known; frames must arrive in time
        order (older ones are ignored)."""
        if self._frames and t <= self._frames[-1].t:
            return
        self._frames.append(Frame(image, t, None if q is None else np.asarray(q, float)))

    # -- planning --------------------------------------------------------------------------------------------
    def plan(self, now: float, joints: JointReading | None) -> Plan | Hold:
        """Plan from the newest frame and joint state, for when the command will take effect."""
        cfg, dt = self.config, self.limits.dt
        if not self.has_goal:
            return Hold('no goal')
        if not self._frames or joints is None:
            return Hold('waiting for camera and joint states')
        newest = self._frames[-1]
        if now - newest.t > cfg.stale_timeout_s or joints.age_s > cfg.stale_timeout_s:
            return Hold('stale camera or joint states')
        q = np.asarray(joints.positions, float)
        in_flight = self._in_flight(newest.t, now, q, now - joints.age_s)
        origin = newest.t + len(in_flight) * dt                       # when the plan's q0 applies
        self._frame_ages.append(now - newest.t)
        shift = self._shift(origin)
        plan = self.policy.plan(self._history(newest), q, in_flight, shift)
        if plan is None:
            return Hold('no usable plan')
        self._advance(origin, shift)
        self._pending = (now, origin)
        stay = self.policy.stay_cost()
        ratio = cfg.release_ratio or cfg.hold_ratio if self.at_goal else cfg.hold_ratio
        stopped, self.at_goal = self.at_goal, cfg.hold_ratio > 0 and plan.cost >= ratio * stay
        if self.at_goal:       # stop where the arm will be (nothing better than staying is in sight), and stay there
            self._stop = self._stop if stopped else plan_start(q, in_flight)
            plan = Plan(np.zeros_like(plan.actions), np.tile(self._stop, (len(plan.targets), 1)), stay,
                        plan.latency_s)
        return plan

    def prepare(self, now: float, joints: JointReading | None, stop: Callable[[], bool] | None = None) -> bool:
        """Right after a command: search ahead for the plan the next frame will ask for (the policy's `prepare`),
        from the newest frame and the commands sent, until a plan made on the next frame takes effect. The next
        frame is expected one frame interval after the newest, as old when planned from as frames have been.
        True if a search was prepared."""
        if not (self.has_goal and len(self._frames) >= 2 and self._frame_ages and joints is not None):
            return False
        newest, dt = self._frames[-1], self.limits.dt
        interval = float(np.median(np.diff([f.t for f in list(self._frames)[-6:]])))
        expected = newest.t + interval + float(np.median(self._frame_ages))     # when the next frame is planned from
        q = np.asarray(joints.positions, float)
        in_flight = self._in_flight(newest.t, expected, q, now - joints.age_s)
        origin = newest.t + len(in_flight) * dt
        shift = self._shift(origin)
        if not self.policy.prepare(self._history(newest), q, in_flight, shift, stop):
            return False
        self._advance(origin, shift)
        return True

    def _shift(self, origin: float) -> int:
        """Steps to advance the warm start for a plan starting at `origin`: whole steps since the origin it was last
        advanced to (a step may span several frames), in [0, horizon]."""
        if self._last_origin is None:
            return self.horizon
        return int(np.clip(round((origin - self._last_origin) / self.limits.dt), 0, self.horizon))

    def _advance(self, origin: float, shift: int) -> None:
        """The warm start was advanced by `shift` steps toward `origin` (all the way when it was reset)."""
        self._last_origin = origin if shift >= self.horizon else self._last_origin + shift * self.limits.dt

    def _in_flight(self, frame_t: float, now: float, q: np.ndarray, measured_at: float) -> np.ndarray:
        """(k, J) where the arm will be, one control period apart after the frame, until a plan made now takes
        effect: the motion of the commands already sent, re-anchored on the measured position `q` (taken at
        `measured_at`), so an arm that was displaced (reset, pushed, lagging) is predicted from where it is."""
        if not self.config.compensate_latency:
            return np.zeros((0, q.size))
        expected_latency = float(np.median(self._latencies)) if self._latencies else 0.0
        effect = now + expected_latency + self.gate.config.command_latency_s
        k = int(np.clip(round((effect - frame_t) / self.limits.dt), 0, self.horizon - 1))
        offset = q - self._expected_position(measured_at, q)
        return np.array([np.clip(self._expected_position(frame_t + i * self.limits.dt, q) + offset,
                                 self.limits.lower, self.limits.upper) for i in range(1, k + 1)]).reshape(k, q.size)

    def _expected_position(self, t: float, q: np.ndarray) -> np.ndarray:
        """Where the commands sent so far put the arm at `t` (the newest one in effect by then)."""
        for sent in reversed(self._sent):
            if sent.effect <= t:
                return sent.position_at(t)
        return q

    def _history(self, newest: Frame) -> list[Frame]:
        """Up to three frames one step apart before `newest`, then `newest`: the nearest frame to each instant, back
        to the first instant without a frame within half a step of it."""
        frames, dt = list(self._frames), self.limits.dt
        times = np.array([f.t for f in frames])
        history = [newest]
        for j in range(1, 4):
            i = int(np.argmin(np.abs(times - (newest.t - j * dt))))
            if abs(times[i] - (newest.t - j * dt)) > 0.5 * dt or frames[i].t >= history[0].t:
                break
            history.insert(0, frames[i])
        return history

    # -- sending ---------------------------------------------------------------------------------------------
    def command(self, plan: Plan, now: float, joints: JointReading | None, *, enabled: bool = True,
                camera_age_s: float | None = None) -> Command | Hold:
        """The plan's points still ahead of the moment a command sent `now` takes effect, through the gate."""
        if self._pending is None:
            return Hold('no plan to send')
        asked, origin = self._pending
        self._pending = None
        dt, latency = self.limits.dt, self.gate.config.command_latency_s
        effect = now + latency
        ahead = origin + dt * np.arange(1, len(plan.targets) + 1) - effect      # time_from_start of each point
        keep = np.flatnonzero(ahead > 0.25 * dt)
        self._latencies.append(now - asked)              # the next plan looks this much further ahead
        if keep.size == 0:
            return Hold('plan came too late: all its points are in the past')
        intervals = list(self._publish_times) + [now]
        n = self._steps_to_send(now - asked, intervals)
        keep = keep[:n]
        q = np.asarray(joints.positions, float)
        self._track(q, now - joints.age_s)
        try:
            times, positions = self.gate.admit(plan.targets[keep] + self.tracking_offset, ahead[keep], joints,
                                               enabled=enabled, camera_age_s=camera_age_s, now=now)
        except CommandRefused as exc:
            return Hold(f'command refused: {exc}')
        anchor = self._expected_position(effect, q)
        self._sent.append(ExecutedTrajectory(effect, anchor, times, positions - self.tracking_offset))
        self._publish_times.append(now)
        return Command(times, positions, plan)

    def _track(self, q: np.ndarray, measured_at: float) -> None:
        """Integral action (`tracking_gain`) on the error of each joint at `measured_at`, when `q` was measured, that
        the commands sent held still over the STILL_PERIODS before and that is still (since the last reading)."""
        last, self._last_reading = self._last_reading, (measured_at, q)
        if not (self.config.tracking_gain and self._sent and last is not None and measured_at > last[0]):
            return
        planned = self._expected_position(measured_at, q)
        span = STILL_PERIODS * self.limits.dt
        still_speed = STILL_SPEED_FRACTION * self.limits.velocity
        held = np.abs(planned - self._expected_position(measured_at - span, q)) / span <= still_speed
        resting = np.abs(q - last[1]) / (measured_at - last[0]) <= still_speed
        limit = self.config.tracking_limit_rad
        offset = np.clip(self.tracking_offset + self.config.tracking_gain * (planned - q), -limit, limit)
        self.tracking_offset = np.where(held & resting, offset, self.tracking_offset)

    def _steps_to_send(self, latency_s: float, publish_times: list[float]) -> int:
        """At least `execute_steps`; with `cover_latency`, enough to span this plan's latency or the longest recent
        interval between plans, plus one period; at most the horizon."""
        n = self.config.execute_steps
        if self.config.cover_latency:
            intervals = np.diff(publish_times[-6:])
            gap = max(latency_s, float(intervals.max()) if intervals.size else 0.0)
            n = max(n, int(np.ceil(gap / self.limits.dt)) + 1)
        return min(n, self.horizon)
