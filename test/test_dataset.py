"""WindowDataset: window indexing, actions derived at load time, corrupt episodes skipped, DataLoader workers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_agent.data.collect import collect_sim
from jepa_agent.data.dataset import WindowDataset, collate_windows
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episodes import DatasetWarning, episode_dirs
from jepa_agent.sim.arm_env import make_env
from test_episodes import write_episode


def test_windows_cover_episodes_without_crossing(tmp_path):
    write_episode(tmp_path, 10)
    write_episode(tmp_path, 3)       # shorter than the window: contributes nothing
    write_episode(tmp_path, 7, start=100)
    ds = WindowDataset(tmp_path, window=4, stride=2)
    assert len(ds) == (10 - 4) // 2 + 1 + (7 - 4) // 2 + 1
    assert [ds.locate(i) for i in range(len(ds))] == [(0, 0), (0, 2), (0, 4), (0, 6), (1, 0), (1, 2)]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_item_matches_stored_frames_and_derives_actions(tmp_path):
    write_episode(tmp_path, 9)
    ds = WindowDataset(tmp_path, window=5, stride=1)
    reader = EpisodeReader(episode_dirs(tmp_path)[0])
    item = ds[3]
    assert item['images'].dtype == torch.uint8 and item['images'].shape == (5, 3, 8, 6)
    assert item['actions'].dtype == torch.float32 and item['actions'].shape == (4, 2)
    assert item['qpos'].dtype == torch.float32 and item['qpos'].shape == (5, 2)
    np.testing.assert_array_equal(item['images'].permute(0, 2, 3, 1).numpy(), reader.images[3:8])
    np.testing.assert_allclose(item['actions'].numpy(), reader.qpos[4:8] - reader.qpos[3:7], rtol=1e-6)
    np.testing.assert_allclose(item['qpos'].numpy(), reader.qpos[3:8], rtol=1e-6)
    assert ds.meta['joint_names'] == ['a', 'b'] and ds.meta['rate_hz'] == 10.0


def test_frameskip_windows_take_every_kth_frame_and_the_motion_between(tmp_path):
    write_episode(tmp_path, 12)
    write_episode(tmp_path, 6)       # shorter than a window's span (3 − 1) × 3 + 1 = 7: contributes nothing
    ds = WindowDataset(tmp_path, window=3, stride=2, frameskip=3)
    reader = EpisodeReader(episode_dirs(tmp_path)[0])
    assert ds.span == 7 and len(ds) == (12 - 7) // 2 + 1
    item = ds[1]                     # frames 2, 5, 8
    np.testing.assert_array_equal(item['images'].permute(0, 2, 3, 1).numpy(), reader.images[2:9:3])
    np.testing.assert_allclose(item['actions'].numpy(), reader.qpos[[5, 8]] - reader.qpos[[2, 5]], rtol=1e-6)
    with pytest.raises(ValueError, match='frameskip'):
        WindowDataset(tmp_path, window=3, frameskip=0)


def test_corrupt_episode_is_skipped_with_warning(tmp_path):
    write_episode(tmp_path, 6)
    write_episode(tmp_path, 6)
    (episode_dirs(tmp_path)[0] / 'meta.json').write_text('{ not json')
    with pytest.warns(DatasetWarning, match='episode_000000'):
        ds = WindowDataset(tmp_path, window=3)
    assert len(ds) == 4 and ds.episode_paths == [episode_dirs(tmp_path)[1]]


def test_sim_collection_through_multiprocess_loader(tmp_path):
    env = make_env(image_size=32)
    collect_sim(tmp_path, episodes=2, steps=12, seed=3, env=env)
    env.close()
    ds = WindowDataset(tmp_path, window=4, stride=4)
    assert len(ds) == 6 and ds.meta['image_height'] == 32 and ds.meta['source'] == 'sim:collect-sim'
    batches = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2))
    images = torch.cat([b['images'] for b in batches])
    assert images.shape == (6, 4, 3, 32, 32)
    np.testing.assert_array_equal(images[1].numpy(), ds[1]['images'].numpy())
    actions = torch.cat([b['actions'] for b in batches])
    assert actions.abs().max() > 0.01                     # babbling moves the arm


def test_collate_windows_equals_default_collate(tmp_path):
    write_episode(tmp_path, 10)
    ds = WindowDataset(tmp_path, window=3)
    items = [ds[i] for i in (0, 4, 7)]
    fast, reference = collate_windows(items), torch.utils.data.default_collate(items)
    assert fast.keys() == reference.keys()
    for key in fast:
        assert fast[key].dtype == reference[key].dtype and torch.equal(fast[key], reference[key])
