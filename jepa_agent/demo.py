"""`jepa-agent demo`: the product in one command — the sim arm reaches goal views with the latent planner.

    jepa-agent demo                                   # shipped model, 5 goals, summary in demo_out/
    jepa-agent demo --goals 10 --seed 1010 --checkpoint runs/reach
    jepa-agent demo --learn --budget-minutes 20       # from scratch: babble + record, train, then plan
    jepa-agent demo --task push --goals 5             # push the block to where a scripted push left it
    jepa-agent demo --config config/examples/arm4.yaml --checkpoint runs/arm4   # another arm, by its params file

The sim arm and the planner run as real ROS 2 processes (the `sim_arm` and `planner` nodes, exactly what
`ros2 launch jepa_agent sim_demo.launch.py` starts); this process only resets the scene through `/sim_arm/reset`,
publishes each goal image on /jepa_agent/goal_image, and scores the arm from /joint_states (push: the block from
sim/block_pose). Goals are those of `eval-planner`: from seed on, each scene and a reachable pose drawn from the same
seed (push: the end state of a scripted push, over twice its periods), never seen in training. All DDS
traffic stays on this machine in a domain of its own (not your ROS_DOMAIN_ID), so the demo can never command a real
arm; pass --ros-domain-id to watch it from other ROS tools.
`--learn` first collects motor-babbling episodes in the sim (the explorer's policy, `data collect-sim`), trains a
world model on them (`jepa-agent train`) within the time budget, then runs the same demo with that model.
`--config` runs another arm: every node gets that params file after its config/<node>.yaml (as the launch files'
`params_file`), and its sim_arm section sets the scene the goals are drawn in (`collect-sim` and `eval-planner` read
it the same way).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from jepa_agent.sim.arm_env import TASKS

#: the demo's private ROS domain is drawn from here (0..101 are safe for every DDS port mapping)
DOMAIN_RANGE = (30, 101)
#: frames per babbling episode of `demo --learn` and `record_babbling`
EPISODE_FRAMES = 200
#: scene and explorer seed of `demo --learn`'s recording through the nodes (its collect-sim episodes use 0, 1, ...;
#: goals 1000 on)
LEARN_SEED = 500


def write_goal_image(seed: int, path: str | Path, image_size: int = 64, task: str = 'reach') -> Path:
    """Render the goal of scene `seed` (the sim_arm node's scene with the same seed) to a PNG file.

    Same convention as eval-planner: reset to `seed`, then `sample_goal(seed)` draws a reachable pose.
    """
    from PIL import Image

    from jepa_agent.sim.arm_env import make_env
    env = make_env(image_size=image_size, task=task)
    try:
        env.reset(seed, render=False)
        goal = env.sample_goal(seed, task)
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(goal.image).save(path)
    return path


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser('demo', help='the sim arm reaching goal images with the world-model planner',
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=None, help='world model (default: the shipped reach_64px)')
    parser.add_argument('--goals', type=int, default=5, help='number of goals (default 5)')
    parser.add_argument('--seed', type=int, default=1000, help='first goal seed (eval-planner goals: 1000 on)')
    parser.add_argument('--goal-timeout', type=float, default=12.0,
                        help='seconds per goal; held = within tolerance for the last second (default 12)')
    parser.add_argument('--out', default='demo_out', help='folder for summary.png, episodes.gif, demo.json, logs')
    parser.add_argument('--record', type=int, default=3, help='goals shown in episodes.gif (default 3)')
    parser.add_argument('--ros-domain-id', type=int, default=None,
                        help='ROS domain for the demo (default: a random private one, never your ROS_DOMAIN_ID)')
    parser.add_argument('--task', choices=TASKS, default='reach',
                        help="goal kind (default reach); push and push_far are scored on the block at the end")
    parser.add_argument('--config', type=Path, default=None,
                        help="another arm's params file in the nodes' layout (e.g. config/examples/arm4.yaml), given "
                             'to every node; its sim_arm section sets the scene')
    parser.add_argument('--learn', action='store_true', help='learn a model from scratch first (see above)')
    parser.add_argument('--budget-minutes', type=float, default=20.0,
                        help='--learn: total time for exploring, training and the demo (default 20)')
    parser.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    if args.goals < 1 or args.goal_timeout <= 0:
        print('jepa-agent demo: --goals must be >= 1 and --goal-timeout > 0', file=sys.stderr)
        return 2
    domain = args.ros_domain_id if args.ros_domain_id is not None else private_domain()
    began = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from jepa_agent.config import ConfigError
    from jepa_agent.planning.evaluate import goal_seeds
    from jepa_agent.resources import model_path
    from jepa_agent.sim.arm_env import make_env, scene_params
    try:
        scene = {**scene_params(args.config), 'task': args.task}
        env = make_env(**scene)
        try:
            seeds = goal_seeds(env, args.seed, args.goals, args.task)
        finally:
            env.close()
    except (ConfigError, ValueError) as exc:             # e.g. push goals on an arm without a block
        print(f'jepa-agent demo: {exc}', file=sys.stderr)
        return 2
    checkpoint = Path(args.checkpoint) if args.checkpoint else model_path('reach_64px')
    if args.learn:
        demo_minutes = (args.goals * args.goal_timeout + 60) / 60
        checkpoint = learn_from_scratch(out, max(args.budget_minutes - demo_minutes, 1.0), args.seed, args.config)
    try:
        results, timings = run_demo(checkpoint, seeds, args.goal_timeout, args.record, out, domain, scene,
                                    args.config)
    except (RuntimeError, TimeoutError) as exc:
        print(f'jepa-agent demo: {exc}', file=sys.stderr)
        return 1
    report_results(results, timings, checkpoint, out, time.monotonic() - began, args.task)
    return 0


def private_domain() -> int:
    """A random ROS domain in DOMAIN_RANGE other than the user's ROS_DOMAIN_ID."""
    user = os.environ.get('ROS_DOMAIN_ID', '')
    choices = [d for d in range(DOMAIN_RANGE[0], DOMAIN_RANGE[1] + 1) if str(d) != user.strip()]
    return random.choice(choices)


class NodeProcesses:
    """Nodes as child processes in a private DDS domain, each with its shipped config file (as the launch files),
    then `params_file` (another arm's) when given, then `-p` overrides, logging to `log_dir/<node>.log`; `stop()`
    shuts them down cleanly (SIGINT)."""

    def __init__(self, params: dict[str, list[str]], log_dir: Path, domain: int, params_file: Path | None = None):
        from jepa_agent.resources import config_path
        self.log_dir = log_dir
        env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain),
                   PYTHONUNBUFFERED='1')   # the children's environment; this process's own is left as it is
        env.setdefault('MUJOCO_GL', 'egl')
        log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        for name, values in params.items():
            cmd = [sys.executable, '-m', f'jepa_agent.nodes.{name}', '--ros-args',
                   '--params-file', str(config_path(f'{name}.yaml'))]
            if params_file is not None:
                cmd += ['--params-file', str(params_file)]
            for value in values:
                cmd += ['-p', value]
            with open(log_dir / f'{name}.log', 'w') as log:
                self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(2)   # SIGINT: the nodes' clean shutdown
        for name, proc in self.procs.items():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode != 0:
                print(f'warning: {name} exited with code {proc.returncode}; see {self.log_dir / name}.log',
                      file=sys.stderr)


def complete_episodes(root: Path) -> int:
    """Episodes of the dataset at `root` that were closed normally (0 while there is no dataset)."""
    from jepa_agent.data.episode_reader import EpisodeReader
    from jepa_agent.data.episodes import DatasetError, episode_dirs
    done = 0
    for path in episode_dirs(root) if (root / 'dataset.json').exists() else []:
        try:
            done += EpisodeReader(path).status == 'complete'
        except (DatasetError, OSError):   # an episode being written may not be readable yet
            pass
    return done


def run_nodes_until(params: dict[str, list[str]], log_dir: Path, done, timeout_s: float = math.inf,
                    poll_s: float = 1.0, params_file: Path | None = None) -> None:
    """Run the nodes of `params` (as NodeProcesses, with `params_file`) in a private domain until `done()` is true or
    `timeout_s` has passed, polling every `poll_s`; then stop them. RuntimeError if a node exits meanwhile."""
    nodes = NodeProcesses(params, log_dir, private_domain(), params_file)
    start = time.monotonic()
    try:
        while not done() and time.monotonic() - start < timeout_s:
            if any(proc.poll() is not None for proc in nodes.procs.values()):
                raise RuntimeError(f'a node exited; logs in {log_dir}')
            time.sleep(poll_s)
    finally:
        nodes.stop()


def record_babbling(root: Path, seed: int, log_dir: Path, episodes: int, timeout_s: float = math.inf,
                    params_file: Path | None = None) -> int:
    """Motor babbling recorded through the real nodes (sim_arm + explorer + recorder in auto mode, episodes of 200
    frames; another arm: its `params_file`) until `episodes` episodes are complete or `timeout_s` has passed;
    returns the complete episodes."""
    run_nodes_until({'sim_arm': [f'seed:={seed}'], 'explorer': [f'seed:={seed}'],
                     'recorder': [f'dataset_dir:={root}', f'episode_frames:={EPISODE_FRAMES}', 'task:=babble']},
                    log_dir, lambda: complete_episodes(root) >= episodes, timeout_s, params_file=params_file)
    return complete_episodes(root)


# -- the demo proper ---------------------------------------------------------------------------------------------
class DemoSession:
    """sim_arm + planner as child processes, driven and watched by a small node in this process."""

    def __init__(self, checkpoint: Path, seed: int, log_dir: Path, domain: int, scene: dict | None = None,
                 params_file: Path | None = None):
        """`scene`: the ArmEnvConfig parameters of the sim (those of `params_file`'s sim_arm section, and the task)."""
        self.checkpoint, self.seed, self.log_dir, self.domain = checkpoint, seed, log_dir, domain
        self.scene, self.params_file = dict(scene or {}), params_file
        self.task = self.scene.get('task', 'reach')
        self.procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._resets = 0                     # the sim's scene is seed + resets
        self.joints: np.ndarray | None = None
        self.block: np.ndarray | None = None
        self.planned: np.ndarray | None = None      # joints at the end of the planner's newest plan
        self.image: np.ndarray | None = None
        self.planner_status: dict[str, str] = {}

    def __enter__(self) -> DemoSession:
        self.nodes = NodeProcesses({'sim_arm': [f'seed:={self.seed}'], 'planner': [f'checkpoint:={self.checkpoint}']},
                                   self.log_dir, self.domain, self.params_file)
        self.procs = self.nodes.procs
        try:
            self._start_probe()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_probe(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image, JointState
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        from jepa_agent.data.messages import (MessageError, image_to_rgb, joint_positions, position_xy,
                                              trajectory_points)
        from jepa_agent.ros import topics
        from jepa_agent.ros.qos import LATCHED, RELIABLE, SENSOR
        from jepa_agent.sim.arm_env import make_env

        self.env = make_env(**self.scene)
        names = self.env.joint_names
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain)   # finds the LOCALHOST-only children too
        self.node = rclpy.create_node('demo', context=self.context)

        def keep(attribute: str, convert):
            """A callback that stores convert(msg) as self.<attribute>, skipping messages it cannot convert."""
            def callback(msg):
                try:
                    value = convert(msg)
                except (MessageError, IndexError):
                    return
                with self._lock:
                    setattr(self, attribute, value)
            return callback

        def on_diagnostics(msg):
            for status in msg.status:
                if status.name == 'planner':
                    with self._lock:
                        self.planner_status = {kv.key: kv.value for kv in status.values}

        subscribe = self.node.create_subscription
        subscribe(JointState, topics.JOINT_STATES, keep('joints', lambda msg: joint_positions(msg, names)), RELIABLE)
        subscribe(Image, topics.IMAGE, keep('image', image_to_rgb), SENSOR)
        subscribe(PoseStamped, topics.BLOCK_POSE, keep('block', position_xy), RELIABLE)
        subscribe(JointTrajectory, topics.PLAN, keep('planned', lambda msg: trajectory_points(msg, names)[1][-1]),
                  RELIABLE)                                                     # joints at the end of the plan
        subscribe(DiagnosticArray, topics.DIAGNOSTICS, on_diagnostics, RELIABLE)
        self.goal_pub = self.node.create_publisher(Image, topics.GOAL_IMAGE, LATCHED)
        self.reset_client = self.node.create_client(Trigger, '/sim_arm/reset')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()
        self._wait(lambda: self.joints is not None and self.image is not None and self.planner_status
                   and (self.task == 'reach' or self.block is not None), 120, 'the sim arm and the planner to start')

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f'{name} exited with code {proc.returncode}:\n{self.log_tail(name)}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'timed out after {timeout:.0f} s waiting for {what}')
            time.sleep(0.05)

    def log_tail(self, name: str, lines: int = 15) -> str:
        return '\n'.join((self.log_dir / f'{name}.log').read_text(errors='replace').splitlines()[-lines:])

    def go_to(self, seed: int) -> None:
        """Reset the sim until its scene is `seed` (its k-th ~/reset re-seeds the scene with seed + k)."""
        from std_srvs.srv import Trigger
        while self.seed + self._resets < seed:
            future = self.reset_client.call_async(Trigger.Request())
            self._wait(future.done, 30, 'the sim reset')
            self._resets += 1

    def run_goal(self, seed: int, timeout: float, record: bool):
        """Reset to scene `seed`, send its goal image, and watch for `timeout` seconds (push: twice the scripted
        push's periods, at most). Reach: success = the end effector within tolerance for the whole last
        HOLD_WINDOW_S (held); push: the block within tolerance at the end; `touched` = within it at some point."""
        from jepa_agent.planning.closed_loop import HOLD_WINDOW_S, EpisodeResult, plan_strip
        from jepa_agent.ros.conversions import rgb_to_image
        self.go_to(seed)
        with self._lock:
            self.planned = None                     # the previous goal's plan
        self.env.reset(seed, render=False)
        goal = self.env.sample_goal(seed, self.task)
        period = self.env.control_dt
        if goal.demonstration is not None:
            timeout = min(timeout, 2 * len(goal.demonstration) * period)
        self.goal_pub.publish(rgb_to_image(goal.image))
        result = EpisodeResult(False, int(round(timeout / period)), 0.0)
        start = time.monotonic()
        reach = self.task == 'reach'
        tolerance = self.env.config.reach_tolerance if reach else self.env.config.push_tolerance
        left_at, first_touch, k = 0.0, None, 0
        while time.monotonic() - start < timeout:
            with self._lock:
                q, image, block, planned = self.joints.copy(), self.image.copy(), self.block, self.planned
            distance = float(np.linalg.norm(self.env.forward_kinematics(q) - goal.ee_pos)) if reach else \
                float(np.linalg.norm(block - goal.block_pos))
            elapsed = time.monotonic() - start
            if distance <= tolerance:
                first_touch = elapsed if first_touch is None else first_touch
            else:
                left_at = elapsed
            if record:
                self.env.mirror(q, block)           # the live scene, for the planned pose's rendering
                result.frames.append(plan_strip(self.env, image, goal.image, planned))
            k += 1
            self._wait(lambda: time.monotonic() - start >= k * period, timeout + 5, 'the next period')
        result.touched = first_touch is not None
        result.held = result.touched and left_at <= timeout - HOLD_WINDOW_S
        result.success = result.held if reach else distance <= tolerance
        result.steps = int(round(first_touch / period)) if result.touched else result.steps
        result.final_distance = distance
        return result

    def planner_timing(self) -> dict[str, float]:
        """The planner's own recent timing from its /diagnostics: plan latency and camera frame → command (ms,
        p50/p95) and commands per second."""
        with self._lock:
            status = dict(self.planner_status)
        keys = ('plan_latency_ms_p50', 'plan_latency_ms_p95', 'frame_to_command_ms_p50', 'frame_to_command_ms_p95',
                'plan_rate_hz')
        return {key: float(status.get(key, 'nan')) for key in keys}

    def __exit__(self, *exc) -> None:
        import rclpy
        self.nodes.stop()
        if getattr(self, 'executor', None) is not None:   # after the nodes: no message arrives mid-teardown
            self.executor.shutdown()
            self._spin.join(timeout=5)
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)
        if getattr(self, 'env', None) is not None:
            self.env.close()


def run_demo(checkpoint: Path, seeds: list[int], goal_timeout: float, record: int, out: Path, domain: int,
             scene: dict | None = None, params_file: Path | None = None):
    """Run one goal per seed (increasing) in the sim `scene` (ArmEnvConfig parameters, with the task; the nodes get
    `params_file` too); returns (EpisodeResults, the planner's timing per goal)."""
    if any(b <= a for a, b in zip(seeds, seeds[1:])):
        raise ValueError('seeds must increase: the sim moves on to the next scene with each reset')
    print(f'starting the sim arm and the planner ({checkpoint}) in ROS domain {domain} ...', flush=True)
    results, timings = [], []
    task = (scene or {}).get('task', 'reach')
    with DemoSession(checkpoint, seeds[0], out / 'logs', domain, scene, params_file) as session:
        for k, seed in enumerate(seeds):
            result = session.run_goal(seed, goal_timeout, record=k < record)
            timings.append(session.planner_timing())
            results.append(result)
            if task == 'reach':
                state = 'held' if result.success else 'touched, not held' if result.touched else 'missed'
            else:
                state = 'block at its goal' if result.success else 'block short of its goal'
            print(f'goal {k + 1}/{len(seeds)} (seed {seed}): {state}'
                  f'{f" (first within tolerance after {result.steps} steps)" if result.touched else ""}, '
                  f'final distance {result.final_distance * 100:.1f} cm, '
                  f'plan latency p50 {timings[-1]["plan_latency_ms_p50"]:.0f} ms', flush=True)
    return results, timings


def report_results(results, timings: list[dict[str, float]], checkpoint: Path, out: Path, seconds: float,
                   task: str = 'reach') -> None:
    from jepa_agent.planning.evaluate import summarize, write_gif, write_summary_png
    summary = summarize(results)
    summary['task'] = task
    median = {key: round(float(np.nanmedian([t[key] for t in timings])), 1) for key in timings[0]}
    summary['planner'] = {**median, 'source': 'planner node /diagnostics, median over goals'}
    summary.update(checkpoint=str(checkpoint), seconds=round(seconds, 1))
    (out / 'demo.json').write_text(json.dumps(summary, indent=2) + '\n')
    write_summary_png(out / 'summary.png', {'latent planner': summary}, {'latent planner': results},
                      f'jepa-agent demo: {len(results)} {task} goal images (sim arm + planner nodes)')
    write_gif(out / 'episodes.gif', [r for r in results if r.frames])
    success = 'held' if task == 'reach' else 'block at its goal'
    print(f'{success}: {sum(r.success for r in results)}/{len(results)} goals ({summary["success_rate"]:.0%}; touched '
          f'{summary["touched_rate"]:.0%}); plan latency p50 {median["plan_latency_ms_p50"]:.0f} ms, camera frame '
          f'-> command p50 {median["frame_to_command_ms_p50"]:.0f} ms, {median["plan_rate_hz"]:.1f} commands/s; '
          f'{seconds:.0f} s in total')
    print(f'wrote {out / "summary.png"}, {out / "episodes.gif"} (current view | goal | planned end pose), '
          f'{out / "demo.json"}')


# -- learning from scratch ---------------------------------------------------------------------------------------
def learn_from_scratch(out: Path, minutes: float, seed: int, params_file: Path | None = None) -> Path:
    """Babble + record in the sim for a quarter of `minutes`, train for the rest; returns the checkpoint. The first
    eighth is recorded through the real nodes (the data path of a real arm), the rest by `collect-sim`'s simulated
    node pipeline into the same dataset (about 15 times as many frames per minute, moving the arm alike). Another
    arm: its `params_file`, read as `collect-sim --config` reads it."""
    from jepa_agent.data.cli import collect_configs
    from jepa_agent.data.collect import collect_sim
    from jepa_agent.resources import config_path
    from jepa_agent.sim.arm_env import make_env
    from jepa_agent.training.trainer import train

    data, model = out / 'learn' / 'data', out / 'learn' / 'model'
    start = time.monotonic()
    scene, timing, babble = collect_configs(params_file)
    env = make_env(**scene)
    episodes = 0
    print(f'[learn] exploring: motor babbling through sim_arm + explorer + recorder for {minutes / 8:.1f} min, then '
          f'in simulated time until {minutes / 4:.1f} min -> {data}', flush=True)
    live = record_babbling(data, LEARN_SEED, out / 'learn' / 'logs', episodes=10**6, timeout_s=minutes * 60 / 8,
                           params_file=params_file)
    try:
        while time.monotonic() - start < minutes * 60 / 4 or episodes < 2:
            collect_sim(data, episodes=1, steps=EPISODE_FRAMES, seed=episodes, env=env, timing=timing,
                        babble=babble)                                               # goal seeds start at 1000
            episodes += 1
    finally:
        env.close()
    train_minutes = max(minutes - (time.monotonic() - start) / 60, 0.5)
    print(f'[learn] recorded {live} episodes through the nodes and {episodes} in simulated time; training for at '
          f'most {train_minutes:.1f} min -> {model}', flush=True)
    train(data, model, config_path('train.yaml'), max_minutes=train_minutes)
    return model
