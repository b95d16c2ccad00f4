"""Feed ROS messages into a FrameSynchronizer: the one path shared by the recorder node, the trainer node and bag
import.

Works with rclpy messages and with `rosbags` deserialized messages alike (same field names); bad messages raise
MessageError with a sentence saying what is wrong, and the caller decides how loudly to report it. Besides the
message checks of `jepa_agent.data.messages` (encodings, sizes, names, NaN, joint limits), a feeder refuses
constant images (a camera that is not delivering) and stamps more than FUTURE_TOLERANCE_S after the receipt time.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jepa_agent.data.episodes import Frame
from jepa_agent.data.messages import (ImageDecoder, MessageError, duration_to_sec, image_to_rgb, joint_positions,
                                      trajectory_points)
from jepa_agent.data.quality import FUTURE_TOLERANCE_S, LIMIT_MARGIN_RAD, constant_images
from jepa_agent.data.sync import FrameSynchronizer


def stamp_seconds(header, receipt: float) -> float:
    """header.stamp in seconds, or `receipt` for unstamped (zero) headers."""
    t = duration_to_sec(header.stamp)
    return t if t > 0 else receipt


def check_not_future(stamp: float, receipt: float, what: str) -> None:
    """MessageError if `stamp` lies more than FUTURE_TOLERANCE_S after `receipt` (same clock)."""
    if stamp > receipt + FUTURE_TOLERANCE_S:
        raise MessageError(f'{what} stamped {stamp - receipt:.3g} s in the future (stamp {stamp:.3f}, received at '
                           f'{receipt:.3f}; tolerance {FUTURE_TOLERANCE_S:g} s)')


def check_not_flat(rgb: np.ndarray) -> np.ndarray:
    """`rgb` (H, W, 3), or MessageError if every pixel has the same colour (a camera that is not delivering)."""
    if constant_images(rgb[None])[0]:
        raise MessageError(f'constant image (every pixel {rgb[0, 0].tolist()}): the camera is not delivering')
    return rgb


class StreamFeeder:
    """Validate Image / JointState / JointTrajectory messages and pass them to `sync`.

    `lower`/`upper` (joint position limits in `joint_names` order, optional) refuse joint states beyond them by more
    than LIMIT_MARGIN_RAD and commands beyond them at all. `image_shape` (H, W, 3), once set, is enforced: a camera
    that changes size mid-episode is refused frame by frame instead of mixing sizes in one dataset. `decoder` decodes
    images instead of the numpy decoding (the nodes pass ROS 2 cv_bridge's where it is installed).
    """

    def __init__(self, sync: FrameSynchronizer, joint_names: Sequence[str], *, lower: Sequence[float] | None = None,
                 upper: Sequence[float] | None = None, decoder: ImageDecoder | None = None):
        self.sync = sync
        self.decoder = decoder
        self.joint_names = list(joint_names)
        for name, limits in (('lower', lower), ('upper', upper)):
            if limits is not None and len(limits) != len(self.joint_names):
                raise ValueError(f'{name} needs one value per joint {self.joint_names}, got {limits!r}')
        self.lower = None if lower is None else [float(v) for v in lower]
        self.upper = None if upper is None else [float(v) for v in upper]
        self.image_shape: tuple[int, int, int] | None = None

    # -- validation only ---------------------------------------------------------------------------------------
    def decode_image(self, msg, receipt: float, any_size: bool = False) -> tuple[float, np.ndarray]:
        """(stamp, (H, W, 3) RGB) of a valid image; `any_size` skips the `image_shape` check (between episodes)."""
        rgb = image_to_rgb(msg, expected_shape=None if any_size else self.image_shape, decoder=self.decoder)
        stamp = stamp_seconds(msg.header, receipt)
        check_not_future(stamp, receipt, 'image')
        return stamp, check_not_flat(rgb)

    # -- feeding -----------------------------------------------------------------------------------------------
    def image(self, msg, arrival: float, receipt: float) -> list[Frame]:
        stamp, rgb = self.decode_image(msg, receipt)
        return self.add_image(stamp, rgb, arrival)

    def add_image(self, stamp: float, rgb: np.ndarray, arrival: float) -> list[Frame]:
        """An image already checked by `decode_image`."""
        return self.sync.add_image(stamp, rgb, arrival)

    def joints(self, msg, arrival: float, receipt: float) -> list[Frame]:
        qpos = joint_positions(msg, self.joint_names, lower=self.lower, upper=self.upper, margin=LIMIT_MARGIN_RAD)
        stamp = stamp_seconds(msg.header, receipt)
        check_not_future(stamp, receipt, 'JointState')
        try:
            qvel = joint_positions(msg, self.joint_names, 'velocity') if len(msg.velocity) else None
        except MessageError:
            qvel = None          # velocities are optional; positions are what the dataset needs
        return self.sync.add_joints(stamp, qpos, qvel, arrival)

    def command(self, msg, arrival: float, receipt: float | None = None) -> list[Frame]:
        """A trajectory; with `receipt` (the stamps' clock), one stamped too far in the future is refused."""
        times, positions = trajectory_points(msg, self.joint_names, lower=self.lower, upper=self.upper)
        stamp = duration_to_sec(msg.header.stamp)
        if receipt is not None and stamp > 0:
            check_not_future(stamp, receipt, 'trajectory')
        return self.sync.add_command(stamp, times, positions, arrival)
