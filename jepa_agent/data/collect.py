"""ROS-free data collection: the MuJoCo arm driven by motor babbling (the explorer node's policy), to disk.

    jepa-agent data collect-sim --out data/babble --episodes 20 --steps 200 --seed 0 --image-size 64

Frame k holds the image and measured joints at the start of control period k and the target commanded for that
period, so action k = target k − qpos k exactly as in a live recording.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from jepa_agent.data.babble import BabbleConfig, MotorBabbler
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta, Frame
from jepa_agent.sim.arm_env import ArmEnv


def env_dataset_meta(env: ArmEnv, source: str) -> DatasetMeta:
    """Dataset metadata describing frames from `env` at its control rate."""
    size = env.config.image_size
    return DatasetMeta(**dataclasses.asdict(env.robot), rate_hz=1.0 / env.control_dt, image_height=size,
                       image_width=size, source=source)


def collect_episode(env: ArmEnv, writer: EpisodeWriter, steps: int, seed: int,
                    babble: BabbleConfig | None = None) -> None:
    """Reset `env` with `seed` and append `steps` babbling frames to `writer`."""
    config = dataclasses.replace(babble or BabbleConfig(), seed=seed)
    babbler = MotorBabbler(env.lower, env.upper, env.velocity_limit, config)
    obs = env.reset(seed)
    for _ in range(steps):
        target = env.clip_targets(babbler.next_target(obs.qpos, env.control_dt), reference=obs.qpos)
        writer.append(Frame(time=obs.time, image=obs.image, qpos=obs.qpos, qvel=obs.qvel, target=target,
                            image_stamp=obs.time, joint_stamp=obs.time))
        obs = env.step(target - obs.qpos)


def collect_sim(out: str | Path, episodes: int, steps: int, seed: int = 0, env: ArmEnv | None = None,
                babble: BabbleConfig | None = None, progress=None) -> list[dict]:
    """Write `episodes` episodes of `steps` frames; episode e uses seed `seed + e`. Returns their meta.json."""
    if episodes < 1 or steps < 1:
        raise ValueError(f'need episodes >= 1 and steps >= 1, got {episodes=} {steps=}')
    env = env or ArmEnv()
    meta = env_dataset_meta(env, source='sim:collect-sim')
    infos = []
    for e in range(episodes):
        with EpisodeWriter(out, meta, task='babble', info={'seed': seed + e}) as writer:
            collect_episode(env, writer, steps, seed + e, babble)
        infos.append(writer.close())
        if progress:
            progress(e, infos[-1])
    return infos

