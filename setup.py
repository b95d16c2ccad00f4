"""ament_python package: works with `colcon build` (ROS 2 Jazzy/Kilted) and with `pip install -e .`.

colcon installs console scripts into lib/jepa_agent (setup.cfg) so `ros2 run`/`ros2 launch` find them, and the
data_files below put launch/, config/ and models/ under share/jepa_agent. pip ignores both; the package then finds
config/ and models/ through `jepa_agent.resources`, which falls back to the source tree.
"""
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = 'jepa_agent'
NODES = ['sim_arm', 'explorer', 'teleop_keyboard', 'recorder', 'trainer', 'planner']


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries mirroring `folder` under share/<package>/."""
    entries = []
    for path in sorted(Path(folder).rglob('*')):
        if path.is_file() and '__pycache__' not in path.parts:
            entries.append((f'share/{PACKAGE}/{path.parent.as_posix()}', [path.as_posix()]))
    return entries


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    package_data={'jepa_agent.sim': ['assets/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        *tree('launch'), *tree('config'), *tree('models'),
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy', 'pyyaml', 'torch>=2.2', 'mujoco>=3.1', 'safetensors', 'rosbags>=0.10', 'tensorboard',
        'matplotlib', 'tqdm', 'pyarrow', 'av', 'onnx', 'onnxruntime',
    ],
    zip_safe=True,
    maintainer='jepa_agent developers',
    maintainer_email='dev@jepa-agent.invalid',
    description='Action-conditioned JEPA world model for robot arms: record, learn, keep learning, plan.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'jepa-agent = jepa_agent.cli:main',
            *[f'{node} = jepa_agent.nodes.{node}:main' for node in NODES],
        ],
    },
)
