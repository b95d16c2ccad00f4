"""numpy -> sensor_msgs/trajectory_msgs, and the ROS 2 cv_bridge as image decoder where it is installed.

Decoding (message -> numpy) needs no message classes and lives in `jepa_agent.data.messages`; cv_bridge (a ROS install,
not PyPI) adds the encodings it knows (yuv422, bayer, 16-bit, ...), and without it the numpy decoding of the common
8-bit encodings is used.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jepa_agent.data.messages import ImageDecoder, MessageError


def rgb_to_image(rgb: np.ndarray, stamp=None, frame_id: str = 'camera', encoding: str = 'rgb8') -> Image:
    """Image message (rgb8, or bgr8 as many camera drivers publish) from an (H, W, 3) uint8 RGB array."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise MessageError(f'expected an (H, W, 3) array, got shape {rgb.shape}')
    if encoding not in ('rgb8', 'bgr8'):
        raise MessageError(f'encoding must be rgb8 or bgr8, got {encoding!r}')
    pixels = np.ascontiguousarray(rgb[..., ::-1] if encoding == 'bgr8' else rgb)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, is_bigendian=0, step=rgb.shape[1] * 3)
    msg.data = pixels.tobytes()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def sec_to_duration(t: float) -> Duration:
    sec = int(np.floor(t))
    return Duration(sec=sec, nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)


def make_trajectory(names: Sequence[str], positions: np.ndarray, dt: float, stamp=None) -> JointTrajectory:
    """JointTrajectory with one point per row of `positions` (N, J), spaced `dt` s (header.stamp 0 = start now)."""
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    return timed_trajectory(names, positions, dt * np.arange(1, len(positions) + 1), stamp)


def timed_trajectory(names: Sequence[str], positions: np.ndarray, times: np.ndarray, stamp=None) -> JointTrajectory:
    """JointTrajectory with one point per row of `positions` (N, J) at `times` (N,) s from the start."""
    msg = JointTrajectory(joint_names=list(names))
    if stamp is not None:
        msg.header.stamp = stamp
    for row, t in zip(np.atleast_2d(np.asarray(positions, dtype=np.float64)), np.asarray(times, dtype=np.float64)):
        msg.points.append(JointTrajectoryPoint(positions=row.tolist(), time_from_start=sec_to_duration(float(t))))
    return msg


def cv_bridge_decoder() -> ImageDecoder | None:
    """Image -> RGB by the ROS 2 cv_bridge, or None where it is not installed (the numpy decoding is used)."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    bridge = CvBridge()
    return lambda msg: bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
