"""One configuration schema for nodes and CLI.

Each component owns a typed dataclass (e.g. `ArmEnvConfig`, `CEMConfig`) whose fields are the ROS parameters of
its node. YAML files in `config/` use the ROS parameter layout (`node_name: {ros__parameters: {...}}`) so the same
file feeds `ros2 launch` and `jepa-agent`; `load_section` reads one node's block and `build` validates it.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar('T')


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says which key and why."""


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, turning I/O and syntax problems into ConfigError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f'cannot read config file {path}: {exc}') from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f'config file {path} is not valid YAML: {exc}') from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'config file {path} must hold a mapping, got {type(data).__name__}')
    return data


def load_section(path: str | Path, node: str) -> dict:
    """Parameters of `node` from a ROS-style parameter file; `/**` wildcard entries apply to every node."""
    data = load_yaml(path)
    params: dict = {}
    for key in ('/**', node, f'/{node}'):
        block = data.get(key)
        if block is None:
            continue
        if not isinstance(block, dict) or not isinstance(block.get('ros__parameters', {}), dict):
            raise ConfigError(f'{path}: section {key!r} must be a mapping with a ros__parameters mapping')
        params.update(block.get('ros__parameters', {}))
    return params


def _coerce(name: str, value: Any, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{name}: expected a list, got {value!r}')
        (item,) = set(typing.get_args(kind)[:1]) or {Any}
        return [_coerce(name, v, item) for v in value]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is Any:
        return value
    raise ConfigError(f'{name}: expected {getattr(kind, "__name__", kind)}, got {value!r}')


def build(cls: type[T], params: dict | None = None, *, section: str = '') -> T:
    """Instantiate config dataclass `cls` from a flat dict, rejecting unknown keys and wrong types.

    Validation beyond types lives in each dataclass's `__post_init__` (raising ValueError), re-raised as ConfigError.
    """
    params = dict(params or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    where = f'[{section}] ' if section else ''
    if unknown:
        raise ConfigError(f'{where}unknown parameter(s) {unknown}; valid: {sorted(fields)}')
    kwargs = {k: _coerce(f'{where}{k}', v, hints[k]) for k, v in params.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f'{where}{exc}') from exc


def load(cls: type[T], path: str | Path | None, node: str, overrides: dict | None = None) -> T:
    """`cls` from `node`'s block of `path` (optional) plus explicit overrides: the CLI's way to read config/."""
    params = load_section(path, node) if path else {}
    params.update(overrides or {})
    return build(cls, params, section=node)


def to_params(config: Any) -> dict:
    """Flat dict of a config dataclass, ready for YAML or ROS parameters."""
    return dataclasses.asdict(config)
