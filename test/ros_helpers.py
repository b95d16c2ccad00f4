"""Test-side helpers for watching topics from the `ros_probe` node."""
from __future__ import annotations

import importlib.util
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile
from sensor_msgs.msg import JointState

from jepa_agent.data.messages import joint_positions
from jepa_agent.ros.qos import RELIABLE


class Inbox:
    """Every message received on a topic, with its arrival time (monotonic seconds).

    The subscription keeps `qos`'s reliability and durability but a deep queue, so a moment in which the test
    process is not scheduled does not drop messages that the node did publish (rates count the node, not the probe).
    """

    def __init__(self, node: Node, msg_type, topic: str, qos=RELIABLE):
        self._lock = threading.Lock()
        self._items: list[tuple[float, object]] = []
        self._sent: list[float] = []
        deep = QoSProfile(depth=max(qos.depth, 1000), history=HistoryPolicy.KEEP_LAST, reliability=qos.reliability,
                          durability=qos.durability)
        node.create_subscription(msg_type, topic, self._on_msg, deep)

    def _on_msg(self, msg, info) -> None:
        with self._lock:
            self._items.append((time.monotonic(), msg))
            self._sent.append(info['source_timestamp'] * 1e-9)

    def sent_between(self, start: float, end: float) -> list:
        """Messages their publisher sent between `start` and `end` (time.time() seconds; DDS source timestamps):
        when the node published, however late a busy test process or a reliable re-send delivered them."""
        with self._lock:
            return [m for (_, m), t in zip(self._items, self._sent) if start <= t < end]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def latest(self):
        with self._lock:
            return self._items[-1][1] if self._items else None

    def messages(self) -> list:
        with self._lock:
            return [m for _, m in self._items]

    def rate(self, window: float) -> float:
        """Messages per second arriving during the next `window` seconds."""
        return rates({'': self}, window)['']

    def count_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for t, _ in self._items if start <= t < end)


def rates(inboxes: dict[str, Inbox], window: float) -> dict[str, float]:
    """Messages per second on each inbox during the same next `window` seconds."""
    start = time.monotonic()
    time.sleep(window)
    return {name: box.count_between(start, start + window) / window for name, box in inboxes.items()}


def steady_rates(inboxes: dict[str, Inbox], minimum: dict[str, float], window: float,
                 attempts: int = 3) -> dict[str, float]:
    """Each inbox's best rate over up to `attempts` consecutive windows, stopping once all reach `minimum`.

    A shared CI machine can stall every process for a second or two; a node that cannot keep its rate still misses
    in every window.
    """
    best = dict.fromkeys(inboxes, 0.0)
    for _ in range(attempts):
        best = {name: max(best[name], hz) for name, hz in rates(inboxes, window).items()}
        if all(best[name] >= floor for name, floor in minimum.items()):
            break
    return best


class JointWatcher(Inbox):
    """Latest measured positions of named joints from /joint_states."""

    def __init__(self, node: Node, names: list[str], topic: str = '/joint_states'):
        super().__init__(node, JointState, topic)
        self.names = names

    def positions(self) -> np.ndarray | None:
        msg = self.latest()
        return None if msg is None else joint_positions(msg, self.names)


class RecorderStatus(Inbox):
    """The recorder's /diagnostics values (published once a second), with what they say about recorded frames."""

    NAME = 'recorder: episodes'

    def __init__(self, node: Node):
        super().__init__(node, DiagnosticArray, '/diagnostics')

    def values(self, since: float = 0.0) -> list[dict[str, str]]:
        """Each status stamped at or after `since` (ROS time, seconds), oldest first."""
        return [{kv.key: kv.value for kv in status.values}
                for msg in self.messages() if msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 >= since
                for status in msg.status if status.name == self.NAME]

    def received(self, *kinds: str) -> bool:
        """The recorder reports at least one message of each kind ('images', 'joint_states', 'commands')."""
        latest = self.values()[-1:]
        return bool(latest) and all(int(latest[0][f'received_{kind}']) > 0 for kind in kinds)

    def frames_recorded_since(self, since: float) -> int:
        """Frames stored between the recorder's first and latest status stamped at or after `since`: frames it
        stored after `since`, whatever its backlog of camera images was then."""
        statuses = self.values(since)
        return int(statuses[-1]['episode_frames']) - int(statuses[0]['episode_frames']) if statuses else 0


def launch_test_requirements(*modules: str) -> str:
    """Why launch tests cannot run here ('' when they can). Never raises: the launch_testing pytest plugin imports
    every test module while collecting, and a skip raised at import would end the whole collection."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f'{module} is not installed (it comes with a ROS 2 install, not from PyPI)'
    try:
        from ament_index_python.packages import get_package_share_directory
        get_package_share_directory('jepa_agent')
    except (ImportError, LookupError, ValueError, OSError):
        return 'jepa_agent is not in an ament prefix: `colcon build`, then `source install/setup.bash`'
    return ''
