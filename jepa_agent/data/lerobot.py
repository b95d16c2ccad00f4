"""Export an episode dataset in the LeRobot dataset v3.0 layout (parquet + mp4, no `lerobot` dependency).

    jepa-agent data export-lerobot data/babble --out data/babble_lerobot

Written layout (every episode in one file per kind, chunk 000 / file 000)::

    meta/info.json                                  # codebase_version v3.0, fps, counts, features, path templates
    meta/stats.json                                 # min/max/mean/std/count per feature (images per channel, 0..1)
    meta/tasks.parquet                              # task text (index) -> task_index
    meta/episodes/chunk-000/file-000.parquet        # per episode: length, tasks, row range, video time range
    data/chunk-000/file-000.parquet                 # per frame: observation.state, action, indices, timestamp
    videos/observation.images.camera/chunk-000/file-000.mp4   # H.264, episodes back to back

`observation.state` is the measured joint position and `action` the commanded joint target (absolute, LeRobot's
convention); jepa_agent's action is the motion to the next frame, the difference of consecutive `observation.state`
rows (`jepa_agent.data.dataset.frame_actions`). Timestamps are nominal (frame_index / fps),
which is what LeRobot's loader checks and how the video frames are placed; recorded stamps stay in the source.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jepa_agent.data.episode_reader import EpisodeReader, open_episodes
from jepa_agent.data.episodes import read_dataset_meta

CODEBASE_VERSION = 'v3.0'
IMAGE_KEY = 'observation.images.camera'
CHUNK_FILE = 'chunk-{chunk_index:03d}/file-{file_index:03d}'
DATA_PATH = 'data/' + CHUNK_FILE + '.parquet'
VIDEO_PATH = 'videos/{video_key}/' + CHUNK_FILE + '.mp4'
EPISODES_PATH = 'meta/episodes/' + CHUNK_FILE + '.parquet'
FIRST = {'chunk_index': 0, 'file_index': 0}
#: statistics sample at most this many frames per episode for image stats (a mean over thousands is plenty)
IMAGE_STATS_FRAMES = 32


class ExportError(ValueError):
    """The dataset cannot be exported (nothing readable, bad frame rate, output exists); the text says why."""


def export_lerobot(source: str | Path, out: str | Path, robot_type: str = 'jepa_agent_arm',
                   overwrite: bool = False) -> dict:
    """Write `source` (an episode dataset) as a LeRobot v3.0 dataset in `out`; returns the info.json content."""
    meta = read_dataset_meta(source)
    fps = int(round(meta.rate_hz))
    if abs(fps - meta.rate_hz) > 1e-6 or fps <= 0:
        raise ExportError(f'LeRobot needs an integer fps; this dataset records at {meta.rate_hz} Hz')
    if meta.image_height % 2 or meta.image_width % 2:
        raise ExportError(f'H.264 (yuv420p) needs even image sizes, got {meta.image_width}x{meta.image_height}')
    episodes = [r for r in open_episodes(source, check_images=True) if len(r)]
    if not episodes:
        raise ExportError(f'{source} has no readable, non-empty episodes')
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f'{out} exists and is not empty (use --overwrite to replace it)')
        shutil.rmtree(out)

    tasks = sorted({r.info.get('task') or 'default' for r in episodes})
    task_index = {t: i for i, t in enumerate(tasks)}
    lengths = np.array([len(r) for r in episodes])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    joints = meta.joint_names

    _write_parquet(out / DATA_PATH.format(**FIRST), _frame_table(episodes, task_index, fps, len(joints)))
    _write_video(out / VIDEO_PATH.format(video_key=IMAGE_KEY, **FIRST), episodes, fps)
    _write_parquet(out / EPISODES_PATH.format(**FIRST), pa.table({
        'episode_index': pa.array(np.arange(len(episodes)), pa.int64()),
        'tasks': pa.array([[r.info.get('task') or 'default'] for r in episodes], pa.list_(pa.string())),
        'length': pa.array(lengths, pa.int64()),
        'data/chunk_index': pa.array(np.zeros(len(episodes)), pa.int64()),
        'data/file_index': pa.array(np.zeros(len(episodes)), pa.int64()),
        'dataset_from_index': pa.array(starts, pa.int64()),
        'dataset_to_index': pa.array(starts + lengths, pa.int64()),
        f'videos/{IMAGE_KEY}/chunk_index': pa.array(np.zeros(len(episodes)), pa.int64()),
        f'videos/{IMAGE_KEY}/file_index': pa.array(np.zeros(len(episodes)), pa.int64()),
        f'videos/{IMAGE_KEY}/from_timestamp': pa.array(starts / fps, pa.float64()),
        f'videos/{IMAGE_KEY}/to_timestamp': pa.array((starts + lengths) / fps, pa.float64()),
        'meta/episodes/chunk_index': pa.array(np.zeros(len(episodes)), pa.int64()),
        'meta/episodes/file_index': pa.array(np.zeros(len(episodes)), pa.int64()),
        'source_episode': pa.array([r.path.name for r in episodes], pa.string()),
    }))
    _write_tasks(out / 'meta/tasks.parquet', tasks)

    features = _features(meta.image_height, meta.image_width, joints, fps)
    info = {'codebase_version': CODEBASE_VERSION, 'robot_type': robot_type, 'total_episodes': len(episodes),
            'total_frames': int(lengths.sum()), 'total_tasks': len(tasks), 'chunks_size': 1000,
            'data_files_size_in_mb': 100, 'video_files_size_in_mb': 500, 'fps': fps,
            'splits': {'train': f'0:{len(episodes)}'}, 'data_path': DATA_PATH, 'video_path': VIDEO_PATH,
            'features': features}
    _write_json(out / 'meta/info.json', info)
    _write_json(out / 'meta/stats.json', _stats(out / DATA_PATH.format(**FIRST), episodes, features))
    return info


def _features(height: int, width: int, joints: list[str], fps: int) -> dict:
    scalar = {'shape': [1], 'names': None}
    return {
        IMAGE_KEY: {'dtype': 'video', 'shape': [height, width, 3], 'names': ['height', 'width', 'channels'],
                    'info': {'video.height': height, 'video.width': width, 'video.codec': 'h264',
                             'video.pix_fmt': 'yuv420p', 'video.is_depth_map': False, 'video.fps': fps,
                             'video.channels': 3, 'has_audio': False}},
        'observation.state': {'dtype': 'float32', 'shape': [len(joints)], 'names': list(joints)},
        'action': {'dtype': 'float32', 'shape': [len(joints)], 'names': list(joints)},
        'timestamp': {'dtype': 'float32', **scalar},
        'frame_index': {'dtype': 'int64', **scalar},
        'episode_index': {'dtype': 'int64', **scalar},
        'index': {'dtype': 'int64', **scalar},
        'task_index': {'dtype': 'int64', **scalar},
    }


def _frame_table(episodes: list[EpisodeReader], task_index: dict[str, int], fps: int, n_joints: int) -> pa.Table:
    vector = pa.list_(pa.float32(), n_joints)
    qpos = np.concatenate([r.qpos for r in episodes]).astype(np.float32)
    target = np.concatenate([r.target for r in episodes]).astype(np.float32)
    frame_index = np.concatenate([np.arange(len(r)) for r in episodes])
    episode_index = np.concatenate([np.full(len(r), e) for e, r in enumerate(episodes)])
    tasks = np.concatenate([np.full(len(r), task_index[r.info.get('task') or 'default']) for r in episodes])
    return pa.table({
        'observation.state': pa.FixedSizeListArray.from_arrays(pa.array(qpos.ravel()), n_joints).cast(vector),
        'action': pa.FixedSizeListArray.from_arrays(pa.array(target.ravel()), n_joints).cast(vector),
        'timestamp': pa.array((frame_index / fps).astype(np.float32)),
        'frame_index': pa.array(frame_index, pa.int64()),
        'episode_index': pa.array(episode_index, pa.int64()),
        'index': pa.array(np.arange(len(frame_index)), pa.int64()),
        'task_index': pa.array(tasks, pa.int64()),
    })


def _write_video(path: Path, episodes: list[EpisodeReader], fps: int) -> None:
    """All episodes back to back, frame i at i / fps; every other frame a keyframe for cheap seeking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=fps)
        stream.height, stream.width = episodes[0].meta.image_height, episodes[0].meta.image_width
        stream.pix_fmt = 'yuv420p'
        stream.options = {'crf': '18', 'g': '2', 'preset': 'fast'}
        pts = 0
        for reader in episodes:
            for image in reader.images:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format='rgb24')
                frame.pts = pts
                pts += 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """tasks.parquet as pandas writes a frame indexed by task text (LeRobot reads it with pd.read_parquet)."""
    table = pa.table({'task_index': pa.array(np.arange(len(tasks)), pa.int64()), 'task': pa.array(tasks)})
    pandas_meta = {'index_columns': ['task'], 'column_indexes': [], 'columns': [
        {'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64', 'numpy_type': 'int64',
         'metadata': None},
        {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode', 'numpy_type': 'object', 'metadata': None}],
        'creator': {'library': 'pyarrow', 'version': pa.__version__}, 'pandas_version': '2.2.0'}
    _write_parquet(path, table.replace_schema_metadata({b'pandas': json.dumps(pandas_meta).encode()}))


def _stats(data_path: Path, episodes: list[EpisodeReader], features: dict) -> dict:
    table = pq.read_table(data_path)
    stats = {}
    for key in features:
        if key == IMAGE_KEY:
            continue
        column = table.column(key).combine_chunks()
        values = np.stack(column.to_numpy(zero_copy_only=False)) if features[key]['shape'] != [1] else \
            column.to_numpy().reshape(-1, 1)
        stats[key] = _summary(values.astype(np.float64), axis=0)
    sample = np.concatenate([r.images[np.linspace(0, len(r) - 1, min(len(r), IMAGE_STATS_FRAMES)).astype(int)]
                             for r in episodes]).astype(np.float64) / 255.0      # (N, H, W, 3)
    pixels = sample.reshape(-1, 3)
    stats[IMAGE_KEY] = {k: (np.asarray(v).reshape(3, 1, 1).tolist() if k != 'count' else v)
                        for k, v in _summary(pixels, axis=0).items()}
    stats[IMAGE_KEY]['count'] = [int(sample.shape[0])]
    return stats


def _summary(values: np.ndarray, axis: int) -> dict:
    return {'min': values.min(axis).tolist(), 'max': values.max(axis).tolist(), 'mean': values.mean(axis).tolist(),
            'std': values.std(axis).tolist(), 'count': [int(values.shape[axis])]}


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))
