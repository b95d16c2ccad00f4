"""How the planner is keeping up: plan latency, frame-to-command delay, plan rate and time at the goal, as the
strings the planner node puts on /diagnostics. ROS-free, so the node only publishes them.

    stats = PlanStats()
    stats.planned(asked, done, frame_age_ms, plan.cost, at_goal)   # after each published command
    stats.holding()                                                 # when the node holds instead
    stats.prepared(seconds)                                         # a search ahead of the next frame
    stats.values(time.monotonic())                                  # {'plan_rate_hz': '9.80', ...}
"""
from __future__ import annotations

from collections import deque

import numpy as np

#: a plan rate older than this reads 0: the planner has stopped publishing
IDLE_S = 2.0


class PlanStats:
    """The last 100 latencies and 50 plan times (time.monotonic() seconds) of published commands."""

    def __init__(self):
        self.last_cost = float('nan')
        self.latencies_ms: deque[float] = deque(maxlen=100)
        self.frame_to_command_ms: deque[float] = deque(maxlen=100)
        self.ahead_ms: deque[float] = deque(maxlen=100)
        self.plan_times: deque[float] = deque(maxlen=50)
        self.at_goal_since: float | None = None

    def planned(self, asked: float, done: float, frame_age_ms: float, cost: float, at_goal: bool) -> None:
        """One command published: asked for at `asked`, out at `done`, `frame_age_ms` after its camera frame."""
        self.last_cost = cost
        self.at_goal_since = (self.at_goal_since or done) if at_goal else None
        self.latencies_ms.append((done - asked) * 1e3)          # encoding + planning + publishing
        self.frame_to_command_ms.append(frame_age_ms)
        self.plan_times.append(done)

    def prepared(self, seconds: float) -> None:
        """One search ahead of the next frame (cem.anticipate), off the path from frame to command."""
        self.ahead_ms.append(seconds * 1e3)

    def holding(self) -> None:
        self.at_goal_since = None

    def rate_hz(self, now: float) -> float:
        times = list(self.plan_times)
        if len(times) < 2 or times[-1] <= times[0] or now - times[-1] > IDLE_S:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def values(self, now: float) -> dict[str, str]:
        return {'plan_rate_hz': f'{self.rate_hz(now):.2f}', 'cost': f'{self.last_cost:.4f}',
                'plan_latency_ms_p50': _percentile(self.latencies_ms, 50),
                'plan_latency_ms_p95': _percentile(self.latencies_ms, 95),
                'frame_to_command_ms_p50': _percentile(self.frame_to_command_ms, 50),
                'frame_to_command_ms_p95': _percentile(self.frame_to_command_ms, 95),
                'search_ahead_ms_p50': _percentile(self.ahead_ms, 50),
                'at_goal': str(self.at_goal_since is not None),
                'at_goal_s': f'{now - self.at_goal_since:.1f}' if self.at_goal_since else '0.0'}


def _percentile(values, q: int) -> str:
    return f'{np.percentile(list(values), q):.1f}' if values else 'nan'
