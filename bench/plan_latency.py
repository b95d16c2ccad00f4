"""Planner latency: one CEM plan with the shipped world model, and camera frame → published command with ROS.

    .venv/bin/python bench/plan_latency.py                          # CPU, 2 threads, 300 samples × 5 it × H 5
    .venv/bin/python bench/plan_latency.py --config config/planner.yaml --threads 1   # the deployed search, 1 core
    .venv/bin/python bench/plan_latency.py --config config/planner.yaml --threads 1 --compare-runtimes
                                                                    # eager torch, inductor, ONNX Runtime in turn
    python3 bench/plan_latency.py --device cuda --runtime compile   # GPU (needs only torch + safetensors + yaml)
    .venv/bin/python bench/plan_latency.py --ros --config config/planner.yaml --threads 1 [--runtime R]
                                                                    # sim_arm + planner processes, frame → command

The CEM part times `LatentMPC.plan` (encode the frame + plan) and the plan alone; with `cem.anticipate` also the
search made ahead of each frame (`LatentMPC.prepare`), and the compute per frame (both); `--runtime` runs the
rollout by another `cem.runtime` than the searched settings', `--compare-runtimes` by each of them, planning in turn
on the same frames in one process (ratios that machine noise leaves alone). The ROS part starts sim_arm and planner
as real processes, gives a goal image, and measures, for each /jepa_agent/plan message (stamped with the
camera frame it was planned from), its arrival time minus that stamp: the camera-frame-to-command latency. It splits
that into the sim's camera latency (the frame's arrival at a subscriber minus its stamp) and the planner's share
(frame arrival → command).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUNTIME_TEXT = {'torch': ', eager torch', 'compile': ', compiled', 'onnxruntime': ', ONNX Runtime'}
RUNTIME_ROW = {'torch': ('', 0), 'compile': ('_compiled', 1), 'onnxruntime': ('_onnxruntime', 2)}  # name, order


def percentiles(values_ms: list[float]) -> dict[str, float]:
    return {'p50': round(float(np.percentile(values_ms, 50)), 2), 'p95': round(float(np.percentile(values_ms, 95)), 2),
            'n': len(values_ms)}


def search_settings(args):
    """The CEM search timed: all of --config's cem.*, or the deployed search with the command line's size replaced;
    run by --runtime if given."""
    from jepa_agent.planning.cli import planner_settings
    config = planner_settings(args.config)[0]
    if args.runtime:
        config = dataclasses.replace(config, runtime=args.runtime)
    if args.config is None:
        config = dataclasses.replace(config, num_samples=args.samples, num_iterations=args.iterations,
                                     horizon=args.horizon)
    return config


def bench_cem(args) -> dict:
    """Plan latency of the searched settings (see `time_searches`)."""
    return time_searches(args, {'searched': search_settings(args)})['searched']


def time_searches(args, searches: dict) -> dict[str, dict]:
    """Plan latency of each of `searches` (name -> CEMConfig) with the model of --checkpoint: one policy each,
    planning in turn on the same frames, so that machine noise hits all of them alike and their ratios hold."""
    import torch

    from jepa_agent.data.episodes import DatasetMeta
    from jepa_agent.model.checkpoint import load_checkpoint
    from jepa_agent.model.devices import resolve_device
    from jepa_agent.planning.constraints import JointLimits
    from jepa_agent.planning.agent import Frame
    from jepa_agent.planning.mpc import LatentMPC

    device = resolve_device(args.device)
    if device.type == 'cpu':
        torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint, device)
    trained_on = DatasetMeta.from_dict(meta)
    limits = JointLimits.of(trained_on.robot, 1.0 / trained_on.rate_hz)
    policies = {name: LatentMPC(model, limits, config) for name, config in searches.items()}
    rng = np.random.default_rng(0)
    size = model.config.image_size
    frames = rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8)
    q, in_flight = (limits.lower + limits.upper) / 2, np.zeros((0, limits.n_joints))
    times = {name: ([], [], []) for name in searches}                 # encode + plan, plan, search ahead (ms)
    for mpc in policies.values():
        mpc.set_goal(frames[0])
    for i in range(args.warmup + args.repeats):
        seen = [Frame(frames[i % 8], float(i))]
        for name, mpc in policies.items():
            start = time.perf_counter()
            plan = mpc.plan(seen, q, in_flight)     # with cem.anticipate: continues the search made ahead of it
            elapsed = time.perf_counter() - start
            if plan is None:
                raise RuntimeError('no plan from the latent MPC')
            start = time.perf_counter()
            mpc.prepare(seen, q, in_flight)         # the next frame's search, ahead of it (cem.anticipate)
            if i >= args.warmup:
                for series, ms in zip(times[name], (elapsed, plan.latency_s, time.perf_counter() - start)):
                    series.append(ms * 1e3)
    threads = torch.get_num_threads()
    device_name = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'CPU, {threads} thread{"s" if threads > 1 else ""}'
    return {name: {
        'device': device_name, 'model': repr(model), 'samples': c.num_samples, 'iterations': c.num_iterations,
        'horizon': c.horizon, 'population_decay': c.population_decay, 'elite_reuse': c.elite_reuse,
        'anticipate': c.anticipate, 'frame_iterations': c.frame_iterations, 'runtime': c.runtime,
        'state_cost_weight': c.state_cost_weight, 'plan_ms': percentiles(plan_ms),
        'search_ahead_ms': percentiles(ahead_ms) if c.anticipate else None,
        'per_frame_ms': percentiles(np.add(act_ms, ahead_ms)), 'encode_and_plan_ms': percentiles(act_ms),
        'timed_beside': [other for other in searches if other != name]}
        for (name, c), (act_ms, plan_ms, ahead_ms) in zip(searches.items(), times.values())}


def bench_ros(args) -> dict:
    import subprocess

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from trajectory_msgs.msg import JointTrajectory

    from jepa_agent.ros.conversions import rgb_to_image
    from jepa_agent.ros.qos import LATCHED, RELIABLE, SENSOR
    from jepa_agent.sim import make_env

    os.environ.setdefault('ROS_DOMAIN_ID', str(90 + os.getpid() % 10))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    seed = 4321
    env = make_env()
    env.reset(seed)
    goal = env.sample_goal(seed)

    def start(name, *params, params_file=None):
        cmd = [sys.executable, '-m', f'jepa_agent.nodes.{name}', '--ros-args']
        cmd += ['--params-file', params_file] if params_file else []
        for p in params:
            cmd += ['-p', p]
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    search = (f'cem.num_samples:={args.samples}', f'cem.num_iterations:={args.iterations}',
              f'cem.horizon:={args.horizon}')
    procs = [start('sim_arm', f'seed:={seed}'),
             start('planner', f'checkpoint:={args.checkpoint}', f'threads:={args.threads}',
                   *(() if args.config else search), *((f'cem.runtime:={args.runtime}',) if args.runtime else ()),
                   params_file=args.config)]
    rclpy.init()
    node = rclpy.create_node('plan_latency_bench')
    latencies, commands, arrived = [], [], {}       # latencies: (exposure → command, arrival → command) ms
    stamp_ms = lambda m: m.header.stamp.sec * 1e3 + m.header.stamp.nanosec / 1e6  # noqa: E731
    now_ms = lambda: node.get_clock().now().nanoseconds / 1e6  # noqa: E731

    def on_plan(msg: JointTrajectory) -> None:
        if stamp_ms(msg) in arrived:                      # the frame planned from, as it reached subscribers
            latencies.append((now_ms() - stamp_ms(msg), now_ms() - arrived[stamp_ms(msg)]))

    node.create_subscription(JointTrajectory, '/jepa_agent/plan', on_plan, RELIABLE)
    node.create_subscription(Image, '/camera/image_raw', lambda m: arrived.update({stamp_ms(m): now_ms()}), SENSOR)
    node.create_subscription(JointTrajectory, '/arm_controller/joint_trajectory',
                             lambda m: commands.append(time.monotonic()), RELIABLE)
    goal_pub = node.create_publisher(Image, '/jepa_agent/goal_image', LATCHED)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60
        while goal_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        goal_pub.publish(rgb_to_image(goal.image))
        while not latencies and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        latencies.clear()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
    finally:
        for p in procs:
            p.send_signal(2)
        for p in procs:
            p.wait(10)
        node.destroy_node()
        rclpy.shutdown()
    if not latencies:
        raise RuntimeError('no plans arrived: is the shipped model present, and do sim_arm and planner start?')
    cem = search_settings(args)
    exposure, arrival = np.array(latencies).T
    return {'frame_to_command_ms': percentiles(exposure), 'camera_latency_ms': percentiles(exposure - arrival),
            'arrival_to_command_ms': percentiles(arrival), 'command_rate_hz': round(len(commands) / args.seconds, 2),
            'samples': cem.num_samples, 'iterations': cem.num_iterations, 'horizon': cem.horizon,
            'population_decay': cem.population_decay, 'elite_reuse': cem.elite_reuse,
            'anticipate': cem.anticipate, 'frame_iterations': cem.frame_iterations,
            'runtime': cem.runtime,
            'planner_threads': args.threads, 'cpu_cores': os.cpu_count()}


def main() -> int:
    from jepa_agent.model.devices import DEVICE_HELP, check_device
    from jepa_agent.planning.cem import RUNTIMES
    from jepa_agent.resources import model_path
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoint', default=str(model_path('reach_64px')))
    parser.add_argument('--device', type=check_device, default='cpu', help=DEVICE_HELP)
    parser.add_argument('--threads', type=int, default=2, help='CPU threads for inference (also the ROS planner\'s)')
    parser.add_argument('--samples', type=int, default=300)
    parser.add_argument('--iterations', type=int, default=5)
    parser.add_argument('--horizon', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--runtime', choices=RUNTIMES, default=None,
                        help="what runs the rollout (cem.runtime; default: the searched settings')")
    parser.add_argument('--compare-runtimes', action='store_true',
                        help='time the search with every cem.runtime, planning in turn in one run (not with --ros)')
    parser.add_argument('--ros', action='store_true', help='measure camera frame → command with real processes')
    parser.add_argument('--seconds', type=float, default=20.0, help='ROS measurement duration')
    parser.add_argument('--config', default=None, help='planner parameter file whose cem.* search to time')
    parser.add_argument('--json', default=None, help='also write the result here')
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    if args.compare_runtimes and (args.ros or args.runtime):
        parser.error('--compare-runtimes times every runtime in one process: not with --ros or --runtime')
    if args.compare_runtimes:
        config = search_settings(args)
        results = time_searches(args, {runtime: dataclasses.replace(config, runtime=runtime) for runtime in RUNTIMES})
        eager = results['torch']['per_frame_ms']['p50']
        for result in results.values():
            result['eager_over_this'] = round(eager / result['per_frame_ms']['p50'], 2)
    else:
        result = bench_ros(args) if args.ros else bench_cem(args)
        results = {result['runtime']: result}
    for result in results.values():
        result['date'] = time.strftime('%Y-%m-%d', time.gmtime())
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + '\n')
    for result in results.values() if args.record else ():
        record_result(args, result)
    return 0


def search_text(result: dict) -> str:
    """'CEM 100 × 4 × H5, population decay 2, 10 reused elites, compiled' from a result."""
    text = f"CEM {result['samples']} × {result['iterations']} × H{result['horizon']}"
    if result['population_decay'] != 1:
        text += f", population decay {result['population_decay']:g}"
    if result['elite_reuse']:
        text += f", {result['elite_reuse']} reused elites"
    if result.get('anticipate'):
        n = result['frame_iterations']
        text += f", searched ahead, {n} iteration{'s' if n > 1 else ''} on the frame"
    return text + RUNTIME_TEXT[result['runtime']]


def deployed_label(args, result: dict) -> str:
    """' (deployed)' for --config's search as configured, ' (the deployed search)' when --runtime replaced its
    runtime."""
    from jepa_agent.planning.cli import planner_settings
    if not args.config:
        return ''
    return ' (deployed)' if result['runtime'] == planner_settings(args.config)[0].runtime else ' (the deployed search)'


def record_result(args, result: dict) -> None:
    from results import record
    runtime = RUNTIME_ROW[result['runtime']]                    # a row of its own beside the eager one
    if args.ros:
        ms = result['frame_to_command_ms']
        camera, node = result['camera_latency_ms'], result['arrival_to_command_ms']
        record('frame_to_command' + runtime[0], 'camera frame (its exposure stamp) → published command (sim_arm + '
               'planner processes)', f"p50 {ms['p50']:.0f} ms / p95 {ms['p95']:.0f} ms: the sim's camera latency p50 "
               f"{camera['p50']:.0f} ms, then frame arrival → command p50 {node['p50']:.0f} / p95 {node['p95']:.0f}"
               f" ms; {result['command_rate_hz']} commands/s "
               f"({search_text(result)})", 'p95 ≤ 60 ms',
               result, order=80 + runtime[1])
        return
    plan, total, per_frame = result['plan_ms'], result['encode_and_plan_ms'], result['per_frame_ms']
    search = search_text(result)
    name = ('plan_latency_deployed' if args.config else 'plan_latency') + runtime[0]
    if result['anticipate']:
        text = (f"on the frame p50 {total['p50']:.1f} ms / p95 {total['p95']:.1f} ms with encoding (its search "
                f"p50 {plan['p50']:.1f} ms), searched ahead p50 {result['search_ahead_ms']['p50']:.1f} ms: "
                f"p50 {per_frame['p50']:.1f} ms of compute per frame")
    else:
        text = f"p50 {plan['p50']:.1f} ms / p95 {plan['p95']:.1f} ms (with encoding p50 {total['p50']:.1f} ms)"
    if 'eager_over_this' in result:
        text += f" (eager torch / this: ×{result['eager_over_this']:.2f}, the runtimes planning in turn in one run)"
    record(name, f"plan latency, {search}{deployed_label(args, result)}, {result['device']}", text,
           '≤ 33 ms p50 per frame on one core' if args.config else '—', result,
           order=(71 if args.config else 70) + 3 * runtime[1])


if __name__ == '__main__':
    sys.exit(main())
