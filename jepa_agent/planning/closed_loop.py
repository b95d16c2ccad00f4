"""Closed-loop control in the MuJoCo arm env (ROS-free): a controller plans, the first step(s) run, it replans.

Controllers share one small interface (`reset(goal)`, `act(observation, shift) -> Plan | None`, None = hold), so
the latent planner, the random baseline and the simulator-as-model ceiling run through the same episode loops,
used by `eval-planner`:

* `run_timed_episode` (the default): simulated time that behaves like a real arm. The arm keeps executing its last
  command while the controller plans (each plan's measured latency is charged), commands go through the command
  gate to a joint_trajectory_controller with command latency, and the episode runs its whole budget: success means
  the goal was **held** (within tolerance for the whole last second), `touched` that it was reached at some point.
* `run_episode`: the synchronous loop (plan, then step; no latency), ending at the first touch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from jepa_agent.command_gate import CommandGate, CommandGateConfig, CommandRefused, JointReading
from jepa_agent.planning.cem import CEMConfig, CEMPlanner, Plan, step_weights
from jepa_agent.planning.constraints import JointLimits
from jepa_agent.planning.mpc import LatentMPC, steps_to_publish
from jepa_agent.sim import ArmEnv, Goal, Observation
from jepa_agent.sim.controlled_arm import ControlledArm

#: physics ticks of the simulated controller (s), as in the sim_arm node
TICK_S = 0.01
#: a goal counts as held when it stays within tolerance for this last part of the episode (s)
HOLD_WINDOW_S = 1.0
#: age of the newest joint state when a command is published (50 Hz joint states + transport)
JOINT_STATE_AGE_S = 0.02


class Controller(Protocol):
    needs_images: bool

    def reset(self, goal: Goal) -> None: ...

    def act(self, observation: Observation, shift: int | None = None) -> Plan | None: ...


def env_limits(env: ArmEnv) -> JointLimits:
    return JointLimits(env.lower, env.upper, env.velocity_limit, env.control_dt)


class LatentController:
    """The world-model planner: CEM toward the goal image's latent (sees only images and joint positions)."""

    needs_images = True

    def __init__(self, mpc: LatentMPC, execute_steps: int = 1):
        self.mpc, self.execute_steps = mpc, execute_steps

    @classmethod
    def for_env(cls, model, env: ArmEnv, cem: CEMConfig, execute_steps: int = 1) -> LatentController:
        """A controller planning with `model` inside `env`'s joint and velocity limits."""
        return cls(LatentMPC(model, env_limits(env), cem), execute_steps)

    def reset(self, goal: Goal) -> None:
        self.mpc.reset()
        self.mpc.set_goal(goal.image)

    def act(self, observation: Observation, shift: int | None = None) -> Plan | None:
        """`shift`: control periods run since the previous plan (default execute_steps), to advance the warm start."""
        return self.mpc.act(observation.image, observation.qpos, shift=shift or self.execute_steps)


class RandomController:
    """Baseline: uniformly random feasible actions."""

    needs_images = False

    def __init__(self, env: ArmEnv, seed: int = 0):
        self.env, self.rng = env, np.random.default_rng(seed)

    def reset(self, goal: Goal) -> None:
        pass

    def act(self, observation: Observation, shift: int | None = None) -> Plan:
        action = self.rng.uniform(-1, 1, self.env.n_joints) * self.env.max_delta
        target = self.env.clip_targets(observation.qpos + action, reference=observation.qpos)
        return Plan((target - observation.qpos)[None], target[None], float('nan'), 0.0)


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


class SimulatorController:
    """Ceiling baseline: the same CEM, with the true simulator as its model and the true goal state as cost.

    Reach scores the implied joint targets against the goal pose with the sim's exact kinematics (cheap, batched):
    end-effector distance plus JOINT_WEIGHT × joint-space distance, since the goal image shows a whole arm pose and
    end-effector distance alone strands a short-horizon planner at the joint limits (17 % of goals in a 30-goal
    check). Push rolls every sample out in the physics (few samples: it is slow) and scores block-to-goal plus
    end-effector-to-block distances.
    """

    JOINT_WEIGHT = 0.3

    needs_images = False

    def __init__(self, env: ArmEnv, config: CEMConfig, execute_steps: int = 1):
        self.env, self.execute_steps = env, execute_steps
        self.planner = CEMPlanner(config, env_limits(env))
        self.weights = step_weights(config.horizon, config.step_weighting)
        self.kinematics = PlanarKinematics(env)
        self.goal: Goal | None = None

    def reset(self, goal: Goal) -> None:
        self.goal = goal
        self.planner.reset()

    def act(self, observation: Observation, shift: int | None = None) -> Plan | None:
        cost = self._reach_cost if self.goal.task == 'reach' else self._push_cost
        return self.planner.plan(cost, observation.qpos, shift=shift or self.execute_steps)

    def _reach_cost(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ee_goal = torch.as_tensor(self.goal.ee_pos, dtype=torch.float32)
        q_goal = torch.as_tensor(self.goal.qpos, dtype=torch.float32)
        distance = ((self.kinematics(targets) - ee_goal).norm(dim=-1)
                    + self.JOINT_WEIGHT * (targets - q_goal).norm(dim=-1))               # (N, H)
        return distance @ self.weights                                                  # (N,)

    def _push_cost(self, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        env, state = self.env, self.env.get_state()
        costs = np.zeros((targets.shape[0], targets.shape[1]))
        for n, sequence in enumerate(targets.double().numpy()):
            env.set_state(state)
            for h, target in enumerate(sequence):
                env.set_joint_targets(target)
                env.advance(env.control_dt)
                costs[n, h] = (np.linalg.norm(env.block_pos() - self.goal.block_pos)
                               + 0.5 * np.linalg.norm(env.ee_pos() - env.block_pos()))
        env.set_state(state)
        return torch.as_tensor(costs, dtype=torch.float32) @ self.weights


@dataclass
class EpisodeResult:
    success: bool
    steps: int
    """Control periods run (until success or the step budget)."""
    final_distance: float
    """End-effector (reach) or block (push) distance to the goal at the end, metres."""
    touched: bool = False
    """Within tolerance at some point (the synchronous loop stops there: touched == success)."""
    latencies_ms: list[float] = field(default_factory=list)
    holds: int = 0
    """Control periods in which the controller gave no plan and the arm held position."""
    peak_speed_ratio: float = 0.0
    """Fastest joint speed the arm really reached, as a multiple of its velocity limit."""
    frames: list[np.ndarray] = field(default_factory=list)
    """(H, 3W, 3) uint8 strips (current view | goal | pose at the end of the plan), when recorded."""


def run_episode(env: ArmEnv, controller: Controller, seed: int, task: str, max_steps: int,
                execute_steps: int = 1, record: bool = False) -> EpisodeResult:
    """Reset to `seed`, draw the goal from the same seed (a held-out goal stream), control until success."""
    observation = env.reset(seed)
    goal = env.sample_goal(seed, task)
    controller.reset(goal)
    result = EpisodeResult(False, 0, 0.0)
    render = controller.needs_images or record
    if render:
        observation = env.get_observation(render=True)
    while result.steps < max_steps and not env.success(goal):
        plan = controller.act(observation)
        if plan is None:
            result.holds += 1
            targets = observation.qpos[None]
        else:
            result.latencies_ms.append(plan.latency_s * 1e3)
            targets = plan.targets[:execute_steps]
        if record:
            result.frames.append(_strip(env, observation.image, goal.image, plan.targets[-1] if plan else None))
        for target in targets:
            observation = env.step(target - env.joint_positions(), render=render)
            result.steps += 1
            if env.success(goal) or result.steps >= max_steps:
                break
    result.success = result.touched = env.success(goal)
    result.final_distance = env.distances(goal)['ee' if task == 'reach' else 'block']
    result.peak_speed_ratio = env.peak_speed_ratio
    return result


def run_timed_episode(env: ArmEnv, controller: Controller, seed: int, task: str, max_steps: int,
                      execute_steps: int = 1, record: bool = False, command_latency_s: float = 0.05,
                      gate_config: CommandGateConfig | None = None) -> EpisodeResult:
    """`max_steps` control periods in simulated time on a hardware-like arm (see the module docstring); success =
    held for the last HOLD_WINDOW_S seconds. Camera frames come every control period; a plan made from the frame
    at t is published at t + its measured latency, while the previous command goes on."""
    env.reset(seed, render=False)
    goal = env.sample_goal(seed, task)
    controller.reset(goal)
    arm = ControlledArm(env, command_latency_s)
    gate = CommandGate(env.lower, env.upper, env.velocity_limit, config=gate_config or CommandGateConfig())
    dt, duration = env.control_dt, max_steps * env.control_dt
    render = controller.needs_images or record
    result = EpisodeResult(False, max_steps, 0.0)
    clock = {'t': 0.0, 'first_touch': None, 'left_at': 0.0}   # left_at: last time the goal was not within tolerance

    def run_until(end: float) -> None:
        while clock['t'] < end - 1e-9:
            arm.tick(clock['t'], TICK_S)
            clock['t'] += TICK_S
            if env.success(goal):
                clock['first_touch'] = clock['first_touch'] if clock['first_touch'] is not None else clock['t']
            else:
                clock['left_at'] = clock['t']

    plan_times: list[float] = []
    while clock['t'] < duration - 1e-9:
        observation = env.get_observation(render=render)                        # the camera frame at t
        shift = int(np.clip(round((clock['t'] - plan_times[-1]) / dt), 1, 1000)) if plan_times else execute_steps
        plan = controller.act(observation, shift=shift)
        latency = plan.latency_s if plan is not None else 0.0
        run_until(min(clock['t'] + latency, duration))                          # the arm moves on while planning
        if record:
            result.frames.append(_strip(env, observation.image, goal.image, plan.targets[-1] if plan else None))
        if plan is None:
            result.holds += 1
        elif clock['t'] < duration - 1e-9:
            result.latencies_ms.append(latency * 1e3)
            n = steps_to_publish(latency, plan_times, execute_steps, len(plan.targets), dt)
            plan_times.append(clock['t'])
            try:
                times, positions = gate.admit(plan.targets[:n], dt * np.arange(1, n + 1),
                                              JointReading(env.joint_positions(), JOINT_STATE_AGE_S))
                arm.send(times, positions, clock['t'])
            except CommandRefused:
                result.holds += 1
        run_until(min((np.floor(clock['t'] / dt + 1e-9) + 1) * dt, duration))     # until the next frame
    result.touched = clock['first_touch'] is not None
    result.success = result.touched and clock['left_at'] <= duration - HOLD_WINDOW_S + 1e-9
    result.steps = int(round(clock['first_touch'] / dt)) if result.touched else max_steps
    result.final_distance = env.distances(goal)['ee' if task == 'reach' else 'block']
    result.peak_speed_ratio = arm.monitor.max_speed_ratio
    return result


def _strip(env: ArmEnv, current: np.ndarray, goal: np.ndarray, planned: np.ndarray | None) -> np.ndarray:
    """Current view, goal view and the rendered pose at the end of the planned horizon, side by side."""
    if planned is None:
        end = np.zeros_like(current)
    else:
        qpos = env.data.qpos.copy()
        for name, q in zip(env.joint_names, planned):
            qpos[env.model.joint(name).qposadr[0]] = q
        end = env.render(qpos)
    return np.concatenate([current, goal, end], axis=1)
