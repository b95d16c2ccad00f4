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

import dataclasses
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jepa_agent.data.episode_reader import EpisodeReader, open_episodes
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta, Frame, read_dataset_meta
from jepa_agent.robot import RobotDescription

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


class LeRobotImportError(ValueError):
    """A LeRobot dataset cannot be imported (missing files, another layout, joints that do not match)."""


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


def import_lerobot(source: str | Path, out: str | Path, robot: RobotDescription | None = None,
                   video_key: str | None = None) -> list[dict]:
    """Episodes of a LeRobot v3.0 dataset (one camera video, `observation.state` and absolute `action` joint
    vectors, as `export_lerobot` writes) appended to the episode dataset `out`; returns their meta.json contents.

    `robot` gives the joints' limits (LeRobot stores none; its joint names must equal the state's names); without
    it the limits are the data's range and the velocity limit the fastest motion between frames. Actions then follow
    from the states (`dataset.frame_actions`), as for every source; velocities are unknown (NaN)."""
    source = Path(source)
    info = _read_json(source / 'meta/info.json')
    if not str(info.get('codebase_version', '')).startswith('v3'):
        raise LeRobotImportError(f'{source}: codebase_version {info.get("codebase_version")!r}; only v3.x is read')
    features, fps = info['features'], float(info['fps'])
    videos = [k for k, v in features.items() if v.get('dtype') == 'video']
    video_key = video_key or (videos[0] if len(videos) == 1 else None)
    if video_key not in videos or 'observation.state' not in features or 'action' not in features:
        raise LeRobotImportError(f'{source}: needs observation.state, action and one video (--video-key among '
                                 f'{videos}); it has {sorted(features)}')
    names = list(features['observation.state']['names'])
    frames = _read_tables(source / 'data')
    state = np.stack(frames.column('observation.state').to_numpy(zero_copy_only=False)).astype(np.float64)
    action = np.stack(frames.column('action').to_numpy(zero_copy_only=False)).astype(np.float64)
    episode_of = frames.column('episode_index').to_numpy()
    episodes = _read_tables(source / 'meta/episodes')
    robot = robot or _robot_from_data(names, state, action, episode_of, fps)
    if list(robot.joint_names) != names:
        raise LeRobotImportError(f'{source}: joints {names}, the robot description {robot.joint_names}')
    height, width = features[video_key]['shape'][:2]
    meta = DatasetMeta(**dataclasses.asdict(robot), rate_hz=fps, image_height=height, image_width=width,
                       source=f'lerobot:{source}')
    written, decoded = [], {}
    for row in episodes.to_pylist():
        rows = np.flatnonzero(episode_of == row['episode_index'])
        video = source / info['video_path'].format(video_key=video_key,
                                                   chunk_index=row[f'videos/{video_key}/chunk_index'],
                                                   file_index=row[f'videos/{video_key}/file_index'])
        if video not in decoded:
            decoded[video] = _decode(video)
        first = round(row[f'videos/{video_key}/from_timestamp'] * fps)
        images = decoded[video][first:first + len(rows)]
        if len(images) != len(rows):
            raise LeRobotImportError(f'{video}: {len(images)} frames for episode {row["episode_index"]}, '
                                     f'{len(rows)} expected')
        task = (row.get('tasks') or [''])[0]
        with EpisodeWriter(out, meta, task=task, info={'lerobot_episode': row['episode_index']}) as writer:
            for k, (image, q, target) in enumerate(zip(images, state[rows], action[rows])):
                t = k / fps
                writer.append(Frame(time=t, image=image, qpos=q, qvel=np.full(len(names), np.nan), target=target,
                                    image_stamp=t, joint_stamp=t))
        written.append(writer.close())
    return written


def _robot_from_data(names: list[str], state: np.ndarray, action: np.ndarray, episode_of: np.ndarray,
                     fps: float) -> RobotDescription:
    values = np.concatenate([state, action])
    same_episode = episode_of[1:] == episode_of[:-1]
    speed = np.abs(np.diff(state, axis=0))[same_episode] * fps
    fastest = speed.max(axis=0) if len(speed) else np.ones(len(names))
    return RobotDescription(names, values.min(axis=0).tolist(), values.max(axis=0).tolist(),
                            np.maximum(fastest, 1e-3).tolist())


def _read_tables(folder: Path) -> pa.Table:
    paths = sorted(folder.rglob('*.parquet'))
    if not paths:
        raise LeRobotImportError(f'no parquet files under {folder}')
    return pa.concat_tables([pq.read_table(p) for p in paths])


def _decode(path: Path) -> np.ndarray:
    """Every frame of a video as (N, H, W, 3) uint8 RGB, in presentation order."""
    if not path.exists():
        raise LeRobotImportError(f'missing video {path}')
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LeRobotImportError(f'cannot read {path}: {exc}') from exc
