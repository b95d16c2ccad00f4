"""Episode control with a writer thread: start / submit / stop / discard never wait for the disk.

The recorder node calls these from ROS callbacks; disk work (appends, fsync, closing) happens in one background
thread in submission order. A bounded queue turns a too-slow disk into counted drops instead of unbounded memory,
and a disk error (full, read-only) ends the episode at its last good frame and is reported, never raised into the
caller's thread.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jepa_agent.config import bounded, check_ranges, same_range
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta, Frame, FrameError
from jepa_agent.data.sync import SyncConfig
from jepa_agent.robot import RobotDescription


class EpisodeRecorder:
    """One episode at a time into dataset `root`, written by a background thread."""

    def __init__(self, root: str | Path, max_queued_frames: int = 64,
                 on_error: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.max_queued_frames = max_queued_frames
        self.on_error = on_error or (lambda message: None)
        self.counts: Counter = Counter()     # written, queue_full, invalid, write_error
        self.error: str | None = None         # last disk error, cleared by the next successful start()
        self.episode_frames = 0               # frames submitted to the current episode
        self._writer: EpisodeWriter | None = None
        self._failed: set[int] = set()        # id() of writers that hit a disk error
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queued = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name='episode-writer', daemon=True)
        self._thread.start()

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def episode_index(self) -> int | None:
        return self._writer.index if self._writer else None

    @property
    def queued(self) -> int:
        return self._queued

    def start(self, meta: DatasetMeta, task: str = '', info: dict | None = None) -> int:
        """Open a new episode (synchronously: a mkdir and a small JSON file); raises DatasetError/OSError."""
        if self._writer is not None:
            raise RuntimeError(f'already recording episode {self._writer.index}')
        self._writer = EpisodeWriter(self.root, meta, task=task, info=info)
        self.episode_frames, self.error = 0, None
        return self._writer.index

    def submit(self, frame: Frame) -> bool:
        """Queue a frame for the current episode; False (and counted) if not recording or the queue is full."""
        if self._writer is None:
            return False
        with self._lock:
            if self._queued >= self.max_queued_frames:
                self.counts['queue_full'] += 1
                return False
            self._queued += 1
        self.episode_frames += 1
        self._queue.put((self._writer, frame))
        return True

    def stop(self) -> tuple[int, int] | None:
        """End the current episode; returns (index, frames submitted) or None if not recording."""
        return self._finish('close')

    def discard(self) -> tuple[int, int] | None:
        """Delete the current episode; returns (index, frames submitted) or None if not recording."""
        return self._finish('discard')

    def _finish(self, action: str) -> tuple[int, int] | None:
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        self._queue.put((writer, action))
        return writer.index, self.episode_frames

    def close(self, timeout: float = 10.0) -> None:
        """Stop any episode, write everything queued, and end the writer thread."""
        self.stop()
        self._queue.put(None)
        self._thread.join(timeout)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is on disk (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    # -- writer thread -------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            writer, what = item
            if isinstance(what, Frame):
                with self._lock:
                    self._queued -= 1
                self._append(writer, what)
            elif id(writer) not in self._failed:
                self._run(writer, writer.close if what == 'close' else writer.discard)
            else:
                self._failed.discard(id(writer))

    def _append(self, writer: EpisodeWriter, frame: Frame) -> None:
        if id(writer) in self._failed:
            self.counts['write_error'] += 1
            return
        try:
            writer.append(frame)
            self.counts['written'] += 1
        except FrameError as exc:
            self.counts['invalid'] += 1
            self.on_error(f'frame refused by the writer: {exc}')
        except OSError as exc:
            self.counts['write_error'] += 1
            self._failed.add(id(writer))
            if self._writer is writer:
                self._writer = None   # the caller sees `recording` False and may start a new episode
            self.error = f'writing episode {writer.index} failed: {exc}; it ends at frame {writer.n_frames}'
            self.on_error(self.error)
            self._run(writer, writer.close)

    def _run(self, writer: EpisodeWriter, action: Callable) -> None:
        try:
            action()
        except OSError as exc:
            message = f'finishing episode {writer.index} failed: {exc}'
            self.error = self.error or message   # keep the first (root-cause) error
            self.on_error(message)


@dataclass
class RecorderConfig(RobotDescription):
    """recorder node parameters (also read by `jepa-agent data import-bag --config`, which takes the bag's topic
    names as options: `bag.BagTopics`); the robot description (defaults: the sim arm) goes into the dataset
    metadata."""

    dataset_dir: str = 'data/recorded'
    """Dataset directory; created if missing, appended to if it holds a compatible dataset."""
    rate_hz: float = same_range(SyncConfig, 'rate_hz', 10.0)
    """Frame rate of the recorded episodes."""
    episode_frames: int = bounded(0, ge=0)
    """Auto mode when > 0: record from start-up in episodes of this many frames. 0 = use the services."""
    task: str = ''
    """Task label stored with each episode (e.g. 'babble', 'teleop: push the block left')."""
    # synchronization and buffering
    max_joint_gap: float = same_range(SyncConfig, 'max_joint_gap', 0.1)
    """Largest time (s) between an image and the joint states used for it."""
    max_wait: float = same_range(SyncConfig, 'max_wait', 0.25)
    """How long (s) an image waits for a later joint state before the last earlier one is used."""
    max_queued_frames: int = bounded(64, ge=1)
    """Frames buffered for the writer thread; more are dropped (and counted) rather than growing memory."""

    def __post_init__(self):
        super().__post_init__()
        check_ranges(self)
        if not self.dataset_dir:
            raise ValueError(f'dataset_dir must be a directory path, got {self.dataset_dir=}')
        self.sync_config()   # validates the tolerances together

    def sync_config(self) -> SyncConfig:
        return SyncConfig(rate_hz=self.rate_hz, max_joint_gap=self.max_joint_gap, max_wait=self.max_wait)

    def dataset_meta(self, image_height: int, image_width: int, source: str) -> DatasetMeta:
        return DatasetMeta(**dataclasses.asdict(RobotDescription.of(self)), rate_hz=self.rate_hz,
                           image_height=image_height, image_width=image_width, source=source)
