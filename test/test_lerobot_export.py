"""export-lerobot: a v3.0 layout whose info.json agrees with its parquet files and its video."""
from __future__ import annotations

import json

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from jepa_agent.data.episode_reader import open_episodes
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta
from test_data_cli import cli_main
from test_episodes import make_frame

META = DatasetMeta(joint_names=['a', 'b'], lower=[-1, -2], upper=[1, 2], velocity_limit=[1, 1], rate_hz=10.0,
                   image_height=32, image_width=48, source='test')


def smooth_frame(k: int, episode: int):
    """Frames with smooth content (video codecs keep it nearly lossless) and distinct per episode."""
    frame = make_frame(k, META)
    yy, xx = np.mgrid[0:32, 0:48]
    frame.image = np.stack([xx * 4 + k * 2, yy * 3 + episode * 60, np.full_like(xx, 40 * episode)],
                           axis=-1).astype(np.uint8)
    return frame


@pytest.fixture
def exported(tmp_path):
    for episode, (n, task) in enumerate([(12, 'reach'), (7, 'push'), (9, 'reach')]):
        with EpisodeWriter(tmp_path / 'src', META, task=task) as w:
            for k in range(n):
                w.append(smooth_frame(k, episode))
    assert cli_main(['data', 'export-lerobot', str(tmp_path / 'src'), '--out', str(tmp_path / 'lr')]) == 0
    return tmp_path / 'lr', open_episodes(tmp_path / 'src')


def test_info_json_matches_the_files(exported):
    root, sources = exported
    info = json.loads((root / 'meta/info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['fps'] == 10
    data = pq.read_table(root / info['data_path'].format(chunk_index=0, file_index=0))
    episodes = pq.read_table(root / 'meta/episodes/chunk-000/file-000.parquet').to_pylist()
    tasks = pq.read_table(root / 'meta/tasks.parquet').to_pylist()
    assert info['total_frames'] == data.num_rows == 28 and info['total_episodes'] == len(episodes) == 3
    assert info['total_tasks'] == len(tasks) == 2 and info['splits'] == {'train': '0:3'}
    # every non-video feature is a column with the declared shape and dtype
    for key, feature in info['features'].items():
        if feature['dtype'] == 'video':
            continue
        column_type = data.column(key).type
        if feature['shape'] != [1]:
            assert column_type.list_size == feature['shape'][0]
            column_type = column_type.value_type
        assert np.dtype(column_type.to_pandas_dtype()).name == feature['dtype'], key
    assert set(json.loads((root / 'meta/stats.json').read_text())) == set(info['features'])
    # episodes index the data rows and the video time range consistently
    task_index = {t['task']: t['task_index'] for t in tasks}
    for e, (row, source) in enumerate(zip(episodes, sources)):
        assert row['episode_index'] == e and row['length'] == len(source)
        rows = data.slice(row['dataset_from_index'], row['length']).to_pydict()
        assert set(rows['episode_index']) == {e} and rows['frame_index'] == list(range(len(source)))
        assert set(rows['task_index']) == {task_index[row['tasks'][0]]} and row['tasks'] == [source.info['task']]
        np.testing.assert_allclose(rows['observation.state'], source.qpos, rtol=1e-6)
        np.testing.assert_allclose(rows['action'], source.target, rtol=1e-6)
        key = 'observation.images.camera'
        assert row[f'videos/{key}/to_timestamp'] - row[f'videos/{key}/from_timestamp'] == \
            pytest.approx(row['length'] / info['fps'])


def test_video_holds_every_frame_at_its_timestamp(exported):
    root, sources = exported
    info = json.loads((root / 'meta/info.json').read_text())
    key = 'observation.images.camera'
    path = root / info['video_path'].format(video_key=key, chunk_index=0, file_index=0)
    with av.open(str(path)) as container:
        frames = [(f.time, f.to_ndarray(format='rgb24')) for f in container.decode(video=0)]
    assert len(frames) == info['total_frames']
    assert frames[0][1].shape == tuple(info['features'][key]['shape'])
    episodes = pq.read_table(root / 'meta/episodes/chunk-000/file-000.parquet').to_pylist()
    for row, source in zip(episodes, sources):
        for k in (0, len(source) - 1):   # first and last frame of each episode, found by timestamp
            t = row[f'videos/{key}/from_timestamp'] + k / info['fps']
            time, image = min(frames, key=lambda f: abs(f[0] - t))
            assert time == pytest.approx(t, abs=1e-3)
            assert np.abs(image.astype(int) - source.images[k]).mean() < 3.0


def test_refuses_non_empty_output_and_empty_dataset(exported, tmp_path, capsys):
    root, _ = exported
    assert cli_main(['data', 'export-lerobot', str(tmp_path / 'src'), '--out', str(root)]) == 1
    assert 'not empty' in capsys.readouterr().err
    with EpisodeWriter(tmp_path / 'empty', META):
        pass
    assert cli_main(['data', 'export-lerobot', str(tmp_path / 'empty'), '--out', str(tmp_path / 'x')]) == 1
    assert 'no readable' in capsys.readouterr().err


def test_import_lerobot_round_trips_an_export(exported, tmp_path, capsys):
    """import-lerobot reads back what export-lerobot wrote: the same episodes, tasks, joints, states and targets (so
    the same actions), and the images within video-codec error."""
    root, sources = exported
    robot = tmp_path / 'robot.yaml'
    robot.write_text('recorder:\n  ros__parameters:\n    joint_names: [a, b]\n    lower: [-1, -2]\n    upper: [1, 2]\n'
                     '    velocity_limit: [1, 1]\n')
    assert cli_main(['data', 'import-lerobot', str(root), '--out', str(tmp_path / 'back'), '--config',
                     str(robot)]) == 0
    assert 'imported 3 episode(s), 28 frames' in capsys.readouterr().out
    back = open_episodes(tmp_path / 'back')
    assert back[0].meta.joint_names == ['a', 'b'] and back[0].meta.upper == [1, 2] and back[0].meta.rate_hz == 10.0
    for source, copy in zip(sources, back):
        assert len(copy) == len(source) and copy.info['task'] == source.info['task']
        np.testing.assert_allclose(copy.qpos, source.qpos, atol=1e-6)
        np.testing.assert_allclose(copy.target, source.target, atol=1e-6)
        assert np.abs(copy.images.astype(int) - source.images).mean() < 2.0
    # without a robot description the limits come from the data; another robot's joints are refused
    assert cli_main(['data', 'import-lerobot', str(root), '--out', str(tmp_path / 'derived')]) == 0
    derived = open_episodes(tmp_path / 'derived')[0].meta
    states = np.concatenate([r.qpos for r in sources] + [r.target for r in sources])
    np.testing.assert_allclose(derived.lower, states.min(axis=0), atol=1e-6)
    robot.write_text(robot.read_text().replace('[a, b]', '[a, c]'))
    assert cli_main(['data', 'import-lerobot', str(root), '--out', str(tmp_path / 'x'), '--config', str(robot)]) == 1
    assert "joints ['a', 'b'], the robot description ['a', 'c']" in capsys.readouterr().err
    assert cli_main(['data', 'import-lerobot', str(tmp_path / 'none'), '--out', str(tmp_path / 'y')]) == 1
    assert 'cannot read' in capsys.readouterr().err
