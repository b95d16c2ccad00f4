"""`jepa-agent demo`: the sim arm reaching goal views with the shipped world model (added in the next commit)."""
from __future__ import annotations

from pathlib import Path


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
