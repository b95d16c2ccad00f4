"""Episodes on disk: an append-only, crash-safe writer and a memory-mapped reader.

Layout of a dataset directory (format_version 1)::

    DIR/dataset.json                    # DatasetMeta: joints, limits, rate, camera, source
    DIR/episode_000000/meta.json        # status (recording | complete | recovered), n_frames, task, writer pid, ...
    DIR/episode_000000/images.u8        # n_frames × H×W×3 raw RGB bytes, fixed size per frame (memory-mappable)
    DIR/episode_000000/frames.bin       # n_frames fixed-size records (see `frame_dtype`), each with CRC32s

Why this shape: fixed-size records in two append-only files make the last complete frame computable from the file
sizes alone, so a writer killed with -9 leaves at most one partial frame, which recovery cuts off (frames are
handed to the OS on every append, fsync'ed every `fsync_interval` s). The image file is raw uint8 so training
reads windows with one memory-mapped slice. Each record carries the CRC32 of itself and of its image, so `verify`
finds flipped or zeroed bytes. Commanded targets are stored absolute; actions are derived at load time.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
DATASET_FILE = 'dataset.json'
META_FILE = 'meta.json'
IMAGES_FILE = 'images.u8'
FRAMES_FILE = 'frames.bin'
EPISODE_PREFIX = 'episode_'
#: episode states: being written, closed normally, closed by recovery after the writer died
STATUSES = ('recording', 'complete', 'recovered')
#: how far (rad) a measured joint may sit beyond its position limit and still be data (real arms overshoot a little)
LIMIT_MARGIN_RAD = 0.05
#: how far (s) a stamp may lie ahead of the clock it is checked against (clock skew between machines)
FUTURE_TOLERANCE_S = 1.0


class DatasetError(ValueError):
    """A dataset or episode on disk is missing, inconsistent or corrupt; the message says which file and why."""


class FrameError(ValueError):
    """A frame is unusable (wrong shape, non-finite or out-of-limit joints, time going backwards, a constant image):
    it cannot be appended to an episode or learned from; skip it."""


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped (e.g. a corrupt episode); the data that remains is sound."""


@dataclass
class DatasetMeta:
    """What every episode of a dataset shares; stored in DIR/dataset.json."""

    joint_names: list[str]
    """Joint order of every qpos/qvel/target vector."""
    lower: list[float]
    """Joint position lower limits (rad)."""
    upper: list[float]
    """Joint position upper limits (rad)."""
    velocity_limit: list[float]
    """Joint velocity limits (rad/s)."""
    rate_hz: float
    """Frame rate of the episodes."""
    image_height: int
    image_width: int
    encoding: str = 'rgb8'
    """Stored image encoding (always rgb8; other camera encodings are converted when recording)."""
    source: str = ''
    """Where the data came from, e.g. 'sim:collect-sim', 'ros:recorder', 'bag:/path/to/bag'."""

    def __post_init__(self):
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f'joint_names must be non-empty and unique, got {self.joint_names=}')
        for name in ('lower', 'upper', 'velocity_limit'):
            values = [float(v) for v in getattr(self, name)]
            if len(values) != n or not np.all(np.isfinite(values)):
                raise ValueError(f'{name} must hold {n} finite values, got {getattr(self, name)!r}')
            setattr(self, name, values)
        if np.any(np.array(self.lower) >= np.array(self.upper)):
            raise ValueError(f'lower must be below upper, got {self.lower=} {self.upper=}')
        if not self.rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {self.rate_hz=}')
        if self.image_height <= 0 or self.image_width <= 0:
            raise ValueError(f'image size must be positive, got {self.image_height=} {self.image_width=}')
        if self.encoding != 'rgb8':
            raise ValueError(f'stored encoding must be rgb8, got {self.encoding=}')

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_height, self.image_width, 3)

    @property
    def frame_bytes(self) -> int:
        return self.image_height * self.image_width * 3

    def compatible_with(self, other: DatasetMeta) -> bool:
        """Same joints, limits, rate and camera (the source may differ between sessions)."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        mine.pop('source'), theirs.pop('source')
        return mine == theirs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DatasetMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Frame:
    """One synchronized sample: the camera image, the measured joint state and the active command at `time`."""

    time: float
    """Frame time (s; ROS time when recorded live, sim time in collect-sim)."""
    image: np.ndarray
    """(H, W, 3) uint8 RGB."""
    qpos: np.ndarray
    """Measured joint positions (rad), dataset joint order."""
    target: np.ndarray
    """Commanded joint targets active at `time` (rad); the measured position when nothing was commanded."""
    qvel: np.ndarray | None = None
    """Measured joint velocities (rad/s); NaN where the source does not report them."""
    image_stamp: float = float('nan')
    """Stamp of the image message the frame used (s)."""
    joint_stamp: float = float('nan')
    """Stamp of the joint state the frame used (s)."""


def frame_dtype(n_joints: int) -> np.dtype:
    """Little-endian record of one frame in frames.bin; `crc` covers all bytes before it."""
    return np.dtype([('time', '<f8'), ('image_stamp', '<f8'), ('joint_stamp', '<f8'),
                     ('qpos', '<f8', (n_joints,)), ('qvel', '<f8', (n_joints,)), ('target', '<f8', (n_joints,)),
                     ('image_crc', '<u4'), ('crc', '<u4')])


def _record_crcs(records: np.ndarray) -> np.ndarray:
    raw = records.view(np.uint8).reshape(len(records), records.dtype.itemsize)[:, :-4]
    return np.array([zlib.crc32(row) for row in raw], dtype=np.uint32)


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f'cannot read {path}: {exc}') from exc
    if not isinstance(data, dict):
        raise DatasetError(f'{path} must hold a JSON object')
    return data


def _process_identity() -> dict:
    """pid, host and (Linux) process start tick, so a later reader can tell a live writer from a dead one."""
    return {'pid': os.getpid(), 'host': socket.gethostname(), 'proc_start': _proc_start(os.getpid())}


def _proc_start(pid: int) -> int | None:
    try:
        return int(Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def writer_alive(meta: dict) -> bool:
    """True if the process recorded in an episode's meta.json still runs (same host, same process)."""
    writer = meta.get('writer') or {}
    if writer.get('host') != socket.gethostname() or not isinstance(writer.get('pid'), int):
        return False
    try:
        os.kill(writer['pid'], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _proc_start(writer['pid'])
    return writer.get('proc_start') is None or start is None or start == writer['proc_start']


# -- dataset level -----------------------------------------------------------------------------------------------
def read_dataset_meta(root: str | Path) -> DatasetMeta:
    path = Path(root) / DATASET_FILE
    data = _read_json(path)
    if data.get('format_version') != FORMAT_VERSION:
        raise DatasetError(f'{path}: unsupported format_version {data.get("format_version")!r} '
                           f'(this jepa_agent reads {FORMAT_VERSION})')
    try:
        return DatasetMeta.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f'{path}: invalid metadata: {exc}') from exc


def open_dataset(root: str | Path, meta: DatasetMeta) -> Path:
    """Create DIR (writing dataset.json) or check that an existing one matches `meta`; recover dead episodes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if (root / DATASET_FILE).exists():
        existing = read_dataset_meta(root)
        if not existing.compatible_with(meta):
            raise DatasetError(f'{root} holds a dataset with different joints/limits/rate/camera: '
                               f'{existing.to_dict()} vs new {meta.to_dict()}; use another directory')
    else:
        _write_json_atomic(root / DATASET_FILE, {'format_version': FORMAT_VERSION, **meta.to_dict()})
    for path in episode_dirs(root):
        try:
            report = recover_episode(path)
        except (DatasetError, OSError) as exc:
            warnings.warn(f'cannot recover {path.name}: {exc}', DatasetWarning, stacklevel=2)
            continue
        if report:
            warnings.warn(f'interrupted episode {report}', DatasetWarning, stacklevel=2)
    return root


def episode_dirs(root: str | Path) -> list[Path]:
    """Episode directories of a dataset, in index order."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(EPISODE_PREFIX)
                  and p.name[len(EPISODE_PREFIX):].isdigit())


# -- writing -----------------------------------------------------------------------------------------------------
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
        self.path, self.index = self._claim_episode_dir()
        self._info = {'index': self.index, 'status': 'recording', 'task': task, 'n_frames': 0,
                      'created': time.time(), 'writer': _process_identity(), **(info or {})}
        _write_json_atomic(self.path / META_FILE, self._info)
        self._images = open(self.path / IMAGES_FILE, 'ab', buffering=0)
        self._frames = open(self.path / FRAMES_FILE, 'ab', buffering=0)
        self._last_sync = time.monotonic()
        self._last_time = -np.inf
        self.n_frames = 0

    def _claim_episode_dir(self) -> tuple[Path, int]:
        existing = episode_dirs(self.root)
        index = int(existing[-1].name[len(EPISODE_PREFIX):]) + 1 if existing else 0
        while True:   # mkdir is atomic: two writers on one dataset never share an episode
            path = self.root / f'{EPISODE_PREFIX}{index:06d}'
            try:
                path.mkdir()
                return path, index
            except FileExistsError:
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
        record['crc'] = _record_crcs(record)
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

    def close(self) -> dict:
        """Finish the episode (status 'complete'); returns its meta.json content."""
        if self._images.closed:
            return self._info
        try:
            self.sync()
        finally:   # even if fsync fails (e.g. disk full) the frames are in the page cache: finish the episode
            self._images.close()
            self._frames.close()
            self._info.update(status='complete', n_frames=self.n_frames, closed=time.time())
            _write_json_atomic(self.path / META_FILE, self._info)
        return self._info

    def discard(self) -> None:
        """Delete the episode."""
        self._images.close()
        self._frames.close()
        for name in (IMAGES_FILE, FRAMES_FILE, META_FILE):
            (self.path / name).unlink(missing_ok=True)
        self.path.rmdir()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- reading -----------------------------------------------------------------------------------------------------
class EpisodeReader:
    """Read-only view of one episode: memory-mapped images and frame records of its complete frames.

    Opening checks structure (meta.json, file sizes, record CRCs, increasing times, finite joints) and raises
    DatasetError if any fails; `verify_images()` also checks every image CRC. An interrupted episode (writer
    died) exposes its complete frames, and `partial_bytes` says how much a crash left over.
    """

    def __init__(self, path: str | Path, meta: DatasetMeta | None = None):
        self.path = Path(path)
        self.meta = meta or read_dataset_meta(self.path.parent)
        self.info = _read_json(self.path / META_FILE)
        self.status = self.info.get('status')
        if self.status not in STATUSES:
            raise DatasetError(f'{self.path / META_FILE}: unknown status {self.status!r}')
        self.dtype = frame_dtype(self.meta.n_joints)
        sizes = {}
        for name in (IMAGES_FILE, FRAMES_FILE):
            try:
                sizes[name] = (self.path / name).stat().st_size
            except OSError as exc:
                raise DatasetError(f'{self.path.name}: missing {name}: {exc}') from exc
        n_images, n_records = sizes[IMAGES_FILE] // self.meta.frame_bytes, sizes[FRAMES_FILE] // self.dtype.itemsize
        n = min(n_images, n_records)
        self.partial_bytes = sizes[IMAGES_FILE] + sizes[FRAMES_FILE] - n * (self.meta.frame_bytes +
                                                                              self.dtype.itemsize)
        if self.status != 'recording' and (self.partial_bytes or n != self.info.get('n_frames')):
            raise DatasetError(f'{self.path.name}: files hold {n_records} records/{n_images} images '
                               f'(+{self.partial_bytes} stray bytes) but meta.json says n_frames='
                               f'{self.info.get("n_frames")}')
        self.frames = self._map(FRAMES_FILE, self.dtype, (n,))
        self.images = self._map(IMAGES_FILE, np.uint8, (n, *self.meta.image_shape))
        self._check_records()

    def _map(self, name: str, dtype, shape: tuple) -> np.ndarray:
        if shape[0] == 0:
            return np.zeros(shape, dtype)
        return np.memmap(self.path / name, dtype=dtype, mode='r', shape=shape)

    def _check_records(self) -> None:
        bad = np.flatnonzero(_record_crcs(self.frames) != self.frames['crc'])
        if bad.size:
            raise DatasetError(f'{self.path.name}/{FRAMES_FILE}: CRC mismatch in frames {bad[:10].tolist()}')
        times = self.frames['time']
        bad = np.flatnonzero(~np.isfinite(times) | np.concatenate([[False], ~(np.diff(times) > 0)]))
        if bad.size:
            raise DatasetError(f'{self.path.name}: frame times are not strictly increasing: {bad.size} frame(s) '
                               f'not after the previous one, first {bad[:5].tolist()}')
        if not (np.all(np.isfinite(self.frames['qpos'])) and np.all(np.isfinite(self.frames['target']))):
            raise DatasetError(f'{self.path.name}: non-finite qpos/target values')

    def verify_images(self) -> list[int]:
        """Indices of frames whose image bytes do not match their CRC (empty list = all good)."""
        return [i for i in range(len(self)) if zlib.crc32(self.images[i]) != self.frames['image_crc'][i]]

    @property
    def interrupted(self) -> bool:
        """Status 'recording' but its writer is gone: recoverable with `recover_episode`."""
        return self.status == 'recording' and not writer_alive(self.info)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.frames['time'])

    @property
    def qpos(self) -> np.ndarray:
        return np.asarray(self.frames['qpos'])

    @property
    def qvel(self) -> np.ndarray:
        return np.asarray(self.frames['qvel'])

    @property
    def target(self) -> np.ndarray:
        return np.asarray(self.frames['target'])

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0]) + 1.0 / self.meta.rate_hz if len(self) else 0.0


def constant_images(images: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(N,) bool: which of the (N, H, W, 3) images (array or memmap, read `chunk` at a time) have every pixel the
    same colour: all-black, all-white or flat frames are a camera that is not delivering, not data."""
    out = np.zeros(len(images), bool)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start:start + chunk])
        out[start:start + len(block)] = (block == block[:, :1, :1]).all(axis=(1, 2, 3))
    return out


def frame_problems(reader: EpisodeReader, now: float, margin: float = LIMIT_MARGIN_RAD,
                   future_tolerance: float = FUTURE_TOLERANCE_S) -> list[str]:
    """One line per kind of bad frame in an episode (the reader already refused bad CRCs, times, NaN): qpos or
    target beyond the dataset's limits by more than `margin`, constant images, frame times later than `now` +
    `future_tolerance` (unix time; live recordings are stamped in ROS wall-clock time)."""
    meta = reader.meta
    lower, upper = np.array(meta.lower), np.array(meta.upper)
    found: list[tuple[str, np.ndarray]] = []
    for name in ('qpos', 'target'):
        values = getattr(reader, name)                                     # (N, J)
        excess = np.maximum(lower - values, values - upper)                # > 0 outside the limits
        bad = np.any(excess > margin, axis=1)
        if bad.any():
            k, j = np.unravel_index(np.argmax(excess), excess.shape)
            found.append((f'{name} beyond the joint limits (+{margin:g} rad; worst {meta.joint_names[j]}='
                          f'{values[k, j]:.4g} rad at frame {k}, limits [{lower[j]:g}, {upper[j]:g}])', bad))
    found.append(('constant images (every pixel the same colour: camera not delivering)',
                  constant_images(reader.images)))
    found.append((f'times in the future (later than now + {future_tolerance:g} s)',
                  reader.times > now + future_tolerance))
    return [f'{reader.path.name}: {int(bad.sum())} frame(s) with {what}; first frames '
            f'{np.flatnonzero(bad)[:5].tolist()}' for what, bad in found if bad.any()]


def recover_episode(path: str | Path) -> str | None:
    """Finish an episode whose writer died: cut partial/corrupt trailing frames, mark it 'recovered'.

    Returns a one-line report of what was done, or None if the episode needed nothing (complete, or still being
    written by a live process).
    """
    path = Path(path)
    info = _read_json(path / META_FILE)
    if info.get('status') != 'recording' or writer_alive(info):
        return None
    meta = read_dataset_meta(path.parent)
    dtype = frame_dtype(meta.n_joints)
    n_images = (path / IMAGES_FILE).stat().st_size // meta.frame_bytes if (path / IMAGES_FILE).exists() else 0
    records = np.fromfile(path / FRAMES_FILE, dtype=dtype) if (path / FRAMES_FILE).exists() else \
        np.zeros(0, dtype)
    n = min(n_images, len(records))
    good = _record_crcs(records[:n]) == records['crc'][:n]
    n = int(np.argmin(good)) if not good.all() else n   # keep the longest prefix of intact records
    with open(path / IMAGES_FILE, 'rb') as images:
        while n and zlib.crc32(_read_at(images, (n - 1) * meta.frame_bytes, meta.frame_bytes)) != \
                records['image_crc'][n - 1]:
            n -= 1   # images hit by a power loss at the end of the file
    dropped = max(n_images, len(records)) - n
    os.truncate(path / IMAGES_FILE, n * meta.frame_bytes)
    os.truncate(path / FRAMES_FILE, n * dtype.itemsize)
    info.update(status='recovered', n_frames=n, recovered=time.time(), frames_dropped_on_recovery=dropped)
    _write_json_atomic(path / META_FILE, info)
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


def open_episodes(root: str | Path, check_images: bool = False) -> list[EpisodeReader]:
    """Readers of every readable episode of `root`; corrupt ones are skipped with a DatasetWarning."""
    meta = read_dataset_meta(root)
    readers = []
    for path in episode_dirs(root):
        try:
            reader = EpisodeReader(path, meta)
            bad = reader.verify_images() if check_images else []
            if bad:
                raise DatasetError(f'{path.name}/{IMAGES_FILE}: image CRC mismatch in frames {bad[:10]}')
        except (DatasetError, OSError) as exc:
            warnings.warn(f'skipping corrupt episode {path.name}: {exc}', DatasetWarning, stacklevel=2)
            continue
        readers.append(reader)
    return readers
