"""A camera's delivery, ROS-free: frames arrive late, with jitter, or not at all. The `sim_arm` node publishes
through it in real time and `eval-planner` delivers frames to the agent through it in simulated time, so both see
the same camera."""
from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np


def to_ns(seconds: float) -> int:
    """Seconds (simulated or ROS time) as the camera link's integer nanoseconds."""
    return round(seconds * 1e9)


class CameraLink:
    """What happens to a frame between exposure and subscribers on a real camera: it arrives `latency` plus a uniform
    [0, jitter] s after its stamp, or never (probability `drop_rate`). Seeded, so a run is reproducible. Frames leave
    in stamp order: a late frame holds back the ones behind it (a driver queue), it does not let them overtake.
    Times are integer nanoseconds of the ROS clock."""

    def __init__(self, latency_s: float, jitter_s: float, drop_rate: float, seed: int, window: int = 100):
        self.latency_ns, self.jitter_ns, self.drop_rate = round(latency_s * 1e9), round(jitter_s * 1e9), drop_rate
        self.dropped = 0
        self._rng = np.random.default_rng(seed)
        self._queue: deque[tuple[int, int, object]] = deque()    # (due, stamp, frame), due non-decreasing
        self._last_due = 0
        self._latencies: deque[int] = deque(maxlen=window)      # publish - stamp of recent frames
        self._stats_lock = threading.Lock()                      # diagnostics read the latencies from another thread

    def push(self, stamp_ns: int, frame) -> None:
        """A frame exposed at `stamp_ns`: queue it for its delivery time, or drop it."""
        drop, extra = self._rng.random(2)        # both drawn every frame: a seed gives one drop pattern and delays
        if drop < self.drop_rate:
            self.dropped += 1
            return
        self._last_due = max(stamp_ns + self.latency_ns + round(extra * self.jitter_ns), self._last_due)
        self._queue.append((self._last_due, stamp_ns, frame))

    def next_due(self) -> int | None:
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now_ns: int) -> list:
        """Frames due by `now_ns`, oldest first (the caller publishes them now)."""
        frames = []
        while self._queue and self._queue[0][0] <= now_ns:
            _, stamp_ns, frame = self._queue.popleft()
            frames.append(frame)
            with self._stats_lock:
                self._latencies.append(now_ns - stamp_ns)
        return frames

    def latency_p50_ms(self) -> float:
        """Median publish time - stamp (ms) over the recent frames; nan before the first one."""
        with self._stats_lock:
            recent = list(self._latencies)
        return float(np.median(recent)) * 1e-6 if recent else math.nan
