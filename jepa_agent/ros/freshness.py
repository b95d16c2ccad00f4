"""How old an input really is, and the newest valid joint state of the joints a node commands (for the command gate).

A message's age is the larger of the time since it arrived and the time since its header stamp: a state that sat in
a relay or a queue counts as old as it is, since the arm kept moving meanwhile. Stamps in the future beyond a
tolerance are rejected (a clock that lies cannot vouch for freshness).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from rclpy.clock import Clock
from sensor_msgs.msg import JointState

from jepa_agent.command_gate import JointReading
from jepa_agent.data.messages import MessageError, joint_positions
from jepa_agent.data.stream import check_not_future, stamp_seconds


def now_s(clock: Clock) -> float:
    return clock.now().nanoseconds * 1e-9


def stamp_age_ms(stamp, clock: Clock) -> float:
    """Milliseconds from a header stamp to now on `clock` (e.g. camera frame to published command)."""
    return (clock.now().nanoseconds - (stamp.sec * 1_000_000_000 + stamp.nanosec)) / 1e6


def message_age(receipt: float, stamp: float, clock: Clock) -> float:
    """Seconds since the message arrived (`receipt`, monotonic) or was stamped, whichever is longer ago."""
    age = time.monotonic() - receipt
    return max(age, now_s(clock) - stamp) if stamp > 0 else age


class NewestJointState:
    """Keeps the newest joint state that passed validation (names, finite, within the limits + margin, not stamped
    in the future); `reading()` gives it with its age (see the module docstring)."""

    def __init__(self, names: Sequence[str], lower: Sequence[float], upper: Sequence[float], clock: Clock):
        self.names, self.lower, self.upper, self.clock = list(names), lower, upper, clock
        self._lock = threading.Lock()
        self._newest: tuple[np.ndarray, float, float] | None = None   # (positions, receipt monotonic, stamp s)

    def update(self, msg: JointState) -> np.ndarray:
        """Validate and keep `msg`; its positions. MessageError (and the kept state is dropped) if unusable: after
        a bad message the node must not act on an older good one as if nothing happened."""
        try:
            q = joint_positions(msg, self.names, lower=self.lower, upper=self.upper)
            stamp = stamp_seconds(msg.header, 0.0)
            check_not_future(stamp, now_s(self.clock), 'joint state')
        except MessageError:
            self.clear()
            raise
        with self._lock:
            self._newest = (q, time.monotonic(), stamp)
        return q

    def clear(self) -> None:
        with self._lock:
            self._newest = None

    def reading(self) -> JointReading | None:
        """The newest valid state and its age now, or None."""
        with self._lock:
            newest = self._newest
        if newest is None:
            return None
        q, receipt, stamp = newest
        return JointReading(q, message_age(receipt, stamp, self.clock))
