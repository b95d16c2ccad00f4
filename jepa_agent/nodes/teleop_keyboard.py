"""Jog the arm's joints from the keyboard (a data source for demonstrations and a quick way to poke the sim).

    teleop_keyboard                                   # in a terminal: q/a w/s e/d ... jog, space holds, +/- step
    printf 'qqqq' | teleop_keyboard                   # scripted: exits once the piped keys are sent
    teleop_keyboard --ros-args -r arm_controller/joint_trajectory:=/my_arm_controller/joint_trajectory

Keys wait until joint_states has been seen and the command topic has a subscriber, then each jog publishes a
one-point JointTrajectory through the command gate (`jepa_agent.command_gate`): refused while joint states are
stale, timed so no joint exceeds its velocity limit from where the arm is.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.command_gate import CommandGate, CommandGateConfig, CommandRefused
from jepa_agent.config import bounded, check_ranges
from jepa_agent.data.messages import MessageError
from jepa_agent.robot import RobotDescription
from jepa_agent.ros import topics
from jepa_agent.ros.conversions import timed_trajectory
from jepa_agent.ros.freshness import NewestJointState, now_s
from jepa_agent.ros.managed import ManagedNode
from jepa_agent.ros.params import declare_config
from jepa_agent.ros.qos import RELIABLE
from jepa_agent.ros.rejections import InputRejections
from jepa_agent.ros.run import run_node
from jepa_agent.teleop import JOG_KEYS, MAX_STEP, MIN_STEP, KeyboardJogger, KeyReader, help_text

#: after piped input ends, linger this long so the last commands reach their subscribers
LINGER_S = 0.5


@dataclass
class TeleopConfig(RobotDescription):
    """teleop_keyboard node parameters: the robot description, jog step, motion time, readiness."""

    step: float = bounded(0.1, ge=MIN_STEP, le=MAX_STEP)
    """Initial jog step (rad); +/- change it at run time."""
    min_move_time: float = bounded(0.3, gt=0)
    """Shortest time_from_start of a jog; larger jogs take as long as the velocity limits need."""
    stale_timeout_s: float = bounded(0.5, gt=0)
    """Joint states older than this refuse every jog (the arm's position is unknown)."""
    min_subscribers: int = bounded(1, ge=1)
    """Keys wait until this many subscribers listen on the command topic: 2 when a recorder must see every jog
    besides the controller (publishing before it is matched would lose the first commands)."""

    def __post_init__(self):
        super().__post_init__()
        check_ranges(self)
        if len(self.joint_names) > len(JOG_KEYS):
            raise ValueError(f'keyboard jogging supports at most {len(JOG_KEYS)} joints, got {self.joint_names=}')


class TeleopKeyboardNode(ManagedNode):
    """Keyboard jogging as a managed node: keys move the arm only while it is active."""

    def __init__(self):
        super().__init__('teleop_keyboard')
        self.config = cfg = declare_config(self, TeleopConfig)
        self.exit_code = 0
        self.jogger = KeyboardJogger(cfg.lower, cfg.upper, cfg.step)
        self.gate = CommandGate(cfg.lower, cfg.upper, cfg.velocity_limit, cfg.stale_timeout_s,
                                declare_config(self, CommandGateConfig, 'command_gate.'))
        self.rejections = InputRejections(self.get_logger())
        self.joint_state = NewestJointState(cfg.joint_names, cfg.lower, cfg.upper, self.get_clock())
        self._keys: queue.Queue[str | None] = queue.Queue()
        self._input_ended_at: float | None = None
        self.reader = KeyReader(sys.stdin)
        threading.Thread(target=self._read_keys, daemon=True).start()

    def configure(self) -> None:
        cfg = self.config
        self.pub = self.create_command_publisher(JointTrajectory, topics.TRAJECTORY, RELIABLE)
        self.joint_sub = self.create_subscription(JointState, topics.JOINT_STATES, self.on_joint_state, RELIABLE)
        self.create_timer(0.02, self.process_keys)
        if self.reader.is_terminal:
            print(help_text(cfg.joint_names), file=sys.stderr, flush=True)
        self.get_logger().info(f'jogging {cfg.joint_names} on {self.pub.topic_name} from {self.joint_sub.topic_name} '
                               f'({"terminal" if self.reader.is_terminal else "piped"} input)')

    def _read_keys(self) -> None:
        for key in self.reader:
            self._keys.put(key)
        self._keys.put(None)   # end of input

    def on_joint_state(self, msg: JointState) -> None:
        try:
            self.joint_state.update(msg)
        except MessageError as exc:
            self.rejections.reject('joint_state', exc)

    def process_keys(self) -> None:
        """Turn queued keys into commands once the arm state is known and someone listens; exit after input ends."""
        if self._input_ended_at is not None:
            if time.monotonic() - self._input_ended_at > LINGER_S:
                self.get_logger().info('input ended; exiting')
                self.context.try_shutdown()
            return
        if not self.active:                      # keys pressed while inactive are dropped, never replayed later
            while not self._keys.empty():
                if self._keys.get() is None:
                    self._input_ended_at = time.monotonic()
                    return
                self.get_logger().warning('inactive: key ignored', throttle_duration_sec=5.0)
            return
        joints = self.joint_state.reading()
        if joints is None or self.pub.get_subscription_count() < self.config.min_subscribers:
            if not self._keys.empty():
                self.get_logger().warning(f'keys wait for {self.joint_sub.topic_name} and '
                                          f'{self.config.min_subscribers} subscriber(s) on '
                                          f'{self.pub.topic_name}', throttle_duration_sec=5.0)
            return
        while not self._keys.empty():
            key = self._keys.get()
            if key is None:
                self._input_ended_at = time.monotonic()
                return
            target = self.jogger.handle(key, joints.positions)
            if target is not None:
                self.send(target)

    def send(self, target: np.ndarray) -> None:
        cfg = self.config
        try:
            times, positions = self.gate.admit(target[None], [cfg.min_move_time], self.joint_state.reading(),
                                               now=now_s(self.get_clock()))
        except CommandRefused as exc:
            self.get_logger().warning(f'jog not sent: {exc}', throttle_duration_sec=2.0)
            return
        self.pub.publish(timed_trajectory(cfg.joint_names, positions, times))
        status = ' '.join(f'{n} {v:+.2f}' for n, v in zip(cfg.joint_names, target))
        if self.reader.is_terminal:
            print(f'\rtarget: {status}  step {self.jogger.step:.3f} rad   ', end='', file=sys.stderr, flush=True)
        else:
            self.get_logger().info(f'target: {status}')

    def destroy_node(self) -> None:
        self.reader.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(TeleopKeyboardNode, 'teleop_keyboard', args)


if __name__ == '__main__':
    sys.exit(main())
