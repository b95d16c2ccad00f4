"""sensor_msgs/trajectory_msgs <-> numpy, without cv_bridge (not installable from PyPI under numpy 2)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}


class MessageError(ValueError):
    """A message cannot be converted; the text says what is wrong with it."""


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8/bgr8/mono8/rgba8/bgra8 Image, honouring `step` row padding."""
    if msg.encoding not in CHANNELS:
        raise MessageError(f'unsupported image encoding {msg.encoding!r}; expected one of {sorted(CHANNELS)}')
    ch = CHANNELS[msg.encoding]
    if msg.height == 0 or msg.width == 0 or msg.step < msg.width * ch:
        raise MessageError(f'bad image geometry {msg.width}x{msg.height} step {msg.step} for {msg.encoding}')
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, np.ndarray)) else msg.data, np.uint8)
    if buf.size < msg.step * msg.height:
        raise MessageError(f'image data has {buf.size} bytes, expected {msg.step * msg.height}')
    img = buf[:msg.step * msg.height].reshape(msg.height, msg.step)[:, :msg.width * ch].reshape(
        msg.height, msg.width, ch)
    if msg.encoding == 'mono8':
        return np.repeat(img, 3, axis=2)
    if msg.encoding.startswith('bgr'):
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def rgb_to_image(rgb: np.ndarray, stamp=None, frame_id: str = 'camera') -> Image:
    """rgb8 Image message from an (H, W, 3) uint8 array."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MessageError(f'expected an (H, W, 3) array, got shape {rgb.shape}')
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8', is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = rgb.tobytes()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def joint_positions(msg: JointState, names: Sequence[str], field: str = 'position') -> np.ndarray:
    """Values of `field` for `names`, matched by joint name (never by index). Raises MessageError if any is
    missing, the arrays are inconsistent, or a value is not finite."""
    values = list(getattr(msg, field))
    if len(values) != len(msg.name):
        raise MessageError(f'JointState has {len(msg.name)} names but {len(values)} {field} values')
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise MessageError(f'JointState lacks joints {missing} (has {list(msg.name)})')
    out = np.array([values[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise MessageError(f'JointState {field} has non-finite values: {dict(zip(names, out))}')
    return out


def duration_to_sec(d: Duration) -> float:
    return d.sec + d.nanosec * 1e-9


def sec_to_duration(t: float) -> Duration:
    sec = int(np.floor(t))
    return Duration(sec=sec, nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)


def make_trajectory(names: Sequence[str], positions: np.ndarray, dt: float, stamp=None) -> JointTrajectory:
    """JointTrajectory with one point per row of `positions` (N, J), spaced `dt` s (header.stamp 0 = start now)."""
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    msg = JointTrajectory(joint_names=list(names))
    if stamp is not None:
        msg.header.stamp = stamp
    for k, row in enumerate(positions):
        msg.points.append(JointTrajectoryPoint(positions=row.tolist(), time_from_start=sec_to_duration((k + 1) * dt)))
    return msg


def trajectory_points(msg: JointTrajectory, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(times (N,), positions (N, J) ordered as `names`) of a JointTrajectory, validated.

    Rejects (MessageError): no points, unknown or missing joints, duplicate names, wrong point sizes, non-finite
    values, and non-increasing time_from_start.
    """
    if not msg.points:
        raise MessageError('trajectory has no points')
    if len(set(msg.joint_names)) != len(msg.joint_names):
        raise MessageError(f'trajectory has duplicate joint names {list(msg.joint_names)}')
    unknown = sorted(set(msg.joint_names) - set(names))
    missing = [n for n in names if n not in msg.joint_names]
    if unknown or missing:
        raise MessageError(f'trajectory joints {list(msg.joint_names)}: unknown {unknown}, missing {missing}')
    order = [list(msg.joint_names).index(n) for n in names]
    times, rows = [], []
    for i, pt in enumerate(msg.points):
        if len(pt.positions) != len(msg.joint_names):
            raise MessageError(f'point {i} has {len(pt.positions)} positions for {len(msg.joint_names)} joints')
        times.append(duration_to_sec(pt.time_from_start))
        rows.append([pt.positions[j] for j in order])
    times, positions = np.array(times), np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(positions)) or not np.all(np.isfinite(times)):
        raise MessageError('trajectory contains NaN or inf')
    if np.any(np.diff(times) <= 0) or times[0] < 0:
        raise MessageError(f'time_from_start must be non-negative and strictly increasing, got {times.tolist()}')
    return times, positions
