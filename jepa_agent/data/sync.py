"""Turn camera, joint-state and command streams into synchronized frames: the recorder's and bag import's core.

Rules (the same live and from a bag, so an imported bag gives the frames a live recording would):

* **Frame times come from images.** Frames are due on a grid of 1/rate_hz anchored at the episode's first image;
  the first image stamped at or after (grid point − half a period) is taken, so a 30 Hz camera recorded at 10 Hz
  gives every third image. If that image is more than half a period late, the last earlier image (if any since the
  previous frame) serves the grid point instead, so a camera at the dataset rate gives every image despite jitter.
  Grid points with no image (camera slower than the rate, or stalled) are counted as `missed`.
* **Joints at the image stamp.** Positions/velocities are linearly interpolated between the joint states just before
  and after the image stamp (when they are at most `max_joint_gap` apart). An image waits for a later joint state
  while joint states keep arriving (after a stall the node works through a backlog in which images run ahead of
  the joint states queued with them); once none has arrived for `max_wait` seconds, or the image has waited
  `history` seconds, the last joint state before it is used when it is at most `max_joint_gap` old; otherwise the
  frame is dropped (`no_joints`).
* **Active command** = the waypoint the controller is heading to at the image stamp: of the trajectories that
  started at or before it, the latest; within it, the first point due at or after the stamp (the last point once
  all are due). A trajectory with stamp 0 starts at the newest sensor stamp seen when it arrived (its receipt
  time in the sensors' clock). Before any command the target is the measured position (the arm holds).
* Stamps must increase per stream; an older or equal stamp is dropped (`out_of_order`).

"Arrival" times (wall clock live, bag log time offline) only decide how long to wait for joints.
"""
from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from jepa_agent.config import bounded, check_ranges
from jepa_agent.data.episodes import Frame


@dataclass
class SyncConfig:
    """Synchronization tolerances (recorder and import-bag parameters)."""

    rate_hz: float = bounded(10.0, gt=0, le=1000)
    """Dataset frame rate."""
    max_joint_gap: float = bounded(0.1, gt=0)
    """Largest time (s) between an image and the joint states used for it (interpolation bracket or hold)."""
    max_wait: float = bounded(0.25, ge=0)
    """How long (s, arrival clock) without any joint state arriving an image waits for one stamped after it, before
    holding the last one."""
    history: float = bounded(2.0, gt=0)
    """Seconds of joint states and commands kept for lookup."""

    def __post_init__(self):
        check_ranges(self)
        if self.history < 2 * self.max_joint_gap:
            raise ValueError(f'history must be >= 2 * max_joint_gap, got {self.history=} {self.max_joint_gap=}')


@dataclass
class _Pending:
    stamp: float
    image: np.ndarray
    arrival: float


class FrameSynchronizer:
    """Feed messages in arrival order with `add_*`; each call returns the frames it completed.

    `counts` tallies what was dropped and why: out_of_order, missed (grid points without an image), no_joints.
    """

    def __init__(self, n_joints: int, config: SyncConfig | None = None):
        self.config = config or SyncConfig()
        self.n_joints = n_joints
        self.period = 1.0 / self.config.rate_hz
        self.counts: Counter = Counter()
        self._joint_stamps: list[float] = []
        self._joints: list[tuple[np.ndarray, np.ndarray]] = []
        self._commands: deque = deque()            # (start, absolute point times (N,), positions (N, J))
        self._last_image = -np.inf
        self._newest_sensor = -np.inf
        self._joint_arrival = -np.inf      # when the newest joint state arrived
        self.reset()

    def reset(self) -> None:
        """Start a new episode: the next image anchors a new frame grid; nothing pending carries over."""
        self._due: float | None = None
        self._early: _Pending | None = None
        self._pending: deque[_Pending] = deque()

    # -- input -------------------------------------------------------------------------------------------------
    def add_image(self, stamp: float, image: np.ndarray, arrival: float) -> list[Frame]:
        if stamp <= self._last_image:
            self.counts['out_of_order'] += 1
            return self.poll(arrival)
        self._last_image = stamp
        self._newest_sensor = max(self._newest_sensor, stamp)
        item = _Pending(stamp, image, arrival)
        if self._due is None:
            self._due = stamp + self.period
            self._pending.append(item)
        elif stamp < self._due - self.period / 2:
            self._early = item            # too early for the grid point; kept in case the next one is too late
        else:
            if stamp > self._due + self.period / 2 and self._early is not None:
                self._pending.append(self._early)   # camera jitter: the early image is the closer one
                self._due += self.period
            # a whole period or more past the grid point: the camera skipped grid points (jitter is not a miss)
            steps = 1 + max(0, int(np.floor((stamp - self._due) / self.period + 1e-9)))
            self.counts['missed'] += steps - 1
            self._due += steps * self.period
            self._early = None
            self._pending.append(item)
        return self.poll(arrival)

    def add_joints(self, stamp: float, qpos: np.ndarray, qvel: np.ndarray | None, arrival: float) -> list[Frame]:
        """Joint values already matched by name to the dataset order; qvel None/NaN where not reported."""
        if self._joint_stamps and stamp <= self._joint_stamps[-1]:
            self.counts['out_of_order'] += 1
            return self.poll(arrival)
        qvel = np.full(self.n_joints, np.nan) if qvel is None else np.asarray(qvel, float)
        self._joint_stamps.append(stamp)
        self._joints.append((np.asarray(qpos, float), qvel))
        self._joint_arrival = arrival
        self._newest_sensor = max(self._newest_sensor, stamp)
        self._prune(stamp)
        return self.poll(arrival)

    def add_command(self, stamp: float, times: np.ndarray, positions: np.ndarray, arrival: float) -> list[Frame]:
        """A validated trajectory (times relative to its start, positions (N, J)); stamp 0 = start on receipt."""
        start = stamp if stamp > 0 else self._newest_sensor   # -inf before any sensor data: active from the start
        self._commands.append((start, start + np.asarray(times, float), np.asarray(positions, float)))
        return self.poll(arrival)

    def _prune(self, newest: float) -> None:
        cut = bisect.bisect_left(self._joint_stamps, newest - self.config.history)
        if cut > 256:   # amortized: drop old samples in chunks
            del self._joint_stamps[:cut], self._joints[:cut]
        while len(self._commands) > 1 and self._commands[1][0] <= newest - self.config.history:
            self._commands.popleft()

    # -- output ------------------------------------------------------------------------------------------------
    def poll(self, now: float) -> list[Frame]:
        """Frames whose joints are now known (or whose wait for them ran out at arrival time `now`)."""
        frames = []
        while self._pending:
            item = self._pending[0]
            waited, silent = now - item.arrival, now - self._joint_arrival
            final = waited >= self.config.history or (waited >= self.config.max_wait
                                                       and silent >= self.config.max_wait)
            joints = self._joints_at(item.stamp, final=final)
            if joints is None:
                break
            self._pending.popleft()
            if joints is False:
                self.counts['no_joints'] += 1
                continue
            qpos, qvel, joint_stamp = joints
            frames.append(Frame(time=item.stamp, image=item.image, qpos=qpos, qvel=qvel,
                                target=self.target_at(item.stamp, qpos), image_stamp=item.stamp,
                                joint_stamp=joint_stamp))
        return frames

    def flush(self) -> list[Frame]:
        """Complete everything pending with the data at hand (end of a bag or episode)."""
        return self.poll(np.inf)

    def _joints_at(self, stamp: float, final: bool):
        """(qpos, qvel, joint_stamp) at `stamp`; None = wait for more; False = give up."""
        i = bisect.bisect_left(self._joint_stamps, stamp)
        gap = self.config.max_joint_gap
        before = i - 1 if i > 0 else None
        if i < len(self._joint_stamps):
            t1 = self._joint_stamps[i]
            if t1 == stamp:
                return (*self._joints[i], t1)
            if before is not None and t1 - self._joint_stamps[before] <= gap:
                t0 = self._joint_stamps[before]
                w = (stamp - t0) / (t1 - t0)
                (q0, v0), (q1, v1) = self._joints[before], self._joints[i]
                return q0 + w * (q1 - q0), v0 + w * (v1 - v0), stamp
            if t1 - stamp <= gap and (before is None or stamp - self._joint_stamps[before] > gap):
                return (*self._joints[i], t1)
        elif not final:
            return None
        if before is not None and stamp - self._joint_stamps[before] <= gap:
            return (*self._joints[before], self._joint_stamps[before])
        return False

    def target_at(self, stamp: float, qpos: np.ndarray) -> np.ndarray:
        """The commanded waypoint active at `stamp` (see module docstring); `qpos` when nothing was commanded."""
        active = None
        for start, times, positions in self._commands:
            if start <= stamp and (active is None or start >= active[0]):
                active = (start, times, positions)
        if active is None:
            return np.array(qpos, float)
        _, times, positions = active
        k = min(int(np.searchsorted(times, stamp, side='left')), len(times) - 1)
        return positions[k].copy()
