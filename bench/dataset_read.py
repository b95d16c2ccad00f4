"""WindowDataset read throughput: is training ever input-bound?

    .venv/bin/python bench/dataset_read.py [--frames 4000 --image-size 64 --window 4 --batch 64]

Writes a synthetic dataset (random pixels: reading cost does not depend on content), then times random windows
one by one and through a DataLoader (default collate) with 0 and 2 workers.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jepa_agent.data.dataset import WindowDataset, collate_windows
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta, Frame


def write_dataset(root: Path, frames: int, size: int, episode_len: int = 200) -> None:
    meta = DatasetMeta(joint_names=['a', 'b', 'c'], lower=[-1] * 3, upper=[1] * 3, velocity_limit=[1] * 3,
                       rate_hz=10.0, image_height=size, image_width=size, source='bench')
    rng = np.random.default_rng(0)
    for start in range(0, frames, episode_len):
        with EpisodeWriter(root, meta) as writer:
            for k in range(min(episode_len, frames - start)):
                writer.append(Frame(time=0.1 * k, image=rng.integers(0, 256, meta.image_shape, dtype=np.uint8),
                                    qpos=rng.uniform(-1, 1, 3), target=rng.uniform(-1, 1, 3)))


def items_per_second(ds: WindowDataset, seconds: float = 3.0) -> float:
    rng = np.random.default_rng(1)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ds[int(rng.integers(len(ds)))]
        n += 1
    return n / (time.perf_counter() - start)


def loader_items_per_second(ds: WindowDataset, batch: int, workers: int, collate=None, batches: int = 60) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, collate_fn=collate)
    iterator = iter(loader)
    next(iterator)                                     # worker start-up is not throughput
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += len(next(iterator)['images'])
        except StopIteration:
            iterator = iter(loader)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=4000)
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--window', type=int, default=4)
    parser.add_argument('--batch', type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='dataset_read_') as tmp:
        write_dataset(Path(tmp), args.frames, args.image_size)
        start = time.perf_counter()
        ds = WindowDataset(tmp, window=args.window)
        result = {'date': time.strftime('%Y-%m-%d', time.gmtime()), 'frames': args.frames,
                  'image': f'{args.image_size}x{args.image_size}', 'window': args.window, 'windows': len(ds),
                  'open_s': round(time.perf_counter() - start, 3),
                  'getitem_items_per_s': round(items_per_second(ds)),
                  **{f'loader_items_per_s_workers{w}_{name}': round(loader_items_per_second(ds, args.batch, w, fn))
                     for w in (0, 2) for name, fn in (('default_collate', None), ('collate_windows', collate_windows))},
                  'torch_threads': torch.get_num_threads()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
