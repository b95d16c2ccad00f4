"""Episodes on disk: the format (layout, metadata, frame records) shared by the writer, the reader and recovery.

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

Writing and recovery: `episode_writer.py`; reading: `episode_reader.py`; what counts as a bad frame: `quality.py`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jepa_agent.robot import RobotDescription

FORMAT_VERSION = 1
DATASET_FILE = 'dataset.json'
META_FILE = 'meta.json'
IMAGES_FILE = 'images.u8'
FRAMES_FILE = 'frames.bin'
EPISODE_PREFIX = 'episode_'
#: episode states: being written, closed normally, closed by recovery after the writer died
STATUSES = ('recording', 'complete', 'recovered')


class DatasetError(ValueError):
    """A dataset or episode on disk is missing, inconsistent or corrupt; the message says which file and why."""


class FrameError(ValueError):
    """A frame is unusable (wrong shape, non-finite or out-of-limit joints, time going backwards, a constant image):
    it cannot be appended to an episode or learned from; skip it."""


class DatasetWarning(UserWarning):
    """Something in a dataset was skipped (e.g. a corrupt episode); the data that remains is sound."""


@dataclass
class DatasetMeta:
    """What every episode of a dataset shares, stored in DIR/dataset.json and in the metadata of every checkpoint
    trained on it: the robot description (joints and limits, `jepa_agent.robot`), the frame rate and the camera
    image."""

    joint_names: list[str]
    """Joint order of every qpos/qvel/target vector."""
    lower: list[float]
    """Joint position lower limits (rad)."""
    upper: list[float]
    """Joint position upper limits (rad)."""
    velocity_limit: list[float]
    """Joint velocity limits (rad/s)."""
    rate_hz: float
    """Frame rate of the episodes: one world-model step per frame."""
    image_height: int
    image_width: int
    encoding: str = 'rgb8'
    """Stored image encoding (always rgb8; other camera encodings are converted when recording)."""
    source: str = ''
    """Where the data came from, e.g. 'sim:collect-sim', 'ros:recorder', 'bag:/path/to/bag'."""

    def __post_init__(self):
        robot = RobotDescription.of(self)          # validates joints and limits, as floats
        self.lower, self.upper, self.velocity_limit = robot.lower, robot.upper, robot.velocity_limit
        if not self.rate_hz > 0:
            raise ValueError(f'rate_hz must be > 0, got {self.rate_hz=}')
        if self.image_height <= 0 or self.image_width <= 0:
            raise ValueError(f'image size must be positive, got {self.image_height=} {self.image_width=}')
        if self.encoding != 'rgb8':
            raise ValueError(f'stored encoding must be rgb8, got {self.encoding=}')

    @property
    def robot(self) -> RobotDescription:
        return RobotDescription.of(self)

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
        """The description held in `data` (dataset.json, a checkpoint's metadata), other keys ignored; ValueError
        naming missing keys: nothing about the arm is guessed."""
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in data]
        if missing:
            raise ValueError(f'dataset description lacks {missing}')
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})


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


def record_crcs(records: np.ndarray) -> np.ndarray:
    raw = records.view(np.uint8).reshape(len(records), records.dtype.itemsize)[:, :-4]
    return np.array([zlib.crc32(row) for row in raw], dtype=np.uint32)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + '.tmp')
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f'cannot read {path}: {exc}') from exc
    if not isinstance(data, dict):
        raise DatasetError(f'{path} must hold a JSON object')
    return data


def process_identity() -> dict:
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


def read_dataset_meta(root: str | Path) -> DatasetMeta:
    path = Path(root) / DATASET_FILE
    data = read_json(path)
    if data.get('format_version') != FORMAT_VERSION:
        raise DatasetError(f'{path}: unsupported format_version {data.get("format_version")!r} '
                           f'(this jepa_agent reads {FORMAT_VERSION})')
    try:
        return DatasetMeta.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f'{path}: invalid metadata: {exc}') from exc


def episode_dirs(root: str | Path) -> list[Path]:
    """Episode directories of a dataset, in index order."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(EPISODE_PREFIX)
                  and p.name[len(EPISODE_PREFIX):].isdigit())
