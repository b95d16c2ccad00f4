"""What counts as data: joint-limit and clock tolerances, and the checks for frames that are not data.

Shared by live input checks (stream.py, the online learner) and `jepa-agent data verify`.
"""
from __future__ import annotations

import numpy as np

from jepa_agent.data.episode_reader import EpisodeReader

#: how far (rad) a measured joint may sit beyond its position limit and still be data (real arms overshoot a little)
LIMIT_MARGIN_RAD = 0.05
#: how far (s) a stamp may lie ahead of the clock it is checked against (clock skew between machines)
FUTURE_TOLERANCE_S = 1.0


def constant_images(images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N,) bool: which of the (N, H, W, 3) images (array or memmap, read `chunk` at a time) have every pixel the
    same colour: all-black, all-white or flat frames are a camera that is not delivering, not data."""
    out = np.zeros(len(images), bool)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start:start + chunk])
        out[start:start + len(block)] = (block == block[:, :1, :1]).all(axis=(1, 2, 3))
    return out


def frame_problems(reader: EpisodeReader, now: float, margin: float = LIMIT_MARGIN_RAD,
                   future_tolerance: float = FUTURE_TOLERANCE_S) -> list[str]:
    """One line per kind of bad frame in an episode (the reader already refused bad CRCs, times, NaN): qpos or
    target beyond the dataset's limits by more than `margin`, constant images, frame times later than `now` +
    `future_tolerance` (unix time; live recordings are stamped in ROS wall-clock time)."""
    meta = reader.meta
    lower, upper = np.array(meta.lower), np.array(meta.upper)
    found: list[tuple[str, np.ndarray]] = []
    for name in ('qpos', 'target'):
        values = getattr(reader, name)                                     # (N, J)
        excess = np.maximum(lower - values, values - upper)                # > 0 outside the limits
        bad = np.any(excess > margin, axis=1)
        if bad.any():
            k, j = np.unravel_index(np.argmax(excess), excess.shape)
            found.append((f'{name} beyond the joint limits (+{margin:g} rad; worst {meta.joint_names[j]}='
                          f'{values[k, j]:.4g} rad at frame {k}, limits [{lower[j]:g}, {upper[j]:g}])', bad))
    found.append(('constant images (every pixel the same colour: camera not delivering)',
                  constant_images(reader.images)))
    found.append((f'times in the future (later than now + {future_tolerance:g} s)',
                  reader.times > now + future_tolerance))
    return [f'{reader.path.name}: {int(bad.sum())} frame(s) with {what}; first frames '
            f'{np.flatnonzero(bad)[:5].tolist()}' for what, bad in found if bad.any()]
