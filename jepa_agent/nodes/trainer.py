"""Keep learning after deployment: train the world model on the live camera + joint streams.

    trainer --ros-args --params-file config/trainer.yaml
    trainer --ros-args -p checkpoint:=models/reach_64px -p checkpoint_dir:=runs/online -p duty_cycle:=0.3
    trainer --ros-args -r camera/image_raw:=/wrist_camera/image_raw -r joint_states:=/my_arm/joint_states

Makes frames exactly like the recorder (`jepa_agent.data.sync`: image-driven grid at the model's rate, joints
interpolated at the image stamp, the active command as target) and hands them to the ROS-free `OnlineLearner`;
publishes its surprise (latent prediction error of the last step) on jepa_agent/surprise. Every
`checkpoint_every_s` it judges the model on held-out live windows it never trains on, and announces the checkpoint
directory on jepa_agent/model_updated (transient local, the planner reloads it) only if the model is no worse there
than the one announced last by more than `announce_margin`; otherwise it writes nothing and logs both errors.
Malformed, non-finite or out-of-limit inputs and constant images are skipped with a throttled warning.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, fields

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32, String
from trajectory_msgs.msg import JointTrajectory

from jepa_agent import resources
from jepa_agent.config import ConfigError, bounded, same_range
from jepa_agent.data.episodes import DatasetMeta, Frame, FrameError
from jepa_agent.data.messages import MessageError
from jepa_agent.data.stream import StreamFeeder
from jepa_agent.data.sync import FrameSynchronizer, SyncConfig
from jepa_agent.model.checkpoint import CheckpointError, load_checkpoint
from jepa_agent.robot import RobotDescription
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import cv_bridge_decoder
from jepa_agent.ros.diagnostics import publish_status
from jepa_agent.ros.managed import ManagedNode
from jepa_agent.ros.params import declare_config
from jepa_agent.ros.qos import LATCHED, RELIABLE, SENSOR
from jepa_agent.ros.rejections import InputRejections
from jepa_agent.ros.run import run_node
from jepa_agent.training.online import OnlineLearner, OnlineLearnerConfig


@dataclass
class TrainerConfig(OnlineLearnerConfig):
    """trainer node parameters: the online learner's plus the starting model, rate and threads."""

    checkpoint: str = ''
    """Starting world model (checkpoint directory); '' = the shipped model reach_64px."""
    checkpoint_dir: str = 'runs/online'
    """Where checkpoints that pass the held-out check are written (and announced from); '' = none."""
    rate_hz: float = bounded(0.0, ge=0, le=1000)
    """Frame rate; 0 = the rate the checkpoint was trained at (its metadata rate_hz)."""
    max_joint_gap: float = same_range(SyncConfig, 'max_joint_gap', 0.1)
    """Largest time (s) between an image and the joint states used for its frame (as in the recorder)."""
    threads: int = bounded(1, ge=0)
    """CPU threads torch may use (torch.set_num_threads); 0 = torch's default. Leave cores for the sim, recorder
    and planner."""

    def __post_init__(self):
        super().__post_init__()     # checks the ranges of every field, these included

    def learner_config(self) -> OnlineLearnerConfig:
        return OnlineLearnerConfig(**{f.name: getattr(self, f.name) for f in fields(OnlineLearnerConfig)})


class TrainerNode(ManagedNode):
    """Online learning as a managed node: configure loads the model and starts listening, activate starts training."""

    def __init__(self):
        super().__init__('trainer')
        self.config = declare_config(self, TrainerConfig)
        self.robot = declare_config(self, RobotDescription)
        self.rejections = InputRejections(self.get_logger())
        self.learner: OnlineLearner | None = None

    def configure(self) -> None:
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        path = cfg.checkpoint or str(resources.model_path('reach_64px'))
        try:
            model, metadata = load_checkpoint(path)
            trained_on = DatasetMeta.from_dict(metadata)
            self.robot.check_matches(trained_on.robot, f'checkpoint {path}', model.config.action_dim)
        except (CheckpointError, ValueError) as exc:
            raise ConfigError(f'[trainer] checkpoint: {exc}') from exc
        try:
            self.learner = OnlineLearner(model, metadata, cfg.learner_config(), rate_hz=cfg.rate_hz or None,
                                         on_surprise=self.publish_surprise, on_checkpoint=self.announce,
                                         on_withheld=self.withhold)
        except (ValueError, RuntimeError) as exc:   # unusable seed_dataset or device
            raise ConfigError(f'[trainer] {exc}') from exc
        self.sync = FrameSynchronizer(self.robot.n_joints, SyncConfig(rate_hz=self.learner.rate_hz,
                                                                      max_joint_gap=cfg.max_joint_gap))
        self.feeder = StreamFeeder(self.sync, self.robot.joint_names, lower=self.robot.lower, upper=self.robot.upper,
                                   decoder=cv_bridge_decoder())
        self._frames = 0

        self.surprise_pub = self.create_publisher(Float32, topics.SURPRISE, RELIABLE)
        self.model_pub = self.create_publisher(String, topics.MODEL_UPDATED, LATCHED)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        inputs = [self.create_subscription(Image, topics.IMAGE, self.on_image, SENSOR),
                  self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, RELIABLE),
                  self.create_subscription(JointTrajectory, topics.TRAJECTORY, self.on_trajectory, RELIABLE)]
        self.create_timer(0.05, lambda: self.learn(self.sync.poll(time.monotonic())))
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(
            f'online learning from {path}: joints {self.robot.joint_names} at {self.learner.rate_hz:.1f} Hz, '
            f'duty cycle {cfg.duty_cycle:.0%}, checkpoints '
            f'{"every %.0f s in %s" % (cfg.checkpoint_every_s, cfg.checkpoint_dir) if cfg.checkpoint_dir else "off"}; '
            f'streams {", ".join(sub.topic_name for sub in inputs)}, surprise on {self.surprise_pub.topic_name}, '
            f'checkpoints announced on {self.model_pub.topic_name}')

    def receipt(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- inputs ----------------------------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        self._guarded('image', self.feeder.image, msg, time.monotonic(), self.receipt())

    def on_joint_state(self, msg: JointState) -> None:
        self._guarded('joint_state', self.feeder.joints, msg, time.monotonic(), self.receipt())

    def on_trajectory(self, msg: JointTrajectory) -> None:
        self._guarded('trajectory', self.feeder.command, msg, time.monotonic())

    def _guarded(self, kind: str, feed, *args) -> None:
        """Feed one message into the synchronizer; a bad one is rejected with a throttled warning."""
        try:
            frames = feed(*args)
        except MessageError as exc:
            self.rejections.reject(kind, exc)
            return
        self.learn(frames)

    def learn(self, frames: list[Frame]) -> None:
        for frame in frames:
            try:
                self.learner.observe(frame.image, frame.qpos, frame.target, frame.time)
                self._frames += 1
            except FrameError as exc:
                self.rejections.reject('frame', exc)

    # -- outputs ---------------------------------------------------------------------------------------------
    def publish_surprise(self, value: float) -> None:
        self.surprise_pub.publish(Float32(data=float(value)))

    def announce(self, path) -> None:
        """Called by the learner for a checkpoint that passed the held-out check."""
        self.model_pub.publish(String(data=str(path)))
        learner = self.learner
        self.get_logger().info(
            f'new checkpoint {path} after {learner.steps} online steps: held-out {learner.config.holdout_horizon}-'
            f'step error {learner.last_holdout_error:.4g} vs {learner.last_announced_error:.4g} of the model '
            f'announced before (fractions of persistence, {learner.last_holdout_windows} windows)')

    def withhold(self, message: str) -> None:
        """Called by the learner for a checkpoint that failed the held-out check (nothing was written)."""
        self.get_logger().warning(message)

    def publish_diagnostics(self) -> None:
        learner = self.learner
        values = {'frames': self._frames, 'buffer_frames': len(learner.buffer), 'train_steps': learner.steps,
                  'skipped_batches': learner.skipped_batches, 'last_loss': learner.last_loss,
                  'last_surprise': learner.last_surprise,
                  'checkpoints_announced': learner.checkpoints_announced,
                  'checkpoints_withheld': learner.checkpoints_withheld,
                  'holdout_error': learner.last_holdout_error, 'holdout_error_announced': learner.last_announced_error,
                  'holdout_windows': learner.last_holdout_windows, 'last_withheld_reason': learner.last_withheld_reason,
                  'announced_checkpoint': learner.announced_path or '',
                  **{f'sync_{k}': v for k, v in self.sync.counts.items()},
                  **self.rejections.diagnostics()}
        publish_status(self, self.diag_pub, 'trainer: online learning', DiagnosticStatus.OK,
                       'filling the replay buffer' if not learner.ready else 'training' if self.active else
                       'inactive: not training', values)

    def activated(self) -> None:
        self.learner.start()

    def deactivated(self) -> None:
        self.learner.stop()

    def release(self) -> None:
        if self.learner is not None:
            self.learner.stop()
            self.learner = None


def main(args: list[str] | None = None) -> int:
    return run_node(TrainerNode, 'trainer', args)


if __name__ == '__main__':
    sys.exit(main())
