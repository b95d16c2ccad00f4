"""Writing episodes: an append-only, crash-safe writer, and recovery of an episode whose writer died.

A writer killed with -9 leaves at most one partial frame (frames are handed to the OS on every append, fsync'ed
every `fsync_interval` s); `recover_episode` cuts it off and marks the episode 'recovered' (format: episodes.py).
"""
from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
import warnings
import zlib
from pathlib import Path

import numpy as np

from jepa_agent.data.episodes import (DATASET_FILE, EPISODE_PREFIX, FORMAT_VERSION, FRAMES_FILE, IMAGES_FILE, META_FILE,
                                      DatasetError, DatasetMeta, DatasetWarning, Frame, FrameError, episode_dirs,
                                      frame_dtype, process_identity, read_dataset_meta, read_json, record_crcs,
                                      write_json_atomic, writer_alive)


#: hidden directories a writer makes for a moment (`.claiming-*` while it publishes an episode, `.discarding-*`
#: while it deletes one); one this old was left by a writer that died in that moment
ABANDONED_AFTER_S = 60.0


def remove_abandoned(root: Path) -> list[str]:
    """Delete the hidden claiming/discarding directories of `root` that dead writers left; their names."""
    removed = []
    for path in sorted([*root.glob('.claiming-*'), *root.glob('.discarding-*')]):
        try:
            if time.time() - path.stat().st_mtime < ABANDONED_AFTER_S:
                continue
            shutil.rmtree(path)
        except OSError:
            continue                      # gone meanwhile, or not ours to delete: readers never list it anyway
        removed.append(path.name)
    return removed


def open_dataset(root: str | Path, meta: DatasetMeta) -> Path:
    """Create DIR (writing dataset.json) or check that an existing one matches `meta`; recover dead episodes and
    remove what dead writers left hidden."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if (root / DATASET_FILE).exists():
        existing = read_dataset_meta(root)
        if not existing.compatible_with(meta):
            raise DatasetError(f'{root} holds a dataset with different joints/limits/rate/camera: '
                               f'{existing.to_dict()} vs new {meta.to_dict()}; use another directory')
    else:
        write_json_atomic(root / DATASET_FILE, {'format_version': FORMAT_VERSION, **meta.to_dict()})
    for path in episode_dirs(root):
        try:
            report = recover_episode(path)
        except (DatasetError, OSError) as exc:
            warnings.warn(f'cannot recover {path.name}: {exc}', DatasetWarning, stacklevel=2)
            continue
        if report:
            warnings.warn(f'interrupted episode {report}', DatasetWarning, stacklevel=2)
    removed = remove_abandoned(root)
    if removed:
        warnings.warn(f'removed what writers that died left hidden: {removed}', DatasetWarning, stacklevel=2)
    return root


class EpisodeWriter:
    """Appends frames to a new episode of dataset `root`; the episode is readable while being written.

    Use as a context manager, or call `close()` (keep it) / `discard()` (delete it). A crash leaves status
    'recording'; the next `open_dataset` (any new writer) or `jepa-agent data verify --repair` recovers it.
    """

    def __init__(self, root: str | Path, meta: DatasetMeta, *, task: str = '', info: dict | None = None,
                 fsync_interval: float = 1.0):
        self.root = open_dataset(root, meta)
        self.meta = meta
        self.fsync_interval = fsync_interval
        self.dtype = frame_dtype(meta.n_joints)
        self._info = {'status': 'recording', 'task': task, 'n_frames': 0,
                      'created': time.time(), 'writer': process_identity(), **(info or {})}
        self.path, self.index = self._claim_episode_dir()
        self._images = open(self.path / IMAGES_FILE, 'ab', buffering=0)
        self._frames = open(self.path / FRAMES_FILE, 'ab', buffering=0)
        self._last_sync = time.monotonic()
        self._last_time = -np.inf
        self.n_frames = 0

    def _claim_episode_dir(self) -> tuple[Path, int]:
        """Publish the episode directory with its meta.json already inside, so that a reader of the live dataset
        never sees an episode without one. The rename is atomic and fails onto a directory that holds anything: two
        writers on one dataset never share an episode."""
        existing = episode_dirs(self.root)
        index = int(existing[-1].name[len(EPISODE_PREFIX):]) + 1 if existing else 0
        staging = self.root / f'.claiming-{uuid.uuid4().hex}'         # mkdir: the umask's permissions, as before
        staging.mkdir()
        while True:
            self._info['index'] = index
            write_json_atomic(staging / META_FILE, self._info)
            path = self.root / f'{EPISODE_PREFIX}{index:06d}'
            try:
                os.rename(staging, path)
                return path, index
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                index += 1

    def _check(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(frame.image)
        if image.shape != self.meta.image_shape or image.dtype != np.uint8:
            raise FrameError(f'image must be {self.meta.image_shape} uint8, got {image.shape} {image.dtype}')
        n = self.meta.n_joints
        qvel = np.full(n, np.nan) if frame.qvel is None else np.asarray(frame.qvel, np.float64)
        for name, value in (('qpos', frame.qpos), ('target', frame.target), ('qvel', qvel)):
            if np.shape(value) != (n,):
                raise FrameError(f'{name} must have {n} values, got shape {np.shape(value)}')
        if not (np.all(np.isfinite(frame.qpos)) and np.all(np.isfinite(frame.target))):
            raise FrameError(f'non-finite joints: qpos={frame.qpos} target={frame.target}')
        if not np.isfinite(frame.time) or frame.time <= self._last_time:
            raise FrameError(f'frame time must increase, got {frame.time} after {self._last_time}')
        return np.ascontiguousarray(image), qvel

    def append(self, frame: Frame) -> None:
        """Write one frame (FrameError if invalid; OSError if the disk fails, after undoing the partial frame)."""
        image, qvel = self._check(frame)
        record = np.zeros(1, self.dtype)
        record['time'], record['image_stamp'], record['joint_stamp'] = frame.time, frame.image_stamp, \
            frame.joint_stamp
        record['qpos'], record['qvel'], record['target'] = frame.qpos, qvel, frame.target
        record['image_crc'] = zlib.crc32(image)
        record['crc'] = record_crcs(record)
        try:
            _write_all(self._images, image.data)
            _write_all(self._frames, record.tobytes())
        except OSError:
            self._truncate_to(self.n_frames)
            raise
        self.n_frames += 1
        self._last_time = frame.time
        if time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def _truncate_to(self, n_frames: int) -> None:
        try:
            os.truncate(self.path / IMAGES_FILE, n_frames * self.meta.frame_bytes)
            os.truncate(self.path / FRAMES_FILE, n_frames * self.dtype.itemsize)
        except OSError:
            pass   # recovery on the next open cuts the partial frame instead

    def sync(self) -> None:
        """Force appended frames to disk (survives power loss, not only process death)."""
        os.fsync(self._images.fileno())
        os.fsync(self._frames.fileno())
        self._last_sync = time.monotonic()

    def close(self, info: dict | None = None) -> dict:
        """Finish the episode (status 'complete'), adding `info` to its meta.json (what is known only at the end,
        e.g. collect-sim's contact fraction); returns the meta.json content."""
        if self._images.closed:
            return self._info
        try:
            self.sync()
        finally:   # even if fsync fails (e.g. disk full) the frames are in the page cache: finish the episode
            self._images.close()
            self._frames.close()
            self._info.update(info or {}, status='complete', n_frames=self.n_frames, closed=time.time())
            write_json_atomic(self.path / META_FILE, self._info)
        return self._info

    def discard(self) -> None:
        """Delete the episode: unpublished first (renamed to a hidden name), so a reader of the live dataset never
        sees it half deleted."""
        self._images.close()
        self._frames.close()
        doomed = self.root / f'.discarding-{uuid.uuid4().hex}'
        os.rename(self.path, doomed)
        for name in (IMAGES_FILE, FRAMES_FILE, META_FILE):
            (doomed / name).unlink(missing_ok=True)
        doomed.rmdir()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def recover_episode(path: str | Path) -> str | None:
    """Finish an episode whose writer died: cut partial/corrupt trailing frames, mark it 'recovered'.

    Returns a one-line report of what was done, or None if the episode needed nothing (complete, or still being
    written by a live process).
    """
    path = Path(path)
    info = read_json(path / META_FILE)
    if info.get('status') != 'recording' or writer_alive(info):
        return None
    meta = read_dataset_meta(path.parent)
    dtype = frame_dtype(meta.n_joints)
    n_images = (path / IMAGES_FILE).stat().st_size // meta.frame_bytes if (path / IMAGES_FILE).exists() else 0
    records = np.fromfile(path / FRAMES_FILE, dtype=dtype) if (path / FRAMES_FILE).exists() else \
        np.zeros(0, dtype)
    n = min(n_images, len(records))
    good = record_crcs(records[:n]) == records['crc'][:n]
    n = int(np.argmin(good)) if not good.all() else n   # keep the longest prefix of intact records
    with open(path / IMAGES_FILE, 'rb') as images:
        while n and zlib.crc32(_read_at(images, (n - 1) * meta.frame_bytes, meta.frame_bytes)) != \
                records['image_crc'][n - 1]:
            n -= 1   # images hit by a power loss at the end of the file
    dropped = max(n_images, len(records)) - n
    os.truncate(path / IMAGES_FILE, n * meta.frame_bytes)
    os.truncate(path / FRAMES_FILE, n * dtype.itemsize)
    info.update(status='recovered', n_frames=n, recovered=time.time(), frames_dropped_on_recovery=dropped)
    write_json_atomic(path / META_FILE, info)
    return f'{path.name}: recovered {n} frames, cut {dropped} incomplete trailing frame(s)'


def _write_all(f, data) -> None:
    """Unbuffered write that never leaves a silent short write (e.g. disk almost full)."""
    view = memoryview(data).cast('B')
    while view:
        written = f.write(view)
        if not written:
            raise OSError(f'no progress writing {f.name} (disk full?)')
        view = view[written:]


def _read_at(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)
