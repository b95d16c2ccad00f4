"""`jepa-agent eval-planner`: closed-loop planning toward held-out goal images in the sim, with baselines.

    jepa-agent eval-planner --checkpoint models/reach_64px --episodes 50 --seed 1000 --json eval/reach.json
    jepa-agent eval-planner --task push --episodes 20 --seed 1000 --out eval/push --baseline-episodes 10

Episode i starts from `ArmEnv.reset(seed + i)` and aims at `ArmEnv.sample_goal(seed + i)`, a goal stream disjoint
from the reset/explorer streams, so goal images are never training frames. A push goal is where a scripted push from
the start state leaves the block (reachable by construction; seeds without one are passed over; push_far: two pushes
in a row), and its episode lasts twice the push's periods (at most --max-steps).
Episodes run the planner node's agent loop in simulated time on a hardware-like arm: camera frames arrive late, each
plan's measured latency is charged while the last command goes on, commands pass the command gate and a
joint_trajectory_controller with command latency. Reach success means the goal is held for the last second; push
success, the block within tolerance at the end (`held` and `touched`, reached at some point, are reported beside).
Baselines in the same run, through the same agent loop: random actions, the same CEM with the true simulator as its
model (the ceiling) and, for push goals, the scripted push's joint targets replayed open loop. Writes JSON metrics, a
PNG summary and a GIF of the first episodes (current view | goal | pose at the end of the plan) into --out.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jepa_agent.config import ConfigError, build, load_section
from jepa_agent.model.devices import DEVICE_HELP, check_device, resolve_device
from jepa_agent.planning.agent import AgentConfig
from jepa_agent.planning.cem import CEMConfig
from jepa_agent.resources import config_path, model_path
from jepa_agent.sim.arm_env import TASKS
from jepa_agent.sim.push import FAR_PERIODS


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser('eval-planner', help='closed-loop planner evaluation in the sim, with baselines',
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(model_path('reach_64px')), help='world-model checkpoint')
    parser.add_argument('--episodes', type=int, default=50, help='number of goals')
    parser.add_argument('--seed', type=int, default=1000, help='first episode seed (goals from seed..seed+N-1)')
    parser.add_argument('--task', choices=TASKS, default='reach')
    parser.add_argument('--max-steps', type=int, default=None,
                        help='control periods per episode (default: reach 120; push, push_far: twice the scripted '
                             f'push, at most {2 * FAR_PERIODS})')
    parser.add_argument('--command-latency', type=float, default=0.05,
                        help='seconds from publishing a command to its start (default 0.05)')
    parser.add_argument('--camera-latency', type=float, default=0.03,
                        help='seconds from taking a camera frame to the agent receiving it (default 0.03)')
    parser.add_argument('--plan-latency', type=float, default=None,
                        help='seconds charged per latent plan instead of its measured time: runs repeat exactly, for '
                             'comparing settings (default: the measured time, as the node spends it)')
    parser.add_argument('--json', default=None, help='metrics JSON path (default: OUT/eval_planner.json)')
    parser.add_argument('--out', default='eval_planner', help='folder for the JSON, PNG summary and GIF')
    parser.add_argument('--config', default=None, help='planner YAML (default config/planner.yaml: cem.* values); '
                        'a sim_arm section in it sets the scene (another arm: config/examples/arm4.yaml)')
    parser.add_argument('--record', type=int, default=3, help='episodes to put in the GIF')
    parser.add_argument('--baseline-episodes', type=_non_negative, default=None,
                        help='episodes per baseline (default: all; 0 skips the baselines)')
    parser.add_argument('--device', type=check_device, default='cpu', help=DEVICE_HELP)
    parser.add_argument('--threads', type=int, default=1, help='CPU threads for inference (0 = torch default)')
    parser.set_defaults(func=cmd_eval_planner)


def planner_settings(path: str | Path | None) -> tuple[CEMConfig, AgentConfig]:
    """CEM and agent settings from the planner node's YAML (the node and the CLI share one file).

    What this command reads (`cem:` and the agent's keys) is checked strictly; the planner node checks the rest of
    the section when it starts. Only a missing default file (no --config) means the defaults."""
    if path is None and not config_path('planner.yaml').exists():
        return CEMConfig(), AgentConfig()
    path = path or config_path('planner.yaml')
    params = load_section(path, 'planner')
    agent_keys = set(AgentConfig.__dataclass_fields__)
    try:
        cem = build(CEMConfig, params.get('cem'), section='planner.cem')
        agent = build(AgentConfig, {k: v for k, v in params.items() if k in agent_keys}, section='planner')
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from None
    return cem, agent


def cmd_eval_planner(args) -> int:
    import torch

    from jepa_agent.model.checkpoint import CheckpointError, load_checkpoint
    from jepa_agent.planning.closed_loop import RandomPolicy, ReplayPolicy, SimulatorPolicy, env_limits, make_agent
    from jepa_agent.planning.mpc import LatentMPC
    from jepa_agent.planning.evaluate import (episode_steps, evaluate, goal_seeds, summarize, write_gif,
                                              write_summary_png)
    from jepa_agent.sim import make_env
    from jepa_agent.sim.arm_env import scene_params

    if args.threads:
        torch.set_num_threads(args.threads)
    latencies = (args.command_latency, args.camera_latency, args.plan_latency)
    if not all(0.0 <= latency <= 2.0 for latency in latencies if latency is not None):
        print('jepa-agent eval-planner: --command-latency, --camera-latency and --plan-latency must be in [0, 2] s',
              file=sys.stderr)
        return 2
    cem, agent_config = planner_settings(args.config)
    try:
        model, _ = load_checkpoint(args.checkpoint, resolve_device(args.device))
    except (CheckpointError, ValueError) as exc:
        print(f'jepa-agent eval-planner: {exc}', file=sys.stderr)
        return 1
    try:
        env = make_env(**{**scene_params(args.config), 'image_size': model.config.image_size, 'task': args.task})
        seeds = goal_seeds(env, args.seed, args.episodes, args.task)
    except (ConfigError, ValueError) as exc:             # e.g. push goals on an arm without a block
        print(f'jepa-agent eval-planner: {exc}', file=sys.stderr)
        return 2
    max_steps = args.max_steps or episode_steps(args.task)
    baseline_seeds = seeds if args.baseline_episodes is None else seeds[:args.baseline_episodes]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def progress(name):
        return lambda i, r: print(f'[{name}] episode {i + 1}: {"success" if r.success else "failure"} '
                                  f'({"touched" if r.touched else "never reached"} after {r.steps} steps), '
                                  f'final distance {r.final_distance * 100:.1f} cm', flush=True)

    planner = LatentMPC(model, env_limits(env), cem)
    planner.charged_latency_s = args.plan_latency
    policies = {
        'latent_cem': (planner, seeds),
        'random': (RandomPolicy(env, seed=args.seed), baseline_seeds),
    }
    if args.task != 'reach':
        policies['replay'] = (ReplayPolicy(env, cem.horizon), baseline_seeds)
    policies['simulator_cem'] = (SimulatorPolicy(env, cem), baseline_seeds)
    runs = {name: evaluate(env, make_agent(policy, env, cem.horizon, agent_config, args.command_latency),
                           run_seeds, args.task, max_steps, record=args.record if name == 'latent_cem' else 0,
                           progress=progress(name), command_latency_s=args.command_latency,
                           camera_latency_s=args.camera_latency)
            for name, (policy, run_seeds) in policies.items() if run_seeds}
    summaries = {name: summarize(results) for name, results in runs.items()}
    report = {**summaries['latent_cem'], 'task': args.task, 'seed': args.seed, 'seeds': seeds,
              'max_steps': max_steps,
              'checkpoint': str(args.checkpoint), 'agent': vars(agent_config), 'cem': vars(cem),
              'command_latency_s': args.command_latency, 'camera_latency_s': args.camera_latency,
              'plan_latency_charged_s': args.plan_latency,
              'interpolate_from_desired_state': env.config.interpolate_from_desired_state,
              'baselines': {name: summary for name, summary in summaries.items() if name != 'latent_cem'}}
    json_path = Path(args.json) if args.json else out / 'eval_planner.json'
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + '\n')
    write_summary_png(out / 'summary.png', summaries, runs, f'{args.task}: {len(seeds)} held-out goals')
    write_gif(out / 'episodes.gif', runs['latent_cem'][:args.record])
    for name, summary in summaries.items():
        print(f'{name:>14}: success {summary["success_rate"]:.0%} (held {summary["held_rate"]:.0%}, touched '
              f'{summary["touched_rate"]:.0%}) over '
              f'{summary["episodes"]} episodes, '
              f'plan latency p50 {summary["plan_latency_ms"]["p50"]} ms, '
              f'fastest joint {summary["max_joint_speed_ratio"]:.2f}x its velocity limit, '
              f'{summary["commands_over_velocity_limit"]} commands over it, '
              f'block moved in {summary["block_moved_rate"]:.0%}')
    print(f'wrote {json_path}, {out / "summary.png"}, {out / "episodes.gif"}')
    return 0


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value
