"""The newest valid joint state of the joints a node commands, and how old it really is (for the command gate)."""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from rclpy.clock import Clock
from sensor_msgs.msg import JointState

from jepa_agent.command_gate import JointReading
from jepa_agent.data.episodes import FUTURE_TOLERANCE_S
from jepa_agent.ros.conversions import MessageError, joint_positions


class NewestJointState:
    """Keeps the newest joint state that passed validation (names, finite, within the limits + margin, not stamped
    in the future); `reading()` gives it with its age.

    The age is the larger of the time since it was received and the time since its header stamp (on `clock`), so
    a state that sat in a relay or a queue counts as old as it is: the arm kept moving meanwhile.
    """

    def __init__(self, names: Sequence[str], lower: Sequence[float], upper: Sequence[float], clock: Clock):
        self.names, self.lower, self.upper, self.clock = list(names), lower, upper, clock
        self._lock = threading.Lock()
        self._newest: tuple[np.ndarray, float, float] | None = None   # (positions, receipt monotonic, stamp s)

    def update(self, msg: JointState) -> np.ndarray:
        """Validate and keep `msg`; its positions. MessageError (and the kept state is dropped) if unusable: after
        a bad message the node must not act on an older good one as if nothing happened."""
        try:
            q = joint_positions(msg, self.names, lower=self.lower, upper=self.upper)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if stamp > self._now() + FUTURE_TOLERANCE_S:
                raise MessageError(f'joint state stamped {stamp - self._now():.1f} s in the future')
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
        age = time.monotonic() - receipt
        if stamp > 0:
            age = max(age, self._now() - stamp)
        return JointReading(q, age)

    def _now(self) -> float:
        return self.clock.now().nanoseconds * 1e-9
