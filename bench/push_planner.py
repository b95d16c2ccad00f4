"""What the push planner does once its model foresees pushes: eval-planner's push episodes (the planner node's agent
loop in simulated time: latency, command gate, trajectory controller) with CEM over a block model learnt from the
true state, no images. It separates the planner's and the data's share of the push bar from the world model's
(docs/model.md, "What pushing takes from a model").

    .venv/bin/python bench/push_planner.py --episodes 50 --seed 9000 --play-episodes 500 --record

Collects play episodes without images (`collect-sim --mode steps --source play`'s policy, physics only), fits an
MLP that predicts the block's motion over one step of PERIODS control periods from the tip's path relative to the
block, then plans with it (the block's pose read from the sim, the tip from the arm's kinematics) and, as the
reference, with a block that never moves. The cost is the one a goal image implies: the block's distance to its goal
plus TIP_WEIGHT × the tip's.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jepa_agent.data.babble import BabbleConfig                                     # noqa: E402
from jepa_agent.data.collect import make_policy                                      # noqa: E402
from jepa_agent.planning.agent import plan_start                                     # noqa: E402
from jepa_agent.planning.cem import CEMConfig, CEMPlanner, step_weights               # noqa: E402
from jepa_agent.planning.cli import planner_settings                                  # noqa: E402
from jepa_agent.planning.closed_loop import (CEILING_LATENCY_S, Baseline, PlanarKinematics, env_limits,  # noqa: E402
                                             make_agent)
from jepa_agent.planning.evaluate import episode_steps, evaluate, goal_seeds, summarize  # noqa: E402
from jepa_agent.sim import ArmEnv, make_env                                          # noqa: E402

PERIODS = 5            # control periods per planned step and per model step
HORIZON = 10           # planned steps (5 s ahead)
TIP_WEIGHT = 0.5
CM = 100.0             # the model works in centimetres
SEARCH = {'horizon': HORIZON, 'num_samples': 256, 'num_iterations': 4, 'num_elites': 25, 'num_retained': 10,
          'init_std': 0.5, 'step_weighting': 'linear', 'anticipate': False, 'limit_margin': 0.0,
          'state_cost_weight': 0.0}


def block_pose(env: ArmEnv) -> np.ndarray:
    """x, y (m) and yaw (rad) of the block."""
    p = env.block_pose()
    return np.array([p[0], p[1], 2 * np.arctan2(p[6], p[3])])


def collect(env: ArmEnv, first: int, episodes: int, steps: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Tip xy (E, T, 2) and block pose (E, T, 3) of play episodes, one env.step per period, no rendering."""
    tips, blocks = np.zeros((episodes, steps, 2)), np.zeros((episodes, steps, 3))
    for e in range(episodes):
        obs = env.reset(first + e, render=False)
        policy = make_policy(env, 'play', BabbleConfig(seed=first + e))
        for t in range(steps):
            tips[e, t], blocks[e, t] = env.ee_pos()[:2], block_pose(env)
            target = env.clip_targets(policy.next_target(obs.qpos, env.control_dt), reference=obs.qpos)
            obs = env.step(target - obs.qpos, render=False)
    return tips, blocks


class BlockModel(nn.Module):
    """Block pose after PERIODS periods from its pose now and the tip's positions one period ago, now and over the
    next PERIODS periods, all in the block's frame (a push depends on where the tip is relative to the block, not on
    where both are: this learns pushes from tens of play episodes, absolute coordinates need ten times as many)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * (PERIODS + 2), hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 3))

    def forward(self, block: torch.Tensor, tips: torch.Tensor) -> torch.Tensor:
        """block (N, 3), tips (N, PERIODS + 2, 2) → block (N, 3)."""
        yaw = square_yaw(block[:, 2])                            # a square block looks the same every 90°
        cos, sin = yaw.cos()[:, None], yaw.sin()[:, None]
        x, y = (tips - block[:, None, :2]).unbind(-1)
        out = self.net(torch.cat([cos * x + sin * y, cos * y - sin * x], -1) * CM)
        dx, dy = out[:, :1] / CM, out[:, 1:2] / CM
        return block + torch.cat([cos * dx - sin * dy, sin * dx + cos * dy, out[:, 2:] / 10], -1)


def square_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """Yaw of a square folded into [-45°, 45°)."""
    return torch.remainder(yaw + torch.pi / 4, torch.pi / 2) - torch.pi / 4


def windows(tips: np.ndarray, blocks: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(block now, tip path, block PERIODS later) of every window of the episodes."""
    starts = np.arange(1, tips.shape[1] - PERIODS)
    path = np.stack([tips[:, s - 1:s + PERIODS + 1] for s in starts], 1).reshape(-1, PERIODS + 2, 2)
    return tuple(torch.as_tensor(x, dtype=torch.float32) for x in
                 (blocks[:, starts].reshape(-1, 3), path, blocks[:, starts + PERIODS].reshape(-1, 3)))


def fit(model: BlockModel, train: tuple, held_out: tuple, steps: int) -> dict:
    """Fit on `train` windows; errors (cm) on `held_out` ones where the block moves > 1 cm, against "it stays"."""
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    for _ in range(steps):
        i = torch.randint(0, len(train[0]), (512,))
        error = model(train[0][i], train[1][i]) - train[2][i]
        loss = (error[:, :2] * CM).pow(2).sum(-1).mean() + (square_yaw(error[:, 2]) * 10).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        block, path, after = held_out
        moved = (after[:, :2] - block[:, :2]).norm(dim=-1) * CM
        error = (model(block, path)[:, :2] - after[:, :2]).norm(dim=-1) * CM
    moving = moved > 1.0
    return {'held_out_windows': len(moved), 'moving_fraction': round(float(moving.float().mean()), 3),
            'error_cm_where_moving': round(float(error[moving].mean()), 2),
            'stays_cm_where_moving': round(float(moved[moving].mean()), 2)}


class BlockModelPolicy(Baseline):
    """CEM over steps of PERIODS periods, scoring the tip path (the arm's kinematics between planned targets) and
    the block `model` predicts (None: the block stays where it is)."""

    periods_per_step = PERIODS
    charged_latency_s = CEILING_LATENCY_S

    def __init__(self, env: ArmEnv, model: BlockModel | None, cem: CEMConfig):
        """`cem`: the planner node's search; SEARCH replaces its size, horizon and cost terms."""
        cem = dataclasses.replace(cem, **SEARCH, trust_region=cem.trust_region * PERIODS)
        self.env, self.model = env, model
        self.planner = CEMPlanner(cem, env_limits(env).per_step(PERIODS))
        self.kinematics, self.weights = PlanarKinematics(env), step_weights(HORIZON, 'linear')
        self.fractions = torch.arange(1, PERIODS + 1, dtype=torch.float32)[:, None] / PERIODS

    def set_goal(self, goal) -> None:
        self.block_goal = torch.as_tensor(goal.block_pos, dtype=torch.float32)
        self.tip_goal = torch.as_tensor(goal.ee_pos[:2], dtype=torch.float32)
        self.previous_q = None
        self.planner.reset()

    def plan(self, frames, q: np.ndarray, in_flight: np.ndarray, shift: int = 1):
        start = torch.as_tensor(plan_start(q, in_flight), dtype=torch.float32)
        # the arm where the last plan measured it stands in for where it was a period before the plan's start
        before = torch.as_tensor(q if self.previous_q is None else self.previous_q, dtype=torch.float32)
        self.previous_q = q.copy()
        block = torch.as_tensor(block_pose(self.env), dtype=torch.float32)

        def cost(actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            n = len(targets)
            corners = torch.cat([start.expand(n, 1, -1), targets], 1)                         # (N, H + 1, J)
            periods = corners[:, :-1, None] + (corners[:, 1:, None] - corners[:, :-1, None]) * self.fractions
            tips = self.kinematics(torch.cat([before.expand(n, 1, -1), start.expand(n, 1, -1),
                                              periods.flatten(1, 2)], 1))                    # (N, H·P + 2, 2)
            b, steps = block.expand(n, 3), []
            for h in range(HORIZON):
                if self.model is not None:
                    b = self.model(b, tips[:, h * PERIODS:(h + 1) * PERIODS + 2])
                steps.append((b[:, :2] - self.block_goal).norm(dim=-1)
                             + TIP_WEIGHT * (tips[:, (h + 1) * PERIODS + 1] - self.tip_goal).norm(dim=-1))
            return torch.stack(steps, 1) @ self.weights

        with torch.no_grad():
            return self.planner.plan(cost, start.numpy(), shift=shift)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--episodes', type=int, default=50, help='push goals')
    parser.add_argument('--seed', type=int, default=9000, help='first goal seed')
    parser.add_argument('--play-episodes', type=int, default=500, help='play episodes (200 periods) to learn from')
    parser.add_argument('--held-out-episodes', type=int, default=20, help='play episodes that score the block model')
    parser.add_argument('--fit-steps', type=int, default=6000)
    parser.add_argument('--record', action='store_true', help='write bench/results/push_planner.json')
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = make_env(task='push')
    cem, agent_config = planner_settings(None)
    started = time.perf_counter()
    tips, blocks = collect(env, 600000, args.play_episodes + args.held_out_episodes)
    split = args.play_episodes
    torch.manual_seed(0)                                         # the same weights and batches every run
    model = BlockModel()
    quality = fit(model, windows(tips[:split], blocks[:split]), windows(tips[split:], blocks[split:]), args.fit_steps)
    model.eval()
    print(f'block model from {split} play episodes ({time.perf_counter() - started:.0f} s): {quality}')
    seeds = goal_seeds(env, args.seed, args.episodes, 'push')
    summaries = {}
    for name, block_model in (('learnt', model), ('stays', None)):
        agent = make_agent(BlockModelPolicy(env, block_model, cem), env, HORIZON, agent_config)
        summaries[name] = summarize(evaluate(env, agent, seeds, 'push', episode_steps('push')))
        s = summaries[name]
        print(f'{name:>7}: {round(s["success_rate"] * s["episodes"])}/{s["episodes"]} pushed (held '
              f'{s["held_rate"]:.0%}), final distance p50 {s["final_distance_m"]["p50"] * 100:.1f} cm, '
              f'{s["commands_over_velocity_limit"]} commands over the velocity limit')
    if args.record:
        from results import record
        learnt, stays = summaries['learnt'], summaries['stays']
        result = (f'seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} goals): **{learnt["success_rate"]:.0%}** with a block '
                  f'model learnt from {split} play episodes (error where the block moves '
                  f'{quality["error_cm_where_moving"]} cm, "it stays" {quality["stays_cm_where_moving"]} cm); '
                  f'{stays["success_rate"]:.0%} with a block that never moves; '
                  f'{learnt["commands_over_velocity_limit"]} commands over the velocity limit')
        record('push_planner', 'push goals, the same agent loop, planned over a block model learnt from the true '
               'state (no images): what the planner does once its model foresees pushes', result,
               'reference for the push bar (≥ 80 %)', {'block_model': quality, **summaries}, order=53)
    return 0


if __name__ == '__main__':
    sys.exit(main())
