"""Locate installed data (config/, models/, launch/) whether installed by colcon, pip, or run from the source tree."""
from __future__ import annotations

from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """share/jepa_agent of a colcon install, else the source checkout (pip -e / running from the repo)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory('jepa_agent'))
        except (PackageNotFoundError, OSError):   # OSError: AMENT_PREFIX_PATH unset (pip/source use)
            pass
    except ImportError:
        pass
    return SOURCE_ROOT


def config_path(name: str) -> Path:
    """Path of a file in config/, e.g. `config_path('sim.yaml')`."""
    return share_dir() / 'config' / name


def model_path(name: str = 'reach_64px') -> Path:
    """Directory of a shipped model in models/."""
    return share_dir() / 'models' / name
