"""`jepa-agent data collect-sim | info | verify` through the CLI parser (the data commands only)."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

from jepa_agent.data.cli import add_commands
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episode_writer import EpisodeWriter
from jepa_agent.data.episodes import episode_dirs, frame_dtype, record_crcs
from jepa_agent.data.quality import LIMIT_MARGIN_RAD
from jepa_agent.ros.cli import add_data_commands
from jepa_agent.sim.arm_env import make_env
from test_episodes import META, make_frame, write_episode


def cli_main(argv: list[str]) -> int:
    """`jepa-agent data ...` as jepa_agent.cli.main runs it (with the ROS-side `data record`), without importing the
    other teams' commands."""
    parser = argparse.ArgumentParser(prog='jepa-agent')
    add_data_commands(add_commands(parser.add_subparsers(dest='command', required=True)))
    args = parser.parse_args(argv)
    return args.func(args)


def test_collect_sim_then_info_and_verify(tmp_path, capsys):
    out = tmp_path / 'babble'
    assert cli_main(['data', 'collect-sim', '--out', str(out), '--episodes', '2', '--steps', '15', '--seed', '4',
                     '--image-size', '32']) == 0
    capsys.readouterr()
    assert cli_main(['data', 'info', str(out), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert [e['frames'] for e in info['episodes']] == [15, 15] and info['total_frames'] == 30
    assert info['joint_names'] == ['shoulder', 'elbow', 'wrist'] and info['image_width'] == 32
    assert info['rate_hz'] == 10.0 and info['total_duration_s'] == 3.0
    assert all(e['source'] == 'babble' for e in info['episodes'])
    fractions = [e['contact_fraction'] for e in info['episodes']]
    assert all(0 <= f <= 1 for f in fractions) and info['contact_fraction'] == pytest.approx(np.mean(fractions), 1e-3)
    assert cli_main(['data', 'info', str(out)]) == 0
    assert 'contact: the arm touches the block in' in capsys.readouterr().out
    assert cli_main(['data', 'verify', str(out)]) == 0
    # episodes are reproducible from their seed, and the logged image shows the logged joints
    reader = EpisodeReader(episode_dirs(out)[1])
    assert reader.info['seed'] == 5
    env = make_env(image_size=32)
    env.reset(5)
    full_qpos = env.data.qpos.copy()
    arm = [env.model.joint(name).qposadr[0] for name in env.joint_names]
    for k in (0, 9):
        full_qpos[arm] = reader.qpos[k]
        assert np.abs(env.render(full_qpos).astype(int) - reader.images[k]).mean() < 1.0
    env.close()


def test_collect_sim_takes_the_arm_and_babbling_from_a_params_file(tmp_path, capsys):
    from jepa_agent.resources import config_path
    out = tmp_path / 'arm4'
    assert cli_main(['data', 'collect-sim', '--config', str(config_path('examples/arm4.yaml')), '--out', str(out),
                     '--episodes', '1', '--steps', '12']) == 0
    capsys.readouterr()
    assert cli_main(['data', 'info', str(out), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['joint_names'] == ['turret_yaw', 'shoulder_pitch', 'elbow_pitch', 'wrist_pitch']
    assert info['image_width'] == 80 and info['upper'] == [2.6, 0.5, 1.5, 1.5]
    bad = tmp_path / 'bad.yaml'
    bad.write_text('sim_arm:\n  ros__parameters:\n    model_file: nowhere.xml\n')
    assert cli_main(['data', 'collect-sim', '--config', str(bad), '--out', str(tmp_path / 'x')]) == 2
    assert 'cannot load the scene' in capsys.readouterr().err


@pytest.mark.parametrize('section', ['/**', '/**/explorer'])
def test_collect_sim_babbles_inside_the_arm_description_not_the_scenes_ranges(tmp_path, capsys, section):
    """The description every node is given (or the explorer's, whose babbling collect-sim replays) narrows the
    scene's joint ranges: the episodes and their metadata keep to it."""
    lower, upper = [-0.8, -0.5, -0.4, -0.3], [0.8, 0.1, 0.4, 0.3]
    config = tmp_path / 'arm.yaml'
    config.write_text(f"""
{section}:
  ros__parameters:
    joint_names: [turret_yaw, shoulder_pitch, elbow_pitch, wrist_pitch]
    lower: {lower}
    upper: {upper}
    velocity_limit: [1.0, 1.0, 1.0, 1.0]
/**/sim_arm:
  ros__parameters:
    model_file: arm4.xml
    camera: oblique
    ee_site: tool
    block_joint: ''
    image_size: 32
""")
    out = tmp_path / 'data'
    assert cli_main(['data', 'collect-sim', '--config', str(config), '--out', str(out), '--episodes', '2',
                     '--steps', '40']) == 0
    capsys.readouterr()
    assert cli_main(['data', 'info', str(out), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['lower'] == lower and info['upper'] == upper and info['velocity_limit'] == [1.0] * 4
    for directory in episode_dirs(out):
        qpos = EpisodeReader(directory).qpos
        assert np.all(qpos >= np.array(lower) - 0.05) and np.all(qpos <= np.array(upper) + 0.05)


def test_collect_sim_curiosity_runs_the_shipped_model(tmp_path, capsys):
    out = tmp_path / 'curious'
    assert cli_main(['data', 'collect-sim', '--out', str(out), '--source', 'curiosity', '--episodes', '1',
                     '--steps', '10', '--mode', 'steps']) == 0
    assert 'arm-block contact in' in capsys.readouterr().out
    reader = EpisodeReader(episode_dirs(out)[0])
    assert reader.info['source'] == 'curiosity' and 0 <= reader.info['contact_fraction'] <= 1 and len(reader) == 10


def test_info_prints_a_readable_summary(tmp_path, capsys):
    write_episode(tmp_path, 5)
    assert cli_main(['data', 'info', str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert '1 episodes, 5 frames' in text and 'joints: a, b' in text and 'camera: 6x8 rgb8' in text


def test_verify_fails_on_corruption_and_names_the_file(tmp_path, capsys):
    write_episode(tmp_path, 5)
    write_episode(tmp_path, 5)
    ep0, ep1 = episode_dirs(tmp_path)
    with open(ep0 / 'images.u8', 'r+b') as f:
        f.seek(3)
        f.write(b'\xff\xfe')
    (ep1 / 'meta.json').write_text('{"status": "complete"')
    assert cli_main(['data', 'verify', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert 'episode_000000/images.u8: image CRC mismatch in frames [0]' in out
    assert 'episode_000001/meta.json' in out and '2 problem(s)' in out


def test_verify_reports_and_repairs_an_interrupted_episode(tmp_path, capsys):
    writer = EpisodeWriter(tmp_path, META)
    for k in range(4):
        writer.append(make_frame(k))
    info = json.loads((writer.path / 'meta.json').read_text())
    info['writer']['pid'] = 2 ** 22 + 7            # as if its process had died
    (writer.path / 'meta.json').write_text(json.dumps(info))
    with open(writer.path / 'images.u8', 'ab') as f:
        f.write(b'partial')
    assert cli_main(['data', 'verify', str(tmp_path)]) == 0
    assert 'interrupted recording, 4 complete frames' in capsys.readouterr().out
    assert cli_main(['data', 'verify', str(tmp_path), '--repair']) == 0
    assert 'recovered 4 frames' in capsys.readouterr().out
    assert EpisodeReader(writer.path).status == 'recovered'


def test_bad_arguments_and_missing_dataset(tmp_path, capsys):
    assert cli_main(['data', 'collect-sim', '--out', str(tmp_path), '--episodes', '0']) == 2
    assert cli_main(['data', 'collect-sim', '--out', str(tmp_path), '--source', 'curiosity',
                     '--checkpoint', str(tmp_path / 'no_model')]) == 2
    with pytest.raises(SystemExit):
        cli_main(['data', 'collect-sim', '--out', str(tmp_path), '--source', 'dance'])
    assert cli_main(['data', 'info', str(tmp_path / 'nothing')]) == 1
    assert cli_main(['data', 'verify', str(tmp_path / 'nothing')]) == 1
    captured = capsys.readouterr()
    assert 'dataset.json' in captured.err + captured.out


def bad_frames_dataset(root, change: str):
    """Dataset (limits ±1, ±2) of 6 frames with frames 2 and 4 made bad in one way (the writer accepts them)."""
    frames = [make_frame(k) for k in range(6)]
    for k in (2, 4):
        if change == 'qpos':
            frames[k].qpos = np.array([50.0, 0.0])
        elif change == 'target':
            frames[k].target = np.array([0.0, -2.0 - 2 * LIMIT_MARGIN_RAD])
        elif change == 'black':
            frames[k].image = np.zeros_like(frames[k].image)
        elif change == 'white':
            frames[k].image = np.full_like(frames[k].image, 255)
    if change == 'future':                                     # a clock an hour ahead from frame 2 on
        for k in range(2, 6):
            frames[k].time = time.time() + 3600.0 + k
    with EpisodeWriter(root, META) as writer:
        for frame in frames:
            writer.append(frame)
    return writer.path


@pytest.mark.parametrize('change, line', [
    ('qpos', '2 frame(s) with qpos beyond the joint limits (+0.05 rad; worst a=50 rad at frame 2, limits [-1, 1]); '
             'first frames [2, 4]'),
    ('target', '2 frame(s) with target beyond the joint limits (+0.05 rad; worst b=-2.1 rad at frame 2, '
               'limits [-2, 2]); first frames [2, 4]'),
    ('black', '2 frame(s) with constant images'),
    ('white', '2 frame(s) with constant images'),
    ('future', '4 frame(s) with times in the future (later than now + 1 s); first frames [2, 3, 4, 5]'),
])
def test_verify_fails_on_bad_frames_with_one_line_per_kind(tmp_path, capsys, change, line):
    write_episode(tmp_path, 3)                                  # a good episode stays quiet
    bad_frames_dataset(tmp_path, change)
    assert cli_main(['data', 'verify', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    errors = [l for l in out.splitlines() if l.startswith('ERROR')]
    assert len(errors) == 1 and errors[0].startswith('ERROR: episode_000001: ') and line in errors[0], out
    assert '1 problem(s)' in out


def test_verify_accepts_joints_within_the_margin_and_sim_times(tmp_path, capsys):
    frames = [make_frame(k) for k in range(4)]
    frames[1].qpos = np.array([1.0 + 0.9 * LIMIT_MARGIN_RAD, -2.0 - 0.9 * LIMIT_MARGIN_RAD])
    frames[2].image[:] = 0
    frames[2].image[0, 0, 0] = 1                               # dark, not blank
    with EpisodeWriter(tmp_path, META) as writer:
        for frame in frames:
            writer.append(frame)
    assert cli_main(['data', 'verify', str(tmp_path)]) == 0, capsys.readouterr().out


def test_verify_fails_on_times_that_do_not_increase(tmp_path, capsys):
    path = bad_frames_dataset(tmp_path, 'none')
    records = np.fromfile(path / 'frames.bin', dtype=frame_dtype(META.n_joints))
    records['time'][3] = records['time'][2]                    # as a foreign writer could leave it, CRCs intact
    records['time'][5] = 0.0
    records['crc'] = record_crcs(records)
    records.tofile(path / 'frames.bin')
    assert cli_main(['data', 'verify', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert ('ERROR: episode_000000: frame times are not strictly increasing: 2 frame(s) not after the previous '
            'one, first [3, 5]') in out, out
