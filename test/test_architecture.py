"""The architecture holds: import-linter's contracts (setup.cfg [importlinter]) and a ROS-free bag import.

The contracts keep the core (model, training, planning, data, sim, top-level core modules) free of ROS imports,
the packages in their layers, and sibling modules free of import cycles. The bag test imports a rosbag2 bag with
every ROS package made unimportable, as on a machine without a ROS install.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin

from conftest import REPO
from jepa_agent.data.episode_reader import EpisodeReader
from jepa_agent.data.episodes import episode_dirs
from test_bag_import import message_stream, write_bag

#: what a machine without ROS lacks (top-level packages)
ROS_PACKAGES = ('rclpy', 'rcl_interfaces', 'sensor_msgs', 'trajectory_msgs', 'std_msgs', 'std_srvs',
                'diagnostic_msgs', 'builtin_interfaces', 'ament_index_python')

WITHOUT_ROS = textwrap.dedent('''
    import importlib.abc, sys

    class NoRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in {ros_packages!r}:
                raise ModuleNotFoundError(f'No module named {{name!r}} (ROS blocked by the test)', name=name)

    sys.meta_path.insert(0, NoRos())
    from jepa_agent.cli import main
    sys.exit(main(sys.argv[1:]))
''').format(ros_packages=set(ROS_PACKAGES))


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name('lint-imports')
    result = subprocess.run([str(lint_imports), 'setup.cfg', '--no-cache'], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bag_import_needs_no_ros(tmp_path):
    write_bag(tmp_path / 'bag', message_stream(duration=2.0), StoragePlugin.MCAP)
    result = subprocess.run([sys.executable, '-c', WITHOUT_ROS, 'data', 'import-bag', str(tmp_path / 'bag'),
                             '--out', str(tmp_path / 'ds')], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'imported 1 episode(s)' in result.stdout
    (episode,) = episode_dirs(tmp_path / 'ds')
    assert len(EpisodeReader(episode)) > 10
