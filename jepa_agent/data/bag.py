"""Import rosbag2 bags (MCAP or sqlite3, read with `rosbags`) into an episode dataset.

    jepa-agent data import-bag BAG --out DIR [--config config/recorder.yaml] [--image-topic /wrist/image_raw]

Messages are replayed in log-time order through the recorder's own synchronization (`StreamFeeder` →
`FrameSynchronizer`), with the log time standing in for arrival and receipt time, so a bag gives the frames a live
recording of the same streams gives. One episode per bag, or episodes of `episode_frames` frames. The topic names
are the ones recorded in the bag (`BagTopics`): data to look up, not graph names a node would remap.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import DatasetMeta, Frame
from jepa_agent.data.messages import MessageError
from jepa_agent.data.recording import RecorderConfig
from jepa_agent.data.stream import StreamFeeder
from jepa_agent.data.sync import FrameSynchronizer


class BagError(ValueError):
    """The bag cannot be imported (unreadable, or a required topic is missing); the text says why."""


@dataclass(frozen=True)
class BagTopics:
    """Which topics of the bag hold the streams (`import-bag --image-topic` ...); defaults: the standard names."""

    image_topic: str = '/camera/image_raw'
    """Camera images (sensor_msgs/Image); required."""
    joint_states_topic: str = '/joint_states'
    """Measured joint states (sensor_msgs/JointState); required."""
    trajectory_topic: str = '/arm_controller/joint_trajectory'
    """Arm commands, each frame's target (trajectory_msgs/JointTrajectory); optional."""


class BagImporter:
    """Replays one bag into dataset `out`; `skipped` counts bad messages per kind, `episodes` the written ones."""

    def __init__(self, out: str | Path, config: RecorderConfig, source: str):
        self.out, self.config, self.source = Path(out), config, source
        self.sync = FrameSynchronizer(len(config.joint_names), config.sync_config())
        self.feeder = StreamFeeder(self.sync, config.joint_names, lower=config.lower, upper=config.upper)
        self.skipped: Counter = Counter()
        self.first_errors: dict[str, str] = {}
        self.episodes: list[dict] = []
        self._writer: EpisodeWriter | None = None
        self._meta: DatasetMeta | None = None

    def feed(self, kind: str, msg, log_time: float) -> None:
        try:
            if kind == 'image':
                stamp, rgb = self.feeder.decode_image(msg, log_time)
                self._ensure_meta(rgb.shape)
                frames = self.feeder.add_image(stamp, rgb, log_time)
            elif kind == 'joints':
                frames = self.feeder.joints(msg, log_time, log_time)
            else:
                frames = self.feeder.command(msg, log_time, log_time)
        except MessageError as exc:
            self.skipped[kind] += 1
            self.first_errors.setdefault(kind, str(exc))
            return
        self.store(frames)

    def _ensure_meta(self, shape: tuple[int, int, int]) -> None:
        if self._meta is None:   # the first valid image fixes the dataset's camera size, as in the recorder
            height, width, _ = shape
            self._meta = self.config.dataset_meta(height, width, self.source)
            self.feeder.image_shape = self._meta.image_shape

    def store(self, frames: list[Frame]) -> None:
        for frame in frames:
            if self._writer is None:
                self._writer = EpisodeWriter(self.out, self._meta, task=self.config.task,
                                             info={'source': self.source})
            self._writer.append(frame)
            if self.config.episode_frames and self._writer.n_frames >= self.config.episode_frames:
                self.end_episode()
                self.sync.reset()   # like the recorder: the next episode's grid starts at its first image

    def end_episode(self) -> None:
        if self._writer is not None:
            self.episodes.append(self._writer.close())
            self._writer = None

    def finish(self) -> None:
        self.store(self.sync.flush())
        self.end_episode()


def import_bag(bag: str | Path, out: str | Path, config: RecorderConfig,
               names: BagTopics = BagTopics()) -> BagImporter:
    """Import the streams on topics `names` of `bag` into dataset `out` using `config`'s joints, limits, rate and
    tolerances."""
    bag = Path(bag)
    topics = {names.image_topic: 'image', names.joint_states_topic: 'joints', names.trajectory_topic: 'command'}
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several unrelated types for unreadable bags
        raise BagError(f'cannot open bag {bag}: {type(exc).__name__}: {exc}') from exc
    try:
        available = {c.topic for c in reader.connections}
        for topic in (names.image_topic, names.joint_states_topic):
            if topic not in available:
                raise BagError(f'bag {bag} has no topic {topic} (it has {sorted(available)}); '
                               f'set the topic name option')
        typestore = get_typestore(Stores.ROS2_KILTED)
        importer = BagImporter(out, config, source=f'bag:{bag.resolve()}')
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, timestamp, raw in reader.messages(connections=connections):
            kind = topics[connection.topic]
            try:
                msg = typestore.deserialize_cdr(raw, connection.msgtype)
            except Exception as exc:  # noqa: BLE001 - a corrupt record must not end the import
                importer.skipped[kind] += 1
                importer.first_errors.setdefault(kind, f'cannot deserialize: {exc}')
                continue
            importer.feed(kind, msg, timestamp * 1e-9)
        importer.finish()
    finally:
        reader.close()
    return importer
