"""Reading episodes: a memory-mapped, checked view of one episode, and every readable episode of a dataset."""
from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np

from jepa_agent.data.episodes import (FRAMES_FILE, IMAGES_FILE, META_FILE, STATUSES, DatasetError, DatasetMeta,
                                      DatasetWarning, episode_dirs, frame_dtype, read_dataset_meta, read_json,
                                      record_crcs, writer_alive)


class EpisodeReader:
    """Read-only view of one episode: memory-mapped images and frame records of its complete frames.

    Opening checks structure (meta.json, file sizes, record CRCs, increasing times, finite joints) and raises
    DatasetError if any fails; `verify_images()` also checks every image CRC. An interrupted episode (writer
    died) exposes its complete frames, and `partial_bytes` says how much a crash left over.
    """

    def __init__(self, path: str | Path, meta: DatasetMeta | None = None):
        self.path = Path(path)
        self.meta = meta or read_dataset_meta(self.path.parent)
        self.info = read_json(self.path / META_FILE)
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
        bad = np.flatnonzero(record_crcs(self.frames) != self.frames['crc'])
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
