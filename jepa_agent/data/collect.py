"""ROS-free data collection: exploration of the MuJoCo arm, to disk, from one of SOURCES in one of two modes.

    jepa-agent data collect-sim --out data/babble --episodes 20 --steps 200 --seed 0 --image-size 64
    jepa-agent data collect-sim --out data/stepped --mode steps --controller rate_limited   # the shipped model's data
    jepa-agent data collect-sim --out data/play --source play          # scripted pushes + babbling (or curiosity)

Sources (`make_policy`): `babble` (`MotorBabbler`), `play` (noisy scripted pushes of the block mixed with babbling,
`jepa_agent.data.play`), `curiosity` (babbling that lingers where a world model is surprised, `data.curiosity`).
Each episode's meta.json records its `source` and `contact_fraction`: the fraction of its frames whose image was
taken while the arm touched the block (`sim.contact.arm_touches_block` at the camera exposure, or at the frame's
time in `steps` mode).

`nodes` (the default) replays the explorer → sim_arm → recorder pipeline in simulated time. A recording made through
the nodes and one made this way move the arm alike between frames, because both run the same code on the same
clocks: the explorer's babbling (`MotorBabbler`) through its command gate at its own rate, the sim arm's
joint_trajectory_controller with command latency (`ControlledArm`), its camera with latency, jitter and drops
(`CameraLink`) and its 50 Hz joint states, and the recorder's synchronization of those streams into frames
(`FrameSynchronizer`). Only the clock differs: simulated time runs as fast as the CPU allows. The explorer's timer and
the camera start at random (seeded) phases, as independent processes do. `jepa-agent data info` prints the
statistics (`dataset.action_statistics`) that show a dataset moves the arm the way the nodes do.

`steps` steps the env once per frame (`ArmEnv.step`, no latency, the babbler restarting from the measured position):
idealized timing whose motions span the whole velocity range evenly (through the nodes the gate's latency margin
slows the fastest ones), which is what the shipped model was trained on. Actions are the joint motion between frames
in both modes (`jepa_agent.data.dataset`), so models trained on either predict recordings made through the nodes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_agent.command_gate import CommandGate, CommandGateConfig, CommandRefused, JointReading
from jepa_agent.config import bounded, check_ranges
from jepa_agent.data.babble import BabbleConfig, MotorBabbler
from jepa_agent.data.curiosity import CuriousBabbler, Surprise
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta, Frame
from jepa_agent.data.play import PlayConfig, PlayPolicy
from jepa_agent.data.sync import FrameSynchronizer, SyncConfig
from jepa_agent.sim.arm_env import ArmEnv
from jepa_agent.sim.camera_link import CameraLink, to_ns
from jepa_agent.sim.contact import arm_touches_block
from jepa_agent.sim.controlled_arm import ControlledArm


MODES = ('nodes', 'steps')
SOURCES = ('babble', 'play', 'curiosity')


@dataclass
class PipelineTiming:
    """Rates and delays of the simulated node pipeline; the defaults are the nodes' (sim_arm, explorer, recorder)."""

    tick_s: float = bounded(0.01, gt=0, le=0.1)
    """Physics / setpoint update period of the simulated controller (sim_arm's 1 / control_hz)."""
    joint_state_hz: float = bounded(50.0, gt=0, le=1000)
    camera_hz: float = bounded(10.0, gt=0, le=1000)
    explorer_hz: float = bounded(10.0, gt=0, le=100)
    command_latency_s: float = bounded(0.05, ge=0, le=2)
    camera_latency_s: float = bounded(0.03, ge=0, le=2)
    camera_jitter_s: float = bounded(0.01, ge=0, le=2)
    camera_drop_rate: float = bounded(0.02, ge=0, lt=1)

    def __post_init__(self):
        check_ranges(self)


def env_dataset_meta(env: ArmEnv, source: str, rate_hz: float = 10.0) -> DatasetMeta:
    """Dataset metadata describing `rate_hz` frames from `env`."""
    size = env.config.image_size
    return DatasetMeta(**dataclasses.asdict(env.robot), rate_hz=rate_hz, image_height=size, image_width=size,
                       source=source)


def make_policy(env: ArmEnv, source: str, babble: BabbleConfig, play: PlayConfig | None = None,
                surprise: Surprise | None = None):
    """The explorer's policy for `source` (see SOURCES), seeded by `babble.seed`: an object with
    `next_target(measured, dt)`. Curiosity needs `surprise`, whose observations are `env`'s renders."""
    if source == 'curiosity':
        if surprise is None:
            raise ValueError("source 'curiosity' needs a world model's surprise (surprise=...)")
        surprise.reset()
        return CuriousBabbler(env.lower, env.upper, env.velocity_limit,
                              lambda qpos: surprise.observe(env.render(), qpos), babble)
    babbler = MotorBabbler(env.lower, env.upper, env.velocity_limit, babble)
    return PlayPolicy(env, babbler, play, babble.seed) if source == 'play' else babbler


def collect_episode(env: ArmEnv, writer: EpisodeWriter, steps: int, seed: int, policy,
                    timing: PipelineTiming | None = None) -> float:
    """Reset `env` with `seed` and append `steps` frames recorded through the simulated node pipeline, `policy`
    (`make_policy`) choosing the explorer's targets (its gate has its default settings, as config/explorer.yaml).
    Returns the fraction of frames whose image was exposed while the arm touched the block."""
    timing = timing or PipelineTiming()
    rng = np.random.default_rng([seed, 0xC011])
    command_gate = CommandGate(env.lower, env.upper, env.velocity_limit, config=CommandGateConfig())
    sync = FrameSynchronizer(env.n_joints, SyncConfig(rate_hz=writer.meta.rate_hz))
    camera = CameraLink(timing.camera_latency_s, timing.camera_jitter_s, timing.camera_drop_rate, seed)
    env.reset(seed, render=False)
    arm = ControlledArm(env, timing.command_latency_s)
    periods = {'joints': 1.0 / timing.joint_state_hz, 'camera': 1.0 / timing.camera_hz,
               'explorer': 1.0 / timing.explorer_hz}
    due = {name: rng.uniform(0.0, period) for name, period in periods.items()}   # independent processes' phases
    newest: tuple[float, np.ndarray] | None = None                               # the explorer's joint state
    contact: dict[float, bool] = {}                                              # at each camera exposure
    touched: list[bool] = []                                                     # per written frame
    t, deadline = 0.0, 10 * steps / timing.camera_hz
    while writer.n_frames < steps:
        if t > deadline:
            raise RuntimeError(f'the simulated pipeline made {writer.n_frames} of {steps} frames in {t:.0f} s')
        if t >= due['joints']:
            due['joints'] += periods['joints']
            newest = (t, env.joint_positions())
            _write(writer, steps, sync.add_joints(t, newest[1], env.joint_velocities(), arrival=t), contact, touched)
        if t >= due['camera']:
            due['camera'] += periods['camera']
            camera.push(to_ns(t), (t, env.render()))
            contact[t] = arm_touches_block(env)
        for stamp, image in camera.pop_due(to_ns(t)):
            _write(writer, steps, sync.add_image(stamp, image, arrival=t), contact, touched)
        if t >= due['explorer'] and newest is not None:
            due['explorer'] += periods['explorer']
            target = policy.next_target(newest[1], periods['explorer'])
            try:
                times, positions = command_gate.admit(target[None], [periods['explorer']],
                                                      JointReading(newest[1], t - newest[0]), now=t)
                arm.send(times, positions, now=t)
                _write(writer, steps, sync.add_command(0.0, times, positions, arrival=t), contact, touched)
            except CommandRefused:
                pass                      # the explorer skips this period, as the node does
        arm.tick(t, timing.tick_s)
        t = round(t + timing.tick_s, 9)
    return float(np.mean(touched))


def collect_stepped_episode(env: ArmEnv, writer: EpisodeWriter, steps: int, seed: int, policy) -> float:
    """Reset `env` with `seed` and append `steps` frames of one `ArmEnv.step` each (the `steps` mode), `policy`
    choosing the targets. Returns the fraction of frames at whose time the arm touched the block."""
    obs = env.reset(seed)
    touched = []
    for _ in range(steps):
        touched.append(arm_touches_block(env))
        target = env.clip_targets(policy.next_target(obs.qpos, env.control_dt), reference=obs.qpos)
        writer.append(Frame(time=obs.time, image=obs.image, qpos=obs.qpos, qvel=obs.qvel, target=target,
                            image_stamp=obs.time, joint_stamp=obs.time))
        obs = env.step(target - obs.qpos)
    return float(np.mean(touched))


def _write(writer: EpisodeWriter, steps: int, frames: list, contact: dict[float, bool], touched: list[bool]) -> None:
    """Append `frames` up to `steps` in all, noting for each whether the arm touched the block at its exposure."""
    for frame in frames[:max(0, steps - writer.n_frames)]:
        writer.append(frame)
        touched.append(contact[frame.image_stamp])


def collect_sim(out: str | Path, episodes: int, steps: int, seed: int = 0, env: ArmEnv | None = None,
                babble: BabbleConfig | None = None, progress=None, timing: PipelineTiming | None = None,
                mode: str = 'nodes', source: str = 'babble', play: PlayConfig | None = None,
                surprise: Surprise | None = None) -> list[dict]:
    """Write `episodes` episodes of `steps` frames in `mode` from `source` (see the module docstring; curiosity
    needs `surprise`); episode e uses seed `seed + e`. Returns their meta.json, with `contact_fraction`."""
    if episodes < 1 or steps < 1:
        raise ValueError(f'need episodes >= 1 and steps >= 1, got {episodes=} {steps=}')
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
    env = env or ArmEnv()
    timing = timing or PipelineTiming()
    rate = timing.camera_hz if mode == 'nodes' else 1.0 / env.control_dt
    meta = env_dataset_meta(env, source='sim:collect-sim', rate_hz=rate)
    infos = []
    for e in range(episodes):
        follow = {} if mode == 'nodes' else {'follow_target': False}
        policy = make_policy(env, source, dataclasses.replace(babble or BabbleConfig(), seed=seed + e, **follow),
                             play, surprise)
        with EpisodeWriter(out, meta, task=source, info={'seed': seed + e, 'mode': mode, 'source': source}) as writer:
            if mode == 'nodes':
                fraction = collect_episode(env, writer, steps, seed + e, policy, timing)
            else:
                fraction = collect_stepped_episode(env, writer, steps, seed + e, policy)
            infos.append(writer.close({'contact_fraction': round(fraction, 4)}))
        if progress:
            progress(e, infos[-1])
    return infos
