"""What the planner is doing, as one image: current view | goal | planned cost over the last seconds.

The planner node publishes it on `~/debug_image` (rqt_image_view, Foxglove); drawn with numpy only, so it costs
well under a millisecond per plan.
"""
from __future__ import annotations

from collections import deque

import numpy as np

#: seconds of cost history shown
WINDOW_S = 10.0
COST_COLOUR = np.array([255, 200, 40], np.uint8)      # amber: moving toward the goal
AT_GOAL_COLOUR = np.array([60, 220, 90], np.uint8)    # green: at the goal, holding


class DebugView:
    """Recent plan costs and the strip that shows them beside the current view and the goal."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self._points: deque[tuple[float, float, bool]] = deque(maxlen=1000)   # (time s, cost, at goal)

    def clear(self) -> None:
        self._points.clear()

    def add(self, t: float, cost: float, at_goal: bool) -> None:
        if np.isfinite(cost):
            self._points.append((t, cost, at_goal))

    def render(self, current: np.ndarray, goal: np.ndarray, now: float) -> np.ndarray:
        """(H, 2W + 2H, 3) uint8: the current view (H, W), the goal resized to it, then the cost plot (2H wide, the
        last `window_s` seconds, green where the agent held at the goal)."""
        h, w = current.shape[:2]
        return np.concatenate([current, _resize(goal, h, w), self._plot(h, 2 * h, now)], axis=1)

    def _plot(self, h: int, w: int, now: float) -> np.ndarray:
        canvas = np.full((h, w, 3), 24, np.uint8)
        points = [p for p in self._points if now - p[0] <= self.window_s]
        if not points:
            return canvas
        t, cost, at_goal = (np.array(v) for v in zip(*points))
        top = max(float(cost.max()), 1e-9)
        cols = np.clip(((t - (now - self.window_s)) / self.window_s * (w - 1)).astype(int), 0, w - 1)
        rows = np.clip(((1 - cost / top) * (h - 1)).astype(int), 0, h - 1)
        for col, row, held in zip(cols, rows, at_goal):
            canvas[row:, col] = AT_GOAL_COLOUR if held else COST_COLOUR
        return canvas


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H', W', 3) image to (h, w)."""
    return image[np.arange(h) * image.shape[0] // h][:, np.arange(w) * image.shape[1] // w]
