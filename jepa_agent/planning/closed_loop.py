"""Closed-loop evaluation in the MuJoCo arm env (ROS-free), with the planner node's agent loop.

`run_episode` runs an `Agent` (`agent.py`, the loop the planner node runs) in simulated time that behaves like a
real arm: camera frames arrive late, the arm keeps executing its last command while the agent plans (each plan's
measured latency is charged), commands go through the command gate to a joint_trajectory_controller with command
latency, and the episode runs its whole budget: success means the goal was **held** (within tolerance for the whole
last second), `touched` that it was reached at some point. A push succeeds when the block is within tolerance of its
goal at the end of the episode (as Push-T is scored); `held` is reported beside it. Policies: the latent planner
(`LatentMPC`), random actions, the same CEM with the true simulator as its model (the ceiling) and, for push goals,
the demonstration's joint targets replayed open loop, all through the same agent.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from jepa_agent.command_gate import CommandGate, CommandGateConfig, JointReading
from jepa_agent.planning.agent import Agent, AgentConfig, Hold, Policy, plan_start
from jepa_agent.planning.cem import CEMConfig, CEMPlanner, Plan, step_weights
from jepa_agent.planning.constraints import JointLimits
from jepa_agent.sim import ArmEnv, Goal
from jepa_agent.sim.camera_link import CameraLink, to_ns
from jepa_agent.sim.controlled_arm import ControlledArm

#: physics ticks of the simulated controller (s), as in the sim_arm node
TICK_S = 0.01
#: a goal counts as held when it stays within tolerance for this last part of the episode (s)
HOLD_WINDOW_S = 1.0
#: age of the newest joint state when a command is published (50 Hz joint states + transport)
JOINT_STATE_AGE_S = 0.02
#: plan time charged to the push ceiling: its physics search stands in for a model that plans within a camera period
CEILING_LATENCY_S = 0.03


def env_limits(env: ArmEnv) -> JointLimits:
    return JointLimits.of(env.robot, env.control_dt)


def make_agent(policy: Policy, env: ArmEnv, horizon: int, config: AgentConfig | None = None,
               command_latency_s: float = 0.05, gate_config: CommandGateConfig | None = None) -> Agent:
    """The agent loop around `policy` for `env`'s arm, its gate expecting `command_latency_s`."""
    gate_config = gate_config or CommandGateConfig(command_latency_s=command_latency_s)
    gate = CommandGate(env.lower, env.upper, env.velocity_limit, config=gate_config)
    return Agent(policy, env_limits(env), gate, config, horizon)


class Baseline:
    """What the evaluation baselines share as agent policies: they read the true state, not images; plan steps of one
    control period; never search ahead; and never stop the arm at the goal (staying has no cost they could see)."""

    needs_images = False
    charged_latency_s: float | None = None
    periods_per_step = 1

    def prepare(self, frames, q: np.ndarray, in_flight: np.ndarray, shift: int = 1, stop=None) -> bool:
        return False

    def stay_cost(self) -> float:
        return float('inf')


class RandomPolicy(Baseline):
    """Baseline: uniformly random feasible actions."""

    def __init__(self, env: ArmEnv, seed: int = 0):
        self.env, self.rng = env, np.random.default_rng(seed)

    def set_goal(self, goal: Goal) -> None:
        pass

    def plan(self, frames, q: np.ndarray, in_flight: np.ndarray, shift: int = 1) -> Plan:
        q0 = plan_start(q, in_flight)
        action = self.rng.uniform(-1, 1, self.env.n_joints) * self.env.max_delta
        target = self.env.clip_targets(q0 + action, reference=q0)
        return Plan((target - q0)[None], target[None], float('nan'), 0.0)


class ReplayPolicy(Baseline):
    """Push baseline: the demonstration's joint targets, open loop on the episode's clock, whatever arm and block do
    (through the hardware-like arm they lag the scripted push, which stepped the sim without latency)."""

    def __init__(self, env: ArmEnv, horizon: int):
        self.env, self.horizon = env, horizon
        self.targets, self.start = np.zeros((0, env.n_joints)), None

    def set_goal(self, goal: Goal) -> None:
        """Record the targets the demonstration commands, stepping it from the current (start) state."""
        env, state, targets = self.env, self.env.get_state(), []
        for action in goal.demonstration:
            targets.append(env.clip_targets(env.joint_positions() + action))
            env.step(action, render=False)
        env.set_state(state)
        self.targets, self.start = np.array(targets), None

    def plan(self, frames, q: np.ndarray, in_flight: np.ndarray, shift: int = 1) -> Plan:
        self.start = frames[-1].t if self.start is None else self.start
        first = int(round((frames[-1].t - self.start) / self.env.control_dt)) + len(in_flight)
        steps = np.minimum(np.arange(first, first + self.horizon), len(self.targets) - 1)
        targets = self.targets[steps]
        return Plan(np.diff(targets, axis=0, prepend=plan_start(q, in_flight)[None]), targets, float('nan'), 0.0)


class PlanarKinematics:
    """End-effector xy of a chain of z-axis revolute joints, batched in torch, read from the sim's MJCF."""

    def __init__(self, env: ArmEnv):
        bodies = [env.model.body(n) for n in ('link2', 'link3')]
        offsets = [b.pos[:2] for b in bodies] + [env.model.site('ee').pos[:2]]
        self.base = torch.as_tensor(env.model.body('link1').pos[:2], dtype=torch.float32)
        self.offsets = torch.as_tensor(np.array(offsets), dtype=torch.float32)        # (J, 2)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """(..., J) joint positions → (..., 2) end-effector xy."""
        angle = torch.cumsum(q, -1)                                                   # (..., J)
        cos, sin = torch.cos(angle), torch.sin(angle)
        x = cos * self.offsets[:, 0] - sin * self.offsets[:, 1]
        y = sin * self.offsets[:, 0] + cos * self.offsets[:, 1]
        return self.base + torch.stack([x.sum(-1), y.sum(-1)], -1)


class SimulatorPolicy(Baseline):
    """Ceiling baseline: the same CEM, with the true simulator as its model and the true goal state as cost.

    Reach scores the implied joint targets against the goal pose with the sim's exact kinematics (cheap, batched):
    end-effector distance plus JOINT_WEIGHT × joint-space distance, since the goal image shows a whole arm pose and
    end-effector distance alone strands a short-horizon planner at the joint limits (17 % of goals in a 30-goal
    check); on another arm (`model_file`), whose kinematics it does not know, joint-space distance alone. Push rolls
    every sample out in the physics (few samples: it is slow; each plan is charged CEILING_LATENCY_S, not its physics
    time) and scores the block's distance to its goal plus the end effector's path to the point behind the block
    (seen from the goal), around the block: a straight-line pull to that point held the tip against the block's goal
    side (4 of 10 development goals at the end; 7 with the path around). It keeps no margin off the joint limits
    (`cem.limit_margin`): the margin is there because a learned model reads poses near the limits poorly, which the
    simulator does not, and on a six-joint arm with narrow ranges it kept the ceiling off half of the goals.
    """

    JOINT_WEIGHT = 0.3
    BEHIND_WEIGHT = 0.5
    #: m from the block's centre: the point the tip pushes from, and the disc its path goes around
    BEHIND, AROUND = 0.055, 0.05
    #: m from the goal within which the tip's term fades out (nothing is left to push)
    FADE = 0.02

    def __init__(self, env: ArmEnv, config: CEMConfig):
        self.env = env
        config = dataclasses.replace(config, limit_margin=0.0)     # the margin is for a learned model's sake
        self.planners = {'reach': CEMPlanner(config, env_limits(env)),
                         'push': CEMPlanner(push_search(config), env_limits(env))}
        self.planner = self.planners['reach']
        self.weights = step_weights(config.horizon, config.step_weighting)
        self.kinematics = None if env.config.model_file else PlanarKinematics(env)
        self.goal: Goal | None = None
        self.charged_latency_s: float | None = None

    def set_goal(self, goal: Goal) -> None:
        self.goal = goal
        self.charged_latency_s = None if goal.task == 'reach' else CEILING_LATENCY_S
        self.planner = self.planners['reach' if goal.task == 'reach' else 'push']
        self.planner.reset()

    def plan(self, frames, q: np.ndarray, in_flight: np.ndarray, shift: int = 1) -> Plan | None:
        cost = self._reach_cost if self.goal.task == 'reach' else self._push_cost
        return self.planner.plan(cost, plan_start(q, in_flight), shift=shift)

    def _reach_cost(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ee_goal = torch.as_tensor(self.goal.ee_pos[:2], dtype=torch.float32)
        q_goal = torch.as_tensor(self.goal.qpos, dtype=torch.float32)
        distance = self.JOINT_WEIGHT * (targets - q_goal).norm(dim=-1)                  # (N, H)
        if self.kinematics is not None:
            distance = distance + (self.kinematics(targets) - ee_goal).norm(dim=-1)
        return distance @ self.weights                                                  # (N,)

    def _push_cost(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        env, state = self.env, self.env.get_state()
        costs = np.zeros((targets.shape[0], targets.shape[1]))
        for n, sequence in enumerate(targets.double().numpy()):
            env.set_state(state)
            for h, target in enumerate(sequence):
                env.set_joint_targets(target)
                env.advance(env.control_dt)
                costs[n, h] = self._push_step_cost(env.block_pos(), env.ee_pos()[:2])
        env.set_state(state)
        return torch.as_tensor(costs, dtype=torch.float32) @ self.weights

    def _push_step_cost(self, block: np.ndarray, tip: np.ndarray) -> float:
        """Block-to-goal distance + BEHIND_WEIGHT × the tip's path around the block to the point it pushes from,
        faded out within FADE of the goal."""
        offset = self.goal.block_pos - block
        distance = float(np.linalg.norm(offset))
        behind = block - self.BEHIND * offset / max(distance, 1e-9)
        fade = min(1.0, distance / self.FADE)
        return distance + self.BEHIND_WEIGHT * fade * path_around(tip, behind, block, self.AROUND)


def push_search(config: CEMConfig) -> CEMConfig:
    """The push ceiling's search: it rolls every sample out in the physics, so fewer samples keep it affordable
    (64, 32, 16 over three iterations), drawn wide (init_std 1) because the tip has far to go."""
    return dataclasses.replace(config, num_samples=64, num_iterations=3, num_elites=6, num_retained=2, init_std=1.0)


def path_around(start: np.ndarray, end: np.ndarray, centre: np.ndarray, radius: float) -> float:
    """Length (m) of the shortest planar path from `start` to `end` outside the disc (`centre`, `radius`): straight
    when the segment clears the disc, else the two tangents and the arc between them."""
    segment = end - start
    s = np.clip(np.dot(centre - start, segment) / max(np.dot(segment, segment), 1e-12), 0.0, 1.0)
    if np.linalg.norm(start + s * segment - centre) >= radius:
        return float(np.linalg.norm(segment))
    a, b = start - centre, end - centre
    ra, rb = max(np.linalg.norm(a), radius), max(np.linalg.norm(b), radius)
    angle = np.arccos(np.clip(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12), -1.0, 1.0))
    arc = max(angle - np.arccos(radius / ra) - np.arccos(radius / rb), 0.0)
    return float(np.sqrt(ra ** 2 - radius ** 2) + np.sqrt(rb ** 2 - radius ** 2) + radius * arc)


@dataclass
class EpisodeResult:
    success: bool
    """Reach: held. Push: the block within tolerance of its goal at the end."""
    steps: int
    """Control periods until the goal was first touched (the step budget if never)."""
    final_distance: float
    """End-effector (reach) or block (push) distance to the goal at the end, metres."""
    touched: bool = False
    """Within tolerance at some point."""
    held: bool = False
    """Within tolerance for the whole last HOLD_WINDOW_S seconds."""
    latencies_ms: list[float] = field(default_factory=list)
    holds: int = 0
    """Plans that sent nothing (no plan, too late, or refused by the gate)."""
    at_goal: int = 0
    """Commands that stopped the arm because the agent judged the goal reached (its deadband)."""
    peak_speed_ratio: float = 0.0
    """Fastest joint speed the arm really reached, as a multiple of its velocity limit."""
    commands_over_limit: int = 0
    """Commands whose first segment asked for more than the velocity limit from where the controller started them."""
    block_moved: float = 0.0
    """How far the block ended from where it started (m; 0 in a scene without one): on a reach, what the arm
    knocked away on its way (the goal image then shows the block where it no longer is)."""
    frames: list[np.ndarray] = field(default_factory=list)
    """(H, 3W, 3) uint8 strips (current view | goal | pose at the end of the plan), when recorded."""


def run_episode(env: ArmEnv, agent: Agent, seed: int, task: str, max_steps: int, record: bool = False,
                command_latency_s: float = 0.05, camera_latency_s: float = 0.03) -> EpisodeResult:
    """`max_steps` control periods in simulated time on a hardware-like arm (see the module docstring); success =
    held for the last HOLD_WINDOW_S seconds. A camera frame is taken every control period and reaches the agent
    `camera_latency_s` later; the agent plans on each fresh frame, and a plan asked for at t is sent at t + the
    time the agent took (encoding included), while the arm goes on with the previous command."""
    env.reset(seed, render=False)
    goal = env.sample_goal(seed, task)
    block_start = env.block_pos() if env.has_block else None
    if goal.demonstration is not None:                  # a push: twice the scripted push's periods, at most
        max_steps = min(max_steps, 2 * len(goal.demonstration))
    agent.set_goal(goal.image if agent.policy.needs_images else goal)
    arm = ControlledArm(env, command_latency_s)
    dt, duration = env.control_dt, max_steps * env.control_dt
    render = agent.policy.needs_images or record
    result = EpisodeResult(False, max_steps, 0.0)
    clock = {'t': 0.0, 'first_touch': None, 'left_at': 0.0}   # left_at: last time the goal was not within tolerance
    camera = CameraLink(camera_latency_s, jitter_s=0.0, drop_rate=0.0, seed=seed)    # the sim_arm node's camera
    joint_log: deque[tuple[float, np.ndarray]] = deque(maxlen=8)
    seen = {'frame': -1.0, 'exposures': 0}

    def tick() -> None:
        t = clock['t']
        if t >= seen['exposures'] * dt - 1e-9:                  # the camera takes a frame every control period
            camera.push(to_ns(t), (t, env.render() if render else None, env.joint_positions()))
            seen['exposures'] += 1
        for taken, image, q in camera.pop_due(to_ns(t + 1e-9)):      # (simulated time sums float ticks)
            agent.observe(image, taken, q)
            seen['frame'] = taken
        joint_log.append((t, env.joint_positions()))
        arm.tick(t, TICK_S)
        clock['t'] = t + TICK_S
        if env.success(goal):
            clock['first_touch'] = clock['first_touch'] if clock['first_touch'] is not None else clock['t']
        else:
            clock['left_at'] = clock['t']

    def joints() -> JointReading:
        """The joint state as a 50 Hz joint_states topic delivers it: JOINT_STATE_AGE_S old."""
        t, q = next(((t, q) for t, q in reversed(joint_log) if t <= clock['t'] - JOINT_STATE_AGE_S), joint_log[0])
        return JointReading(q, clock['t'] - t)

    used, ready = -1.0, 0.0                # ready: when the agent is done searching ahead (`prepare`)
    while clock['t'] < duration - 1e-9:
        while (seen['frame'] <= used or clock['t'] < ready - 1e-9 or not joint_log) \
                and clock['t'] < duration - 1e-9:                           # a fresh frame, once the agent is free
            tick()
        if clock['t'] >= duration - 1e-9:
            break
        used, asked = seen['frame'], clock['t']
        started = time.perf_counter()
        plan = agent.plan(asked, joints())
        latency = time.perf_counter() - started                 # encoding and all, as the node spends it
        latency = charged(agent, max(latency, plan.latency_s) if isinstance(plan, Plan) else latency)
        while clock['t'] < min(asked + latency, duration) - 1e-9:                          # the arm goes on
            tick()
        if record:
            result.frames.append(plan_strip(env, agent.newest_image(), goal.image,
                                            plan.targets[-1] if isinstance(plan, Plan) else None))
        command = agent.command(plan, clock['t'], joints(), camera_age_s=clock['t'] - used) \
            if isinstance(plan, Plan) else plan
        if isinstance(command, Hold):
            result.holds += 1
        else:
            result.latencies_ms.append(latency * 1e3)
            result.at_goal += agent.at_goal
            arm.send(command.times, command.positions, clock['t'])
            started = time.perf_counter()
            if agent.prepare(clock['t'], joints()):             # as the node: right after the command, while the
                ready = clock['t'] + charged(agent, time.perf_counter() - started)      # arm goes on
    result.touched = clock['first_touch'] is not None
    result.held = result.touched and clock['left_at'] <= duration - HOLD_WINDOW_S + 1e-9
    result.success = result.held if task == 'reach' else env.success(goal)
    result.steps = int(round(clock['first_touch'] / dt)) if result.touched else max_steps
    result.final_distance = env.distances(goal)['ee' if task == 'reach' else 'block']
    result.peak_speed_ratio = arm.monitor.max_speed_ratio
    result.commands_over_limit = arm.monitor.commands_over_limit
    if block_start is not None:
        result.block_moved = float(np.linalg.norm(env.block_pos() - block_start))
    return result


def charged(agent: Agent, measured_s: float) -> float:
    """Seconds of simulated time a plan (or a search ahead) costs: its measured time, or the policy's fixed charge."""
    return agent.policy.charged_latency_s if agent.policy.charged_latency_s is not None else measured_s


def plan_strip(env: ArmEnv, current: np.ndarray, goal: np.ndarray, planned: np.ndarray | None) -> np.ndarray:
    """Current view, goal view and the arm rendered at the end of the planned horizon (`planned` joints, the rest of
    `env`'s scene as it is; black without a plan), side by side."""
    if planned is None:
        end = np.zeros_like(current)
    else:
        qpos = env.data.qpos.copy()
        for name, q in zip(env.joint_names, planned):
            qpos[env.model.joint(name).qposadr[0]] = q
        end = env.render(qpos)
    return np.concatenate([current, goal, end], axis=1)
