"""The online learner's memory of live frames: a ring buffer whose training and held-out windows never overlap."""
from __future__ import annotations

import threading

import numpy as np

from jepa_agent.data.dataset import frame_actions

#: a time step longer than this many frame periods starts a new sequence (windows never span the gap)
GAP_PERIODS = 1.5


class ReplayBuffer:
    """Ring buffer of frames (image, measured joint positions) with sequence ids, so training windows never span a gap.

    With `holdout_every` = n, absolute frames of every n-th stretch of `holdout_stretch` frames (the last of each n)
    are held out: `window_starts` (training) never returns a window touching one, `holdout_starts` only windows
    inside one stretch, so training and held-out windows never share a frame.
    """

    def __init__(self, capacity: int, image_size: int, n_joints: int, period_s: float, *,
                 holdout_stretch: int = 1, holdout_every: int = 0):
        self.capacity, self.period_s = capacity, period_s
        self.holdout_stretch, self.holdout_every = holdout_stretch, holdout_every
        self.images = np.zeros((capacity, 3, image_size, image_size), np.uint8)
        self.qpos = np.zeros((capacity, n_joints), np.float32)
        self.sequence = np.zeros(capacity, np.int64)
        self.total = 0
        """Frames ever added; frame n (absolute) lives at slot n % capacity while n >= total - capacity."""
        self._last_time: float | None = None
        self._sequence = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def add(self, image: np.ndarray, qpos: np.ndarray, stamp: float) -> None:
        """Append one frame (image (3, S, S) uint8); a time gap or backwards step starts a new sequence."""
        with self.lock:
            if self._last_time is not None and not 0 < stamp - self._last_time <= GAP_PERIODS * self.period_s:
                self._sequence += 1
            self._last_time = stamp
            slot = self.total % self.capacity
            self.images[slot], self.qpos[slot] = image, qpos
            self.sequence[slot] = self._sequence
            self.total += 1

    def break_sequence(self) -> None:
        """The next frame does not follow the previous one (e.g. frames were skipped)."""
        with self.lock:
            self._sequence += 1

    def held_out(self, frames: np.ndarray) -> np.ndarray:
        """Whether each absolute frame number lies in a held-out stretch."""
        frames = np.asarray(frames)
        if not self.holdout_every:
            return np.zeros(frames.shape, bool)
        return (frames // self.holdout_stretch) % self.holdout_every == self.holdout_every - 1

    def window_starts(self, length: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """Up to `count` random absolute start frames of `length`-frame training windows inside one sequence that
        touch no held-out frame."""
        with self.lock:
            first, last = max(0, self.total - self.capacity), self.total - length
            if last < first:
                return np.zeros(0, np.int64)
            starts = rng.integers(first, last + 1, size=4 * count)
            same = self.sequence[starts % self.capacity] == self.sequence[(starts + length - 1) % self.capacity]
            usable = same & ~self.held_out(starts[:, None] + np.arange(length)).any(1)
            return starts[usable][:count]

    def holdout_starts(self, length: int, count: int) -> np.ndarray:
        """Up to `count` absolute start frames of `length`-frame windows inside one held-out stretch and sequence,
        spread evenly over those in the buffer (oldest first; the same buffer gives the same windows)."""
        with self.lock:
            first, last = max(0, self.total - self.capacity), self.total - length
            starts = np.arange(first, max(first, last + 1))
            ends = starts + length - 1
            inside = self.held_out(starts) & (starts // self.holdout_stretch == ends // self.holdout_stretch) & \
                (self.sequence[starts % self.capacity] == self.sequence[ends % self.capacity])
            starts = starts[inside]
        if len(starts) > count:
            starts = starts[np.linspace(0, len(starts) - 1, count).round().astype(int)]
        return starts

    def windows(self, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(images (B, T, 3, S, S) uint8, actions (B, T-1, J), qpos (B, T, J)) of the windows starting at `starts`."""
        with self.lock:
            slots = (starts[:, None] + np.arange(length)[None]) % self.capacity       # (B, T)
            images, qpos = self.images[slots], self.qpos[slots]
            actions = frame_actions(qpos)
        return images, actions, qpos

    def newest(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The newest `length` frames as one window (see `windows`), or None if they are not one unbroken sequence."""
        if self.total < length:
            return None
        start = np.array([self.total - length])
        with self.lock:
            if self.sequence[start[0] % self.capacity] != self.sequence[(self.total - 1) % self.capacity]:
                return None
        return tuple(part[0] for part in self.windows(start, length))
