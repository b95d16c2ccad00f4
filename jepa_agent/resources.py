"""Locate installed data (config/, models/, launch/) whether installed by colcon, pip, or run from the source tree."""
from __future__ import annotations

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """share/jepa_agent of a colcon install, else of a plain `pip install .` (which installs data_files under the
    environment's prefix), else the source checkout (`pip install -e`, which skips data_files)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory('jepa_agent'))
        except (PackageNotFoundError, OSError):   # OSError: AMENT_PREFIX_PATH unset (pip/source use)
            pass
    except ImportError:
        pass
    source_tree_share = SOURCE_ROOT / 'config'
    prefix_share = Path(sys.prefix) / 'share' / 'jepa_agent'
    if not source_tree_share.is_dir() and prefix_share.is_dir():
        return prefix_share
    return SOURCE_ROOT


def config_path(name: str) -> Path:
    """Path of a file in config/, e.g. `config_path('sim.yaml')`."""
    return share_dir() / 'config' / name


def model_path(name: str = 'reach_64px') -> Path:
    """Directory of a shipped model in models/."""
    return share_dir() / 'models' / name
