"""package.xml declares every third-party module jepa_agent imports, so `rosdep install` gives a ROS user a working
package; the few libraries without a rosdep key are named in requirements.txt (pip)."""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: imported module -> its rosdep key (rosdistro rosdep/python.yaml); ROS packages are their own key
ROSDEP_KEYS = {'PIL': 'python3-pil', 'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'torch': 'python3-torch',
               'matplotlib': 'python3-matplotlib', 'tqdm': 'python3-tqdm', 'mujoco': 'python3-mujoco-pip',
               'rosbags': 'python3-rosbags-pip', 'onnxruntime': 'python3-onnxruntime-pip'}
#: no rosdep key: installed with pip (requirements.txt, README)
PIP_ONLY = {'safetensors', 'pyarrow', 'av'}


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (ROOT / 'jepa_agent').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split('.')[0])
    return modules - set(sys.stdlib_module_names) - {'jepa_agent'}


def declared_dependencies() -> set[str]:
    tree = ET.parse(ROOT / 'package.xml')
    return {e.text.strip() for tag in ('depend', 'exec_depend') for e in tree.getroot().iter(tag)}


def test_every_imported_library_is_declared():
    declared = declared_dependencies()
    requirements = (ROOT / 'requirements.txt').read_text().split()
    missing = []
    for module in sorted(imported_top_level_modules()):
        if module in PIP_ONLY:
            if not any(line.startswith(module) for line in requirements):
                missing.append(f'{module} (pip-only: not in requirements.txt)')
        elif ROSDEP_KEYS.get(module, module) not in declared:
            missing.append(f'{module} (package.xml needs <exec_depend>{ROSDEP_KEYS.get(module, module)}</exec_depend>)')
    assert not missing, f'undeclared dependencies: {missing}'


def test_pip_only_libraries_really_have_no_rosdep_key_declared():
    """A library listed as pip-only must not also be declared (one source of truth per dependency)."""
    declared = declared_dependencies()
    assert not {f'python3-{m}' for m in PIP_ONLY} & declared
