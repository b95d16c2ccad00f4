"""Record synchronized camera + joint + command frames into an episode dataset.

    recorder --ros-args -p dataset_dir:=data/teleop -p rate_hz:=10.0
    recorder --ros-args --params-file config/recorder.yaml -p episode_frames:=200   # auto mode
    recorder --ros-args -r camera/image_raw:=/wrist_camera/image_raw -r joint_states:=/my_arm/joint_states

Services (std_srvs/Trigger): ~/start_episode, ~/stop_episode, ~/discard_episode. Health on /diagnostics.
Frames are made by `jepa_agent.data.sync` (image-driven grid at rate_hz, joints interpolated at the image stamp,
active command = the waypoint the controller is heading to); disk work runs in a writer thread.
"""
from __future__ import annotations

import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.data.episodes import DatasetError, Frame
from jepa_agent.data.messages import MessageError, truncate
from jepa_agent.data.recording import EpisodeRecorder, RecorderConfig
from jepa_agent.data.stream import StreamFeeder
from jepa_agent.data.sync import FrameSynchronizer
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import cv_bridge_decoder
from jepa_agent.ros.diagnostics import publish_status
from jepa_agent.ros.params import declare_config
from jepa_agent.ros.qos import RELIABLE, SENSOR
from jepa_agent.ros.rejections import InputRejections
from jepa_agent.ros.run import run_node

#: joint states can come at 500 Hz: 2 s of queue rides out executor stalls on a busy CPU (a gap = dropped frames)
JOINT_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
#: sensor-data QoS (best effort, matches any camera) with room for ~1 s of 30 Hz images if the process stalls
IMAGE_QOS = QoSProfile(depth=30, reliability=SENSOR.reliability, durability=SENSOR.durability)
#: auto mode retries a failed episode start (e.g. unwritable directory) this often
RETRY_S = 5.0
WARN_EVERY_S = 5.0
#: what starting, stopping or discarding an episode may raise; answered or logged, never out of a callback
START_ERRORS = (DatasetError, ValueError, OSError, RuntimeError)


class RecorderNode(Node):
    def __init__(self):
        super().__init__('recorder')
        self.config = cfg = declare_config(self, RecorderConfig)
        self.sync = FrameSynchronizer(len(cfg.joint_names), cfg.sync_config())
        self.feeder = StreamFeeder(self.sync, cfg.joint_names, lower=cfg.lower, upper=cfg.upper,
                                   decoder=cv_bridge_decoder())
        self.recorder = EpisodeRecorder(cfg.dataset_dir, cfg.max_queued_frames, on_error=self._on_write_error)
        self.rejections = InputRejections(self.get_logger(), WARN_EVERY_S)
        self.received = {'image': 0, 'joint_state': 0, 'command': 0}
        self._last_image_shape: tuple | None = None   # of the last image that passed validation
        self._frames_since_diag, self._last_diag = 0, time.monotonic()
        self._last_start_try = -RETRY_S
        self._last_episode = '-'

        self.image_sub = self.create_subscription(Image, topics.IMAGE, self.on_image, IMAGE_QOS)
        inputs = [self.image_sub,
                  self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, JOINT_QOS),
                  self.create_subscription(JointTrajectory, topics.TRAJECTORY, self.on_command, RELIABLE)]
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self.create_service(Trigger, '~/start_episode', self.on_start)
        self.create_service(Trigger, '~/stop_episode', self.on_stop)
        self.create_service(Trigger, '~/discard_episode', self.on_discard)
        self.create_timer(0.05, self.poll)
        self.create_timer(1.0, self.publish_diagnostics)
        mode = f'auto mode, episodes of {cfg.episode_frames} frames' if cfg.episode_frames else \
            'waiting for ~/start_episode'
        self.get_logger().info(f'recording {" + ".join(sub.topic_name for sub in inputs)} '
                               f'at {cfg.rate_hz} Hz into {cfg.dataset_dir} ({mode})')

    def receipt(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- inputs --------------------------------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        """Only a valid image sets the camera size of the next episode, starts one (auto mode) or becomes a frame."""
        self.received['image'] += 1
        try:   # between episodes any size is fine: the next episode takes it (or its dataset refuses it)
            stamp, rgb = self.feeder.decode_image(msg, self.receipt(), any_size=not self.recorder.recording)
        except MessageError as exc:
            self.rejections.reject('image', exc)
            return
        self._last_image_shape = rgb.shape
        if self.config.episode_frames and not self.recorder.recording:
            self._auto_start()
        if self.recorder.recording:
            self._store(self.feeder.add_image(stamp, rgb, time.monotonic()))

    def on_joint_state(self, msg: JointState) -> None:
        self._guarded('joint_state', self.feeder.joints, msg, time.monotonic(), self.receipt())

    def on_command(self, msg: JointTrajectory) -> None:
        self._guarded('command', self.feeder.command, msg, time.monotonic(), self.receipt())

    def _guarded(self, kind: str, feed, *args) -> None:
        """Feed one message; a bad one is counted and warned about (throttled, truncated), never raised."""
        self.received[kind] += 1
        try:
            frames = feed(*args)
        except MessageError as exc:
            self.rejections.reject(kind, exc)
            return
        self._store(frames)

    def poll(self) -> None:
        """Release frames whose wait for joint states ran out (e.g. the joint stream stalled)."""
        self._store(self.sync.poll(time.monotonic()))

    def _store(self, frames: list[Frame]) -> None:
        for frame in frames:
            if not self.recorder.recording:
                return
            if self.recorder.submit(frame):
                self._frames_since_diag += 1
            limit = self.config.episode_frames
            if limit and self.recorder.episode_frames >= limit:
                self.get_logger().info(self._stop('auto mode: episode complete'))
                self._auto_start()

    # -- episodes ------------------------------------------------------------------------------------------------
    def _start(self) -> str:
        """Open a new episode; returns what happened. Raises START_ERRORS on failure."""
        if self._last_image_shape is None:
            raise RuntimeError(f'no image received yet on {self.image_sub.topic_name}')
        height, width, _ = self._last_image_shape
        source = f'ros:{self.get_fully_qualified_name()}'
        meta = self.config.dataset_meta(height, width, source=source)
        index = self.recorder.start(meta, task=self.config.task, info={'source': source})
        self.sync.reset()
        self.feeder.image_shape = meta.image_shape
        self._last_episode = str(index)
        return f'recording episode {index} ({width}x{height}) into {self.config.dataset_dir}'

    def _auto_start(self) -> None:
        if time.monotonic() - self._last_start_try < RETRY_S:
            return
        self._last_start_try = time.monotonic()
        try:
            self.get_logger().info(self._start())
        except START_ERRORS as exc:
            self.get_logger().error(f'cannot start an episode: {truncate(exc)}; retrying in {RETRY_S:.0f} s')

    def _stop(self, why: str) -> str:
        done = self.recorder.stop()
        if done is None:
            raise RuntimeError('not recording')
        self._last_start_try = -RETRY_S
        return f'episode {done[0]} stopped with {done[1]} frames ({why})'

    def on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._respond(response, self._start)

    def on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._store(self.sync.flush())   # frames still waiting for joint states: complete them with what is known
        return self._respond(response, lambda: self._stop('service call'))

    def on_discard(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        def discard() -> str:
            done = self.recorder.discard()
            if done is None:
                raise RuntimeError('not recording')
            return f'episode {done[0]} discarded ({done[1]} frames)'
        return self._respond(response, discard)

    def _respond(self, response: Trigger.Response, action) -> Trigger.Response:
        try:
            response.message, response.success = action(), True
            self.get_logger().info(response.message)
        except START_ERRORS as exc:
            response.message, response.success = truncate(exc), False
            self.get_logger().warning(response.message)
        return response

    def _on_write_error(self, message: str) -> None:   # writer thread
        self.get_logger().error(message, throttle_duration_sec=WARN_EVERY_S)

    # -- health --------------------------------------------------------------------------------------------------
    def publish_diagnostics(self) -> None:
        now = time.monotonic()
        rate = self._frames_since_diag / max(now - self._last_diag, 1e-9)
        self._frames_since_diag, self._last_diag = 0, now
        writes, sync = self.recorder.counts, self.sync.counts
        dropped = writes['queue_full'] + writes['write_error'] + writes['invalid'] + sync['no_joints']
        values = {'recording': str(self.recorder.recording), 'episode': self._last_episode,
                  'episode_frames': str(self.recorder.episode_frames), 'frame_rate_hz': f'{rate:.2f}',
                  'target_rate_hz': f'{self.config.rate_hz:g}', 'frames_written': str(writes['written']),
                  'dropped_frames': str(dropped), 'dropped_queue_full': str(writes['queue_full']),
                  'dropped_no_joints': str(sync['no_joints']), 'dropped_write_error': str(writes['write_error']),
                  'missed_grid_frames': str(sync['missed']),
                  'out_of_order_messages': str(sync['out_of_order']), 'writer_queue': str(self.recorder.queued),
                  **{f'received_{k}s': str(v) for k, v in self.received.items()},
                  **self.rejections.diagnostics(),
                  'dataset_dir': self.config.dataset_dir}
        if self.recorder.error:
            level, message = DiagnosticStatus.ERROR, self.recorder.error
        elif self.recorder.recording and rate < 0.8 * self.config.rate_hz:
            level, message = DiagnosticStatus.WARN, f'recording at {rate:.1f} Hz, below {self.config.rate_hz:g} Hz'
        else:
            level, message = DiagnosticStatus.OK, 'recording' if self.recorder.recording else 'idle'
        publish_status(self, self.diag_pub, 'recorder: episodes', level, message, values, hardware_id='recorder')

    def destroy_node(self) -> None:
        self.recorder.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, 'recorder', args)


if __name__ == '__main__':
    sys.exit(main())
