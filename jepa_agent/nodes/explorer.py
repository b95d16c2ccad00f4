"""Motor babbling: smooth random joint targets within limits, so the recorder sees rich arm dynamics.

    explorer --ros-args --params-file config/explorer.yaml
    explorer --ros-args -p amplitude:=0.5 -p seed:=7
    explorer --ros-args -p mode:=curiosity          # linger where the trainer's world model is surprised
    explorer --ros-args -r joint_states:=/my_arm/joint_states -r arm_controller/joint_trajectory:=/my_arm/command

Each control period it reads the latest joint_states (joints matched by name) and publishes a one-point
JointTrajectory toward the next `MotorBabbler` target, through the command gate (`jepa_agent.command_gate`: nothing
from stale or invalid joint states, never faster than the velocity limits from where the arm is). Another arm needs
only other joint_names/limits parameters.

`mode: curiosity` babbles the same way but slows down and keeps its waypoint after a frame the world model did not
foresee (`jepa_agent.data.curiosity`, `curiosity.*` parameters): the surprise is the trainer node's, on
jepa_agent/surprise, so the model that is learning decides where to look. It needs no knowledge of the scene, so it
works on a real arm; without a trainer publishing surprise it babbles plainly.

`mode: play` (the sim arm only) alternates noisy scripted pushes of the block with babbling (`jepa_agent.data.play`,
`play.*` parameters): it reads the block's pose from sim_arm (sim/block_pose) and mirrors the arm's kinematics from the
measured joints; while no fresh block pose arrives it babbles.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.command_gate import CommandGate, CommandGateConfig, CommandRefused
from jepa_agent.config import ConfigError, bounded
from jepa_agent.data.babble import BabbleConfig, MotorBabbler
from jepa_agent.data.curiosity import CuriosityConfig, CuriousBabbler
from jepa_agent.data.messages import MessageError, position_xy
from jepa_agent.data.play import PlayConfig, PlayPolicy
from jepa_agent.robot import RobotDescription
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import timed_trajectory
from jepa_agent.ros.freshness import NewestJointState, now_s
from jepa_agent.ros.managed import ManagedNode
from jepa_agent.ros.params import declare_config
from jepa_agent.ros.qos import RELIABLE
from jepa_agent.ros.rejections import InputRejections
from jepa_agent.ros.run import run_node
from jepa_agent.sim.arm_env import make_env


@dataclass
class ExplorerConfig(RobotDescription, BabbleConfig):
    """explorer node parameters: the babbling policy's (BabbleConfig), the arm's joints and rate."""

    rate_hz: float = bounded(10.0, gt=0, le=100)
    """Control rate: one trajectory per period, reaching its target at the end of the period."""
    state_timeout: float = bounded(0.5, gt=0)
    """Seconds without /joint_states after which the explorer pauses (it never commands from stale state)."""
    mode: str = 'babble'
    """'babble'; 'curiosity': babbling that lingers after a frame the trainer's world model did not foresee (its
    surprise on jepa_agent/surprise; the curiosity.* parameters); 'play' (sim arm only): noisy scripted pushes of
    the block, seen on sim/block_pose, between babbling (the play.* parameters)."""

    def __post_init__(self):
        BabbleConfig.__post_init__(self)       # checks the ranges of every field, these included
        RobotDescription.__post_init__(self)
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {self.mode!r}')


MODES = ('babble', 'curiosity', 'play')


class ExplorerNode(ManagedNode):
    """Motor babbling as a managed node: it commands the arm only while active."""

    def __init__(self):
        super().__init__('explorer')
        self.config = cfg = declare_config(self, ExplorerConfig)
        curiosity = declare_config(self, CuriosityConfig, 'curiosity.')
        play = declare_config(self, PlayConfig, 'play.')
        self._surprise: float | None = None            # the largest surprise the babbler has not seen yet
        self._block: tuple[np.ndarray, float] | None = None    # newest block xy and when it arrived (monotonic s)
        self.babbler = CuriousBabbler(cfg.lower, cfg.upper, cfg.velocity_limit, self.take_surprise, cfg, curiosity) \
            if cfg.mode == 'curiosity' else MotorBabbler(cfg.lower, cfg.upper, cfg.velocity_limit, cfg)
        self.play = self._play_policy(play) if cfg.mode == 'play' else None
        self.gate = CommandGate(cfg.lower, cfg.upper, cfg.velocity_limit, cfg.state_timeout,
                                declare_config(self, CommandGateConfig, 'command_gate.'))
        self.rejections = InputRejections(self.get_logger())
        self.joint_state = NewestJointState(cfg.joint_names, cfg.lower, cfg.upper, self.get_clock())

    def _play_policy(self, config: PlayConfig) -> PlayPolicy:
        """Play on a mirror of the sim arm (its kinematics, posed at the measured joints each period)."""
        scene = make_env()
        if list(self.config.joint_names) != list(scene.joint_names):
            raise ConfigError(f'mode play mirrors the sim arm: joint_names must be {scene.joint_names}, got '
                              f'{self.config.joint_names}')
        return PlayPolicy(scene, self.babbler, config, seed=self.config.seed)

    def configure(self) -> None:
        cfg = self.config
        self.pub = self.create_command_publisher(JointTrajectory, topics.TRAJECTORY, RELIABLE)
        self.joint_sub = self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, RELIABLE)
        self.create_timer(1.0 / cfg.rate_hz, self.step)
        how = f'amplitude {cfg.amplitude}, seed {cfg.seed}'
        if cfg.mode == 'curiosity':
            sub = self.create_subscription(Float32, topics.SURPRISE, self.on_surprise, RELIABLE)
            how += f', curious about the surprise on {sub.topic_name}'
        if cfg.mode == 'play':
            sub = self.create_subscription(PoseStamped, topics.BLOCK_POSE, self.on_block_pose, RELIABLE)
            how += f', playing with the block on {sub.topic_name}'
        self.get_logger().info(f'babbling joints {cfg.joint_names} at {cfg.rate_hz} Hz ({how}) on '
                               f'{self.pub.topic_name} from {self.joint_sub.topic_name}')

    def on_joint_state(self, msg: JointState) -> None:
        try:
            self.joint_state.update(msg)
        except MessageError as exc:
            self.rejections.reject('joint_state', exc)

    def on_surprise(self, msg: Float32) -> None:
        if not (math.isfinite(msg.data) and msg.data >= 0):
            self.rejections.reject('surprise', f'{msg.data} is not a finite value >= 0')
            return
        self._surprise = msg.data if self._surprise is None else max(self._surprise, msg.data)

    def on_block_pose(self, msg: PoseStamped) -> None:
        try:
            self._block = position_xy(msg), time.monotonic()
        except MessageError as exc:
            self.rejections.reject('block_pose', exc)

    def take_surprise(self, measured) -> float | None:
        """The largest surprise received since the last period (None: none arrived): values that arrive together
        (a burst after a stall) must not hide a surprising one."""
        value, self._surprise = self._surprise, None
        return value

    def step(self) -> None:
        """Publish the next babbling target, or wait while inactive or the measured state is missing or stale."""
        if not self.active:
            return
        joints = self.joint_state.reading()
        if joints is None or joints.age_s > self.config.state_timeout:
            since = 'yet' if joints is None else f'for {joints.age_s:.1f} s'
            self.get_logger().warning(f'no valid joint state on {self.joint_sub.topic_name} {since}; waiting',
                                      throttle_duration_sec=5.0)
            return
        dt = 1.0 / self.config.rate_hz
        target = self._next_target(joints.positions, dt)
        try:
            times, positions = self.gate.admit(target[None], [dt], joints, now=now_s(self.get_clock()))
        except CommandRefused as exc:
            self.get_logger().warning(f'command refused: {exc}', throttle_duration_sec=5.0)
            return
        self.pub.publish(timed_trajectory(self.config.joint_names, positions, times))

    def _next_target(self, measured: np.ndarray, dt: float) -> np.ndarray:
        """The babbler's target, or in play mode the play policy's on the mirrored scene (babbling while the block's
        pose is missing or older than state_timeout)."""
        if self.play is None:
            return self.babbler.next_target(measured, dt)
        if self._block is None or time.monotonic() - self._block[1] > self.config.state_timeout:
            self.get_logger().warning('no fresh block pose: babbling', throttle_duration_sec=5.0)
            return self.babbler.next_target(measured, dt)
        self.play.env.mirror(measured, self._block[0])
        return self.play.next_target(measured, dt)


def main(args: list[str] | None = None) -> int:
    return run_node(ExplorerNode, 'explorer', args)


if __name__ == '__main__':
    sys.exit(main())
