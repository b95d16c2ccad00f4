"""Sim throughput: env steps/s (physics only and with rendering) and render ms/frame at each image size.

    .venv/bin/python bench/sim_rate.py                    # 64 and 224 px, best of 5 runs of 1 s each
    .venv/bin/python bench/sim_rate.py --sizes 64 96 224 --seconds 2 --repeats 3

One env step is one control period (1 / control_hz of simulated time) driven by motor-babbling actions; the
real-time factor is simulated seconds per wall-clock second. Each number is the best of --repeats runs, the least
disturbed by other processes on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

os.environ.setdefault('MUJOCO_GL', 'egl')
from jepa_agent.data.babble import MotorBabbler  # noqa: E402
from jepa_agent.sim import ArmEnv, make_env  # noqa: E402


def steps_per_second(env: ArmEnv, seconds: float, render: bool) -> float:
    """Env steps per wall-clock second over about `seconds`."""
    babbler = MotorBabbler(env.lower, env.upper, env.velocity_limit)
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or steps < 10:
        q = env.joint_positions()
        env.step(babbler.next_target(q, env.control_dt) - q, render=render)
        steps += 1
    return steps / elapsed


def render_ms(env: ArmEnv, seconds: float) -> float:
    """Median milliseconds per rendered frame."""
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 10:
        t = time.perf_counter()
        env.render()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 224], help='image sizes (px)')
    parser.add_argument('--seconds', type=float, default=1.0, help='duration of each run')
    parser.add_argument('--repeats', type=int, default=5, help='runs per measurement; the best is reported')
    parser.add_argument('--record', action='store_true', help='write bench/results/ for the README table')
    args = parser.parse_args()
    rows = []
    print(f'# sim_rate  {time.strftime("%Y-%m-%d", time.gmtime())}  {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, MUJOCO_GL={os.environ["MUJOCO_GL"]}')
    print('| image px | physics steps/s | real-time factor | steps/s with render | render ms/frame |')
    print('|---:|---:|---:|---:|---:|')
    for size in args.sizes:
        env = make_env(image_size=size)
        env.reset(0)
        env.render()   # create the GL context outside the timing
        physics = max(steps_per_second(env, args.seconds, render=False) for _ in range(args.repeats))
        rendered = max(steps_per_second(env, args.seconds, render=True) for _ in range(args.repeats))
        ms = min(render_ms(env, args.seconds) for _ in range(args.repeats))
        print(f'| {size} | {physics:.0f} | {physics * env.control_dt:.0f}x | {rendered:.0f} | {ms:.2f} |', flush=True)
        rows.append({'image_px': size, 'physics_steps_per_s': round(physics),
                     'steps_per_s_with_render': round(rendered), 'render_ms': round(ms, 2)})
        env.close()
    if args.record:
        from results import record
        record('sim_rate', 'sim: env steps/s and render time', '; '.join(
            f"{r['image_px']} px: {r['physics_steps_per_s']} physics steps/s, {r['steps_per_s_with_render']} with "
            f"render, {r['render_ms']:.1f} ms/frame" for r in rows), '—', {'rows': rows}, order=10)


if __name__ == '__main__':
    main()
