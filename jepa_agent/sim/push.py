"""Scripted pushes: approach the block from one side and push it, so that every push goal is reachable by
construction (replaying the push from the start state reaches it). A far push (`push_far` goals) is two of them in a
row, the second from where the first left arm and block, that together move the block at least FAR_DISTANCE.

The end effector follows waypoints (behind the block, its face, past its start) by damped-least-squares steps on the
planar end-effector Jacobian, each step inside the joint velocity limit. An attempt counts when the block ends up
MIN_DISTANCE..MAX_DISTANCE from where it started within MAX_PERIODS control periods; directions and lengths are drawn
from the caller's generator until one does.
"""
from __future__ import annotations

import numpy as np

MIN_DISTANCE, MAX_DISTANCE = 0.08, 0.20   # m the block moves
MAX_PERIODS = 30                          # control periods of one push
FAR_DISTANCE, FAR_PERIODS = 0.15, 80      # push_far: two pushes, the block ends at least this far from its start
ATTEMPTS = 20                             # drawn directions and lengths per start state
CONTACT = 0.045                           # m from the block's centre to the tip's centre at contact (half side + tip)
EE_STEP = 0.06                            # m the end effector is asked to move per period, at most
DAMPING = 1e-3                            # of the least-squares inverse kinematics
WAYPOINT_TOLERANCE = 0.01                 # m
WORKSPACE = (0.10, 0.29)                  # m from the base: where the tip can approach and push


def scripted_push(env, rng: np.random.Generator) -> np.ndarray | None:
    """(T, J) actions (env.step's joint-target deltas) of a push from the current state that moves the block
    MIN_DISTANCE..MAX_DISTANCE in T ≤ MAX_PERIODS periods, or None if ATTEMPTS draws find none. The state is left
    as it was."""
    start, block = env.get_state(), env.block_pos()
    try:
        for _ in range(ATTEMPTS):
            actions = drive_through(env, draw_push(block, rng))
            moved = float(np.linalg.norm(env.block_pos() - block))
            env.set_state(start)
            if MIN_DISTANCE <= moved <= MAX_DISTANCE:
                return actions
        return None
    finally:
        env.set_state(start)


def scripted_push_far(env, rng: np.random.Generator) -> np.ndarray | None:
    """(T, J) actions of two pushes in a row that leave the block FAR_DISTANCE or more from where it started, in
    T ≤ FAR_PERIODS periods, or None if ATTEMPTS draws find none. The state is left as it was."""
    start, block = env.get_state(), env.block_pos()
    try:
        for _ in range(ATTEMPTS):
            env.set_state(start)
            first = scripted_push(env, rng)
            if first is None:
                return None
            for action in first:
                env.step(action, render=False)
            second = scripted_push(env, rng)
            if second is None:
                continue
            for action in second:
                env.step(action, render=False)
            if np.linalg.norm(env.block_pos() - block) >= FAR_DISTANCE and len(first) + len(second) <= FAR_PERIODS:
                return np.concatenate([first, second])
        return None
    finally:
        env.set_state(start)


#: the scripted push of each push task
SCRIPTS = {'push': scripted_push, 'push_far': scripted_push_far}


def draw_push(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Waypoints (3, 2) of a push in a random direction over a random length, both ends inside the workspace:
    behind the block, at its face, and where the tip stops when the block has moved that length."""
    for _ in range(100):
        theta, length = rng.uniform(-np.pi, np.pi), rng.uniform(MIN_DISTANCE, MAX_DISTANCE)
        u = np.array([np.cos(theta), np.sin(theta)])
        if all(WORKSPACE[0] < np.linalg.norm(p) < WORKSPACE[1] for p in (block - 2 * CONTACT * u, block + length * u)):
            break
    return block + np.outer([-(CONTACT + 0.03), -(CONTACT - 0.005), length - CONTACT + 0.01], u)


def drive_through(env, waypoints: np.ndarray) -> np.ndarray:
    """Drive the tip through `waypoints` with env.step for at most MAX_PERIODS; the actions taken."""
    actions, w = [], 0
    for _ in range(MAX_PERIODS):
        if np.linalg.norm(env.ee_pos()[:2] - waypoints[w]) < WAYPOINT_TOLERANCE:
            if w == len(waypoints) - 1:
                break
            w += 1
        actions.append(ik_step(env, waypoints[w]))
        env.step(actions[-1], render=False)
    return np.array(actions)


def ik_step(env, target: np.ndarray) -> np.ndarray:
    """Joint step (J,) that moves the tip toward `target` (xy) by at most EE_STEP, inside the velocity limit."""
    J = env.ee_jacobian()[:2]
    error = target - env.ee_pos()[:2]
    error *= min(1.0, EE_STEP / max(float(np.linalg.norm(error)), 1e-12))
    step = J.T @ np.linalg.solve(J @ J.T + DAMPING * np.eye(2), error)
    return np.clip(step, -env.max_delta, env.max_delta)
