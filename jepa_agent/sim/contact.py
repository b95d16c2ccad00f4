"""Arm–block contact, read from MuJoCo's contact list: how much of a dataset shows the arm touching the world.

Data in which the arm never touches the block teaches a world model nothing about pushing; the fraction of frames
with contact tells data sources apart (babbling, scripted play, curiosity).
"""
from __future__ import annotations

import numpy as np

from jepa_agent.sim.arm_env import ArmEnv


def arm_touches_block(env: ArmEnv) -> bool:
    """Whether any arm geom touches the block geom now: a contact of MuJoCo's last collision pass (computed at the
    start of the last physics step) between a geom of the block's body tree and one of another body tree than the
    world's (the arm), with zero or negative distance. False in a scene without a block."""
    if not env.has_block:
        return False
    model, contacts = env.model, env.data.contact
    block_root = model.body_rootid[model.jnt_bodyid[model.joint(env.config.block_joint).id]]
    roots = model.body_rootid[model.geom_bodyid[np.stack([contacts.geom1, contacts.geom2])]]   # (2, ncon)
    block_side = roots == block_root
    arm_side = (roots != block_root) & (roots != 0)
    touching = (block_side[0] & arm_side[1]) | (block_side[1] & arm_side[0])
    return bool(np.any(touching & (contacts.dist <= 0)))
