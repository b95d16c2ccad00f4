"""Episode writer/reader: exact round trip, crash recovery (real kill -9), corruption detection, bad frames."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from jepa_agent.data.episode_reader import EpisodeReader, open_episodes
from jepa_agent.data.episode_writer import EpisodeWriter, open_dataset, recover_episode
from jepa_agent.data.episodes import DatasetError, DatasetMeta, DatasetWarning, Frame, FrameError, episode_dirs
from jepa_agent.data.recording import EpisodeRecorder

META = DatasetMeta(joint_names=['a', 'b'], lower=[-1, -2], upper=[1, 2], velocity_limit=[1, 1], rate_hz=10.0,
                   image_height=8, image_width=6, source='test')


def make_frame(k: int, meta: DatasetMeta = META) -> Frame:
    rng = np.random.default_rng(k)
    return Frame(time=0.1 * k, image=rng.integers(0, 256, meta.image_shape, dtype=np.uint8),
                 qpos=rng.uniform(-1, 1, meta.n_joints), target=rng.uniform(-1, 1, meta.n_joints),
                 qvel=rng.normal(size=meta.n_joints), image_stamp=0.1 * k - 0.01, joint_stamp=0.1 * k - 0.002)


def write_episode(root, n: int, start: int = 0) -> dict:
    with EpisodeWriter(root, META, task='t') as w:
        for k in range(start, start + n):
            w.append(make_frame(k))
    return w.close()


def test_round_trip_is_exact(tmp_path):
    info = write_episode(tmp_path, 12)
    assert info['status'] == 'complete' and info['n_frames'] == 12
    reader = EpisodeReader(episode_dirs(tmp_path)[0])
    assert len(reader) == 12 and reader.meta == META
    for k in range(12):
        f = make_frame(k)
        np.testing.assert_array_equal(reader.images[k], f.image)
        np.testing.assert_array_equal(reader.qpos[k], f.qpos)
        np.testing.assert_array_equal(reader.target[k], f.target)
        np.testing.assert_array_equal(reader.qvel[k], f.qvel)
        assert reader.times[k] == f.time and reader.frames['joint_stamp'][k] == f.joint_stamp
    assert reader.verify_images() == []


def test_episodes_get_consecutive_indices_and_discard_removes(tmp_path):
    write_episode(tmp_path, 3)
    w = EpisodeWriter(tmp_path, META)
    w.append(make_frame(0))
    w.discard()
    write_episode(tmp_path, 2)
    assert [p.name for p in episode_dirs(tmp_path)] == ['episode_000000', 'episode_000001']
    assert [len(r) for r in open_episodes(tmp_path)] == [3, 2]


def test_a_reader_of_the_live_dataset_never_sees_an_episode_without_its_metadata(tmp_path):
    """A trainer reads a dataset while the recorder starts episodes: an episode directory is listed only with its
    meta.json inside."""
    write_episode(tmp_path, 1)
    seen, missing, done = set(), [], threading.Event()

    def watch():
        while True:
            finished = done.is_set()             # one more full listing after the last writer
            for path in episode_dirs(tmp_path):
                seen.add(path.name)
                if not (path / 'meta.json').exists():
                    missing.append(path.name)
            if finished:
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    for _ in range(100):
        EpisodeWriter(tmp_path, META).close()
    done.set()
    watcher.join()
    assert missing == [] and len(seen) == 101


def test_a_writer_that_loses_the_race_for_an_index_takes_the_next_without_touching_the_winner(tmp_path, monkeypatch):
    write_episode(tmp_path, 3)
    import jepa_agent.data.episode_writer as episode_writer
    monkeypatch.setattr(episode_writer, 'episode_dirs', lambda root: [])    # it listed before the winner published
    with EpisodeWriter(tmp_path, META) as late:
        late.append(make_frame(0))
    assert late.index == 1 and [len(r) for r in open_episodes(tmp_path)] == [3, 1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []
    umask = os.umask(0)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in episode_dirs(tmp_path)} == {0o777 & ~umask}   # as mkdir makes them


def test_the_next_writer_removes_what_a_writer_that_died_mid_claim_or_mid_discard_left_hidden(tmp_path):
    from jepa_agent.data.episode_writer import ABANDONED_AFTER_S
    write_episode(tmp_path, 2)
    old, fresh = tmp_path / '.claiming-dead', tmp_path / '.claiming-now'          # fresh: a live writer's, maybe
    doomed = tmp_path / '.discarding-dead'
    for path in (old, fresh, doomed):
        path.mkdir()
        (path / 'meta.json').write_text('{}')
    (doomed / 'images.bin').write_bytes(b'x' * 10)
    long_ago = time.time() - ABANDONED_AFTER_S - 5
    for path in (old, doomed):
        os.utime(path, (long_ago, long_ago))
    with pytest.warns(DatasetWarning, match=r"left hidden: \['.claiming-dead', '.discarding-dead'\]"):
        EpisodeWriter(tmp_path, META).close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.')) == ['.claiming-now']
    assert [len(r) for r in open_episodes(tmp_path)] == [2, 0]


@pytest.mark.parametrize('change', [
    {'image': np.zeros((4, 6, 3), np.uint8)},              # image size changed
    {'qpos': np.array([np.nan, 0.0])},                      # NaN joint
    {'target': np.zeros(3)},                                # wrong joint count
    {'time': 0.05},                                         # time going backwards
])
def test_bad_frames_are_refused_without_corrupting(tmp_path, change):
    with EpisodeWriter(tmp_path, META) as w:
        w.append(make_frame(0))
        w.append(make_frame(1))
        bad = make_frame(2)
        for key, value in change.items():
            setattr(bad, key, value)
        with pytest.raises(FrameError):
            w.append(bad)
        w.append(make_frame(3))
    reader = EpisodeReader(episode_dirs(tmp_path)[0])
    assert len(reader) == 3 and reader.verify_images() == []


def test_incompatible_dataset_is_refused(tmp_path):
    write_episode(tmp_path, 2)
    other = DatasetMeta(**{**META.to_dict(), 'image_height': 16})
    with pytest.raises(DatasetError, match='different'):
        EpisodeWriter(tmp_path, other)


def test_corrupt_files_are_detected_and_skipped(tmp_path):
    for _ in range(3):
        write_episode(tmp_path, 5)
    ep0, ep1, ep2 = episode_dirs(tmp_path)
    with open(ep0 / 'images.u8', 'r+b') as f:          # flip a pixel byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with open(ep1 / 'frames.bin', 'ab') as f:          # stray bytes after a complete episode
        f.write(b'xx')
    assert EpisodeReader(ep0).verify_images() == [100 // META.frame_bytes]
    with pytest.raises(DatasetError, match='n_frames'):
        EpisodeReader(ep1)
    with pytest.warns(DatasetWarning) as warned:
        readers = open_episodes(tmp_path, check_images=True)
    assert sorted(str(w.message).split(':')[0] for w in warned) == [
        'skipping corrupt episode episode_000000', 'skipping corrupt episode episode_000001']
    assert [r.path for r in readers] == [ep2]


WRITER_SCRIPT = """
import sys, time
sys.path.insert(0, {test_dir!r})
from test_episodes import META, make_frame
from jepa_agent.data.episode_writer import EpisodeWriter
w = EpisodeWriter(sys.argv[1], META, fsync_interval=0.2)
k = 0
while True:
    w.append(make_frame(k)); k += 1
    print(k, flush=True)
    time.sleep(0.01)
"""


def test_kill_9_loses_at_most_the_partial_frame(tmp_path):
    test_dir = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, '-c', WRITER_SCRIPT.format(test_dir=test_dir), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    written = 0
    while written < 30:
        written = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (episode,) = episode_dirs(tmp_path)
    with open(episode / 'frames.bin', 'ab') as f:      # as if the kill hit in the middle of a record
        f.write(b'\x01' * 7)
    reader = EpisodeReader(episode)
    assert reader.interrupted and len(reader) >= written and reader.partial_bytes == 7
    report = recover_episode(episode)
    assert 'recovered' in report
    reader = EpisodeReader(episode)
    assert reader.status == 'recovered' and len(reader) >= written and reader.partial_bytes == 0
    for k in range(len(reader)):
        np.testing.assert_array_equal(reader.images[k], make_frame(k).image)
    assert json.loads((episode / 'meta.json').read_text())['n_frames'] == len(reader)


def test_live_episode_is_readable_and_not_recovered(tmp_path):
    w = EpisodeWriter(tmp_path, META)
    for k in range(4):
        w.append(make_frame(k))
    open_dataset(tmp_path, META)                       # another writer opening the dataset
    reader = EpisodeReader(w.path)
    assert reader.status == 'recording' and not reader.interrupted and len(reader) == 4
    assert recover_episode(w.path) is None
    w.close()
    assert EpisodeReader(w.path).status == 'complete'


def test_power_loss_zeroed_tail_is_cut_on_recovery(tmp_path):
    w = EpisodeWriter(tmp_path, META)
    for k in range(6):
        w.append(make_frame(k))
    w.sync()
    path = w.path
    info = json.loads((path / 'meta.json').read_text())
    info['writer']['pid'] = 2 ** 22 + 12345             # a writer that no longer exists
    (path / 'meta.json').write_text(json.dumps(info))
    with open(path / 'images.u8', 'r+b') as f:         # the last image's page never reached the disk
        f.seek(5 * META.frame_bytes)
        f.write(bytes(META.frame_bytes))
    recover_episode(path)
    assert len(EpisodeReader(path)) == 5


def test_disk_full_ends_the_episode_at_its_last_good_frame(tmp_path):
    errors = []
    recorder = EpisodeRecorder(tmp_path, on_error=errors.append)
    recorder.start(META)
    for k in range(3):
        assert recorder.submit(make_frame(k))
    assert recorder.wait_idle()
    writer = recorder._writer
    writer._images = open('/dev/full', 'wb', buffering=0)   # every further write fails with ENOSPC
    recorder.submit(make_frame(3))
    assert recorder.wait_idle()
    assert not recorder.recording and 'No space left' in recorder.error and errors
    assert recorder.submit(make_frame(4)) is False
    recorder.close()
    reader = EpisodeReader(writer.path)
    assert reader.status == 'complete' and len(reader) == 3 and reader.verify_images() == []
