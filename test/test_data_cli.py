"""`jepa-agent data collect-sim | info | verify` through the CLI parser (the data commands only)."""
from __future__ import annotations

import argparse
import json

import numpy as np

from jepa_agent.data.cli import add_commands
from jepa_agent.data.episodes import EpisodeReader, EpisodeWriter, episode_dirs
from jepa_agent.sim.arm_env import make_env
from test_episodes import META, make_frame, write_episode


def cli_main(argv: list[str]) -> int:
    """`jepa-agent data ...` as jepa_agent.cli.main runs it, without importing the other teams' commands."""
    parser = argparse.ArgumentParser(prog='jepa-agent')
    add_commands(parser.add_subparsers(dest='command', required=True))
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
    assert cli_main(['data', 'info', str(tmp_path / 'nothing')]) == 1
    assert cli_main(['data', 'verify', str(tmp_path / 'nothing')]) == 1
    captured = capsys.readouterr()
    assert 'dataset.json' in captured.err + captured.out
