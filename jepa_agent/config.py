"""One configuration schema for nodes and CLI.

Each component owns a typed dataclass (e.g. `ArmEnvConfig`, `CEMConfig`) whose fields are the ROS parameters of
its node. YAML files in `config/` use the ROS parameter layout (`node_name: {ros__parameters: {...}}`) so the same
file feeds `ros2 launch` and `jepa-agent`; `load_section` reads one node's block and `build` validates it.

Files are strict, so a typo never silently leaves a default in place:
- a file must not be empty;
- every top-level key is a section: `/**` (every node), a node name (`planner`, `/planner`, or namespaced
  `/arm/planner`; the name must be one of SECTIONS or the node being configured, so one file can configure several
  nodes), or a wildcard (`/**`, `/**/planner`, `/arm/*`); each holds exactly one `ros__parameters` mapping;
- `load_section` also needs a section for the node it reads (`name`, `/name` or `/**`);
- `build` rejects keys that are not fields of the config dataclass.
Each error names the file, the section and, for a typo, the closest valid name. Dotted keys (`cem.horizon: 20`,
the ROS way to write a nested parameter) are read as the nested form (`cem: {horizon: 20}`).

Numeric fields declare their allowed values once, with `bounded` (`rate_hz: float = bounded(10.0, gt=0, le=100)`):
each dataclass's `__post_init__` calls `check_ranges`, and the nodes put the same range into the parameter's
descriptor, so `ros2 param describe` shows it.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from pathlib import Path
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

T = TypeVar('T')

#: Section names a jepa_agent config file may use: the nodes, plus `train` (`jepa-agent train`'s config/train.yaml).
SECTIONS = ('planner', 'sim_arm', 'explorer', 'recorder', 'trainer', 'teleop_keyboard', 'train')
WILDCARD = '/**'
PARAMETERS_KEY = 'ros__parameters'


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says which key and why."""


@dataclass(frozen=True)
class Range:
    """The values a numeric field allows: lo..hi, each bound included unless open (the infinities never are)."""

    lo: float = -math.inf
    hi: float = math.inf
    open_lo: bool = True
    open_hi: bool = True

    def __contains__(self, value: Any) -> bool:
        """False for NaN and for non-numbers too."""
        try:
            above = self.lo < value if self.open_lo else self.lo <= value
            return bool(above and (value < self.hi if self.open_hi else value <= self.hi))
        except TypeError:
            return False

    def __str__(self) -> str:
        """Interval notation, e.g. '(0, 1]' or '[1, inf)'."""
        return f'{"([" [not self.open_lo]}{self.lo:g}, {self.hi:g}{")]" [not self.open_hi]}'

    def check(self, name: str, value: Any) -> None:
        """ValueError naming `name` unless `value` lies in the range."""
        if value not in self:
            raise ValueError(f'{name} must be in {self}, got {name}={value!r}')


def bounded(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Any:
    """A dataclass field with a default and a Range (ge/gt: lowest value, included/excluded; le/lt: highest),
    kept in the field's metadata: the one place that `check_ranges` and the ROS descriptors read it from."""
    span = Range(lo=-math.inf if ge is None and gt is None else (ge if ge is not None else gt),
                 hi=math.inf if le is None and lt is None else (le if le is not None else lt),
                 open_lo=ge is None, open_hi=le is None)
    return dataclasses.field(default=default, metadata={'range': span})


def same_range(cls: type, name: str, default: Any) -> Any:
    """A field with `default` and the Range of field `name` of `cls`: for a parameter that one config passes on to
    another (the recorder's `rate_hz` is its synchronizer's), so the range is still written once."""
    return dataclasses.field(default=default, metadata=cls.__dataclass_fields__[name].metadata)


def field_range(field: dataclasses.Field) -> Range | None:
    """The Range a field was declared with (`bounded`), or None."""
    return field.metadata.get('range')


def check_ranges(config: Any) -> None:
    """ValueError for the first field of a config dataclass outside its declared Range."""
    for field in dataclasses.fields(config):
        span = field_range(field)
        if span is not None:
            span.check(field.name, getattr(config, field.name))


def load_yaml(path: str | Path) -> dict:
    """Read a non-empty YAML mapping, turning I/O and syntax problems into ConfigError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f'cannot read config file {path}: {exc}') from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f'config file {path} is not valid YAML: {exc}') from exc
    if data is None or data == {}:
        raise ConfigError(f'config file {path} is empty; it needs a section such as `node_name: {{{PARAMETERS_KEY}: '
                          f'{{...}}}}`')
    if not isinstance(data, dict):
        raise ConfigError(f'config file {path} must hold a mapping, got {type(data).__name__}')
    return data


def check_sections(data: dict, path: str | Path, node: str) -> None:
    """Refuse unknown (misspelled) top-level sections and sections that are not `{ros__parameters: {...}}`."""
    for key, block in data.items():
        name = str(key).rstrip('/').rsplit('/', 1)[-1]
        if '*' not in name and name not in (node, *SECTIONS):
            valid = sorted({node, *SECTIONS})
            raise ConfigError(f'{path}: unknown section {key!r}{did_you_mean(name, valid)}; sections are {WILDCARD!r} '
                              f'or a node name ({", ".join(valid)}), optionally as /name or /namespace/name')
        if not isinstance(block, dict):
            raise ConfigError(f'{path}: section {key!r} must be a mapping with one {PARAMETERS_KEY} mapping')
        extra = sorted(set(block) - {PARAMETERS_KEY}, key=str)
        if extra:
            raise ConfigError(f'{path}: section {key!r} has {extra} beside {PARAMETERS_KEY}'
                              f'{did_you_mean(str(extra[0]), [PARAMETERS_KEY])}')
        if not isinstance(block.get(PARAMETERS_KEY), dict):
            raise ConfigError(f'{path}: section {key!r} must hold a {PARAMETERS_KEY} mapping, got '
                              f'{block.get(PARAMETERS_KEY)!r}')


def load_section(path: str | Path, node: str, required: bool = True) -> dict:
    """Parameters of `node` from a ROS-style parameter file (`/**` entries apply to every node), dotted keys nested.
    A section applies to `node` under any namespace (`node`, `/node`, `/**/node`, `/arm4/node`).

    The file is checked whole (see the module docstring) and must hold a section for `node` unless not `required`
    ({} then)."""
    data = load_yaml(path)
    check_sections(data, path, node)
    keys = [key for key in data if key == WILDCARD] + \
        [key for key in data if str(key).rstrip('/').rsplit('/', 1)[-1] == node]
    if not keys and not required:
        return {}
    if not keys:
        raise ConfigError(f'{path} has no section for {node!r} (it has {sorted(map(str, data))}); add '
                          f'`{node}: {{{PARAMETERS_KEY}: {{...}}}}`')
    params: dict = {}
    for key in keys:
        params.update(data[key][PARAMETERS_KEY])
    return nest(params, f'{path}: [{node}]')


def nest(params: dict, where: str = '') -> dict:
    """`{'cem.horizon': 20}` -> `{'cem': {'horizon': 20}}`, merged with any nested `cem:` mapping."""
    out: dict = {}
    for key, value in params.items():
        head, _, rest = str(key).partition('.')
        if rest:
            value = {rest: value}
        if head not in out:
            out[head] = nest(value, where) if isinstance(value, dict) else value
        elif isinstance(value, dict) and isinstance(out[head], dict):
            out[head] = nest({**out[head], **value}, where)
        else:
            raise ConfigError(f'{where} {head!r} is given both as a value and as a section')
    return out


def did_you_mean(name: str, valid) -> str:
    """The text ` (did you mean 'x'?)` for the name in `valid` closest to `name`, or '' when none is close."""
    close = difflib.get_close_matches(name, [str(v) for v in valid], n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


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
    where = f'[{section}] ' if section else ''
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f'{where}must be a mapping of parameters, got {params!r}')
    params = dict(params or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields, key=str)
    if unknown:
        raise ConfigError(f'{where}unknown parameter(s) {unknown}{did_you_mean(str(unknown[0]), fields)}; valid: '
                          f'{sorted(fields)}')
    kwargs = {k: _coerce(f'{where}{k}', v, hints[k]) for k, v in params.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f'{where}{exc}') from exc


def load(cls: type[T], path: str | Path | None, node: str, overrides: dict | None = None) -> T:
    """`cls` from `node`'s block of `path` (optional) plus explicit overrides: the CLI's way to read config/."""
    params = load_section(path, node) if path else {}
    params.update(overrides or {})
    try:
        return build(cls, params, section=node)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}' if path else str(exc)) from None


def to_params(config: Any) -> dict:
    """Flat dict of a config dataclass, ready for YAML or ROS parameters."""
    return dataclasses.asdict(config)
