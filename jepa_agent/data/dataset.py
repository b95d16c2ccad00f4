"""Fixed-length training windows over every valid episode of a dataset, read from memory-mapped files.

An action is the joint motion from one frame to the next (measured position at frame k+1 minus at frame k,
`frame_actions`), the same for every data source: a recording through the nodes, `collect-sim`, a bag, teleop,
another arm. What a command makes the arm do depends on its controller, latency and timing, and the planner commands
joint motions that a position controller realises, so the model learns how the view responds to the arm's motion
(V-JEPA 2-AC likewise takes the change in measured end-effector state between frames as its action). Commanded
targets are still recorded. Actions are derived at load time, so the definition can change without re-recording.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa_agent.data.episode_reader import EpisodeReader, open_episodes
from jepa_agent.data.episodes import read_dataset_meta


def frame_actions(qpos: np.ndarray) -> np.ndarray:
    """(T-1, J) actions of T consecutive frames' measured joint positions (T, J): the motion to the next frame."""
    return np.diff(np.asarray(qpos), axis=-2)


def action_statistics(root: str | Path) -> dict[str, float]:
    """How the arm moves in a dataset, pooled over every episode and joint; two sources whose numbers agree move the
    arm alike. `command_response`: the fraction of the commanded step (target − measured position at a frame) the
    joints move by the next frame (least-squares slope through the origin), which the controller, the latency and
    the commanding node's timing decide. `mean_speed`: the mean joint speed between frames (rad/s)."""
    moved = commanded = speed = 0.0
    count = 0
    for reader in open_episodes(root):
        qpos, target = reader.qpos.astype(float), reader.target.astype(float)
        motion, step = frame_actions(qpos), target[:-1] - qpos[:-1]
        moved, commanded = moved + float(np.sum(step * motion)), commanded + float(np.sum(step * step))
        speed += float(np.sum(np.abs(motion)))
        count += motion.size
    if commanded == 0:
        raise ValueError(f'{root}: no commanded motion in any episode')
    rate = read_dataset_meta(Path(root)).rate_hz
    return {'command_response': moved / commanded, 'mean_speed': speed / count * rate}


class WindowDataset(Dataset):
    """`ds[i]` → {'images': uint8 (T,3,H,W), 'actions': float32 (T-1,J), 'qpos': float32 (T,J)}, T = window.

    A window's frames are `frameskip` frames apart (a model that looks that many control periods ahead per step;
    its actions are the joint motion over those periods), so it spans `span` = (window − 1) × frameskip + 1
    recorded frames. Windows start every `stride` frames inside one episode and never cross episodes. Corrupt
    episodes are skipped with a DatasetWarning; `check_images=True` also verifies every image CRC when opening
    (slower). Memory maps are opened lazily per process, so the dataset is cheap to pickle into DataLoader workers.
    """

    def __init__(self, root: str | Path, window: int, stride: int = 1, check_images: bool = False,
                 frameskip: int = 1):
        if window < 2 or stride < 1 or frameskip < 1:
            raise ValueError(f'window must be >= 2, stride and frameskip >= 1, got {window=} {stride=} {frameskip=}')
        self.root, self.window, self.stride, self.frameskip = Path(root), window, stride, frameskip
        self.span = (window - 1) * frameskip + 1
        self._meta = read_dataset_meta(self.root)
        self.meta = self._meta.to_dict()
        readers = open_episodes(self.root, check_images=check_images)
        usable = [r for r in readers if len(r) >= self.span]
        self.episode_paths = [r.path for r in usable]
        self.episode_lengths = np.array([len(r) for r in usable], dtype=np.int64)
        counts = (self.episode_lengths - self.span) // stride + 1
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._readers: list[EpisodeReader] | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _episode_readers(self) -> list[EpisodeReader]:
        if self._readers is None or self._pid != os.getpid():
            self._readers = [EpisodeReader(p, self._meta) for p in self.episode_paths]
            self._pid = os.getpid()
        return self._readers

    def locate(self, index: int) -> tuple[int, int]:
        """(episode number in `episode_paths`, first frame) of window `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f'window {index} out of range 0..{len(self) - 1}')
        episode = int(np.searchsorted(self._starts, index, side='right') - 1)
        return episode, int(index - self._starts[episode]) * self.stride

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        episode, start = self.locate(index)
        return self.frames(episode, start, start + self.span, self.frameskip)

    def frames(self, episode: int, start: int, stop: int, step: int = 1) -> dict[str, torch.Tensor]:
        """Every `step`-th frame of start..stop-1 of episode `episode` (of `episode_paths`), in a window's layout."""
        reader = self._episode_readers()[episode]
        frames = slice(start, stop, step)
        images = np.ascontiguousarray(reader.images[frames].transpose(0, 3, 1, 2))   # (T,3,H,W)
        records = reader.frames[frames]
        qpos = records['qpos'].astype(np.float32)                                  # (T,J)
        actions = frame_actions(qpos)                                               # (T-1,J)
        return {'images': torch.from_numpy(images), 'actions': torch.from_numpy(actions),
                'qpos': torch.from_numpy(qpos)}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_readers'], state['_pid'] = None, None
        return state


def collate_windows(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """DataLoader collate_fn for WindowDataset items: stacks with numpy (one memcpy per key).

    torch's default collate stacks with intra-op threads, which on a small, busy CPU measured ~40x slower
    (bench/dataset_read.py); this does the same job single-threaded.
    """
    return {key: torch.from_numpy(np.stack([item[key].numpy() for item in items])) for key in items[0]}
