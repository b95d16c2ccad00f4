"""Feed ROS messages into a FrameSynchronizer: the one path shared by the recorder node and bag import.

Works with rclpy messages and with `rosbags` deserialized messages alike (same field names); bad messages raise
MessageError with a sentence saying what is wrong, and the caller decides how loudly to report it.
"""
from __future__ import annotations

from collections.abc import Sequence

from jepa_agent.data.episodes import Frame
from jepa_agent.data.sync import FrameSynchronizer
from jepa_agent.ros.conversions import MessageError, image_to_rgb, joint_positions, trajectory_points


def stamp_seconds(header, receipt: float) -> float:
    """header.stamp in seconds, or `receipt` for unstamped (zero) headers."""
    t = header.stamp.sec + header.stamp.nanosec * 1e-9
    return t if t > 0 else receipt


class StreamFeeder:
    """Validate Image / JointState / JointTrajectory messages and pass them to `sync`.

    `image_shape` (H, W, 3), once set, is enforced: a camera that changes size mid-episode is refused frame by
    frame instead of mixing sizes in one dataset.
    """

    def __init__(self, sync: FrameSynchronizer, joint_names: Sequence[str]):
        self.sync = sync
        self.joint_names = list(joint_names)
        self.image_shape: tuple[int, int, int] | None = None

    def image(self, msg, arrival: float, receipt: float) -> list[Frame]:
        rgb = image_to_rgb(msg)
        if self.image_shape is not None and rgb.shape != self.image_shape:
            raise MessageError(f'image size changed to {rgb.shape[1]}x{rgb.shape[0]}; this dataset records '
                               f'{self.image_shape[1]}x{self.image_shape[0]}')
        return self.sync.add_image(stamp_seconds(msg.header, receipt), rgb, arrival)

    def joints(self, msg, arrival: float, receipt: float) -> list[Frame]:
        qpos = joint_positions(msg, self.joint_names)
        try:
            qvel = joint_positions(msg, self.joint_names, 'velocity') if len(msg.velocity) else None
        except MessageError:
            qvel = None          # velocities are optional; positions are what the dataset needs
        return self.sync.add_joints(stamp_seconds(msg.header, receipt), qpos, qvel, arrival)

    def command(self, msg, arrival: float) -> list[Frame]:
        times, positions = trajectory_points(msg, self.joint_names)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        return self.sync.add_command(stamp, times, positions, arrival)

