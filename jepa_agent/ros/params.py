"""Declare a config dataclass as ROS parameters and build it back, validated, from their values; refuse parameter
files and overrides a node would otherwise ignore.

    self.config = declare_config(self, PlannerNodeConfig, dynamic=('enabled', 'goal_image_path'))
    self.cem_config = declare_config(self, CEMConfig, prefix='cem.')          # all read-only

Parameters not named in `dynamic` are read-only: rclpy refuses to set them at run time with the reason
"Trying to set a read-only parameter: NAME." (restart the node with another value instead). A node that lists a
parameter in `dynamic` must apply it in its on-set-parameters callback.

`run_node` (ros/run.py) checks what the node was given, so every node refuses, with one ConfigError:
- a `--params-file` that is missing, empty, or has an unknown (misspelled) section (see jepa_agent.config);
- a parameter set for this node (in its own section of a file, or by `-p name:=value`) that it does not declare,
  such as `cem.horizn`. Names from wildcard sections (`/**`) may be meant for other nodes sharing the file
  (launch files pass one arm description to every node), so only those are let through, except the former topic
  parameters (`image_topic`, ...): the error says which name to remap instead (ros/topics.py).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import textwrap
import typing
from collections.abc import Iterable, Sequence
from typing import TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node

from jepa_agent.config import ConfigError, Range, build, check_sections, did_you_mean, field_range, load_yaml
from jepa_agent.ros.topics import FORMER_PARAMETERS, remap_hint

T = TypeVar('T')


def declare_config(node: Node, cls: type[T], prefix: str = '', dynamic: Iterable[str] = ()) -> T:
    """Declare every field of `cls` (defaults from the dataclass) and return the validated config.

    Fields named in `dynamic` (field names, without `prefix`) may be set at run time, and the node must apply them;
    every other parameter is read-only. Each parameter's description is the field's docstring, and a field declared
    with `config.bounded` shows its range (`ros2 param describe`). Parameters are dynamically typed so YAML `2` for
    a float field is accepted (rclpy applies a range only to values of the range's type; `config.build` checks
    every value); errors are one clear ConfigError naming the node and parameter. Nodes let it stop start-up.
    """
    names = {field.name for field in dataclasses.fields(cls)}
    dynamic = set(dynamic)
    if not dynamic <= names:
        raise ValueError(f'dynamic names {sorted(dynamic - names)} are not fields of {cls.__name__}')
    values = {}
    try:
        for field in dataclasses.fields(cls):
            values[field.name] = _declare(node, prefix, field, describe(cls, field, field.name in dynamic))
        return build(cls, values, section=node.get_name())
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'[{node.get_name()}] {exc}') from exc


def describe(cls: type, field: dataclasses.Field, dynamic: bool) -> ParameterDescriptor:
    """What `ros2 param describe` shows for `field`: its docstring, read-only unless dynamic, its range."""
    descriptor = ParameterDescriptor(dynamic_typing=True, read_only=not dynamic,
                                     description=field_docs(cls).get(field.name, field.name))
    span = field_range(field)
    if span is None:
        return descriptor
    if typing.get_type_hints(cls)[field.name] is int:
        descriptor.integer_range = [_integer_range(span)]
    else:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(span.lo), to_value=float(span.hi))]
    if any(open_ and math.isfinite(bound) for open_, bound in ((span.open_lo, span.lo), (span.open_hi, span.hi))):
        descriptor.additional_constraints = f'must be in {span}'    # the ROS ranges are closed
    return descriptor


def _integer_range(span: Range) -> IntegerRange:
    """The closed int64 range of the integers in `span`."""
    lo = -2 ** 63 if span.lo == -math.inf else math.floor(span.lo) + 1 if span.open_lo else math.ceil(span.lo)
    hi = 2 ** 63 - 1 if span.hi == math.inf else math.ceil(span.hi) - 1 if span.open_hi else math.floor(span.hi)
    return IntegerRange(from_value=lo, to_value=hi, step=0)


def _declare(node: Node, prefix: str, field: dataclasses.Field, descriptor: ParameterDescriptor):
    """The value of the declared parameter (lists as lists); a value rclpy refuses for its range is reported in
    the words of `config.check_ranges`."""
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if isinstance(default, tuple):
        default = list(default)
    try:
        value = node.declare_parameter(prefix + field.name, default if default != [] else None, descriptor).value
    except InvalidParameterValueException as exc:
        given = getattr(node, '_parameter_overrides', {}).get(prefix + field.name)   # rclpy: the value refused
        if field_range(field) is not None:
            field_range(field).check(field.name, given.value if given is not None else default)
        raise ValueError(str(exc)) from exc
    if value is None and default == []:
        return []
    return list(value) if isinstance(value, tuple) or type(value).__name__ == 'array' else value


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field: docstring} from the string literal written under each field in the class bodies of `cls`'s MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, SyntaxError, IndexError, AttributeError):
            continue
        for stmt, after in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[stmt.target.id] = ' '.join(inspect.cleandoc(after.value.value).split())
    return docs


# -- what the node was given -------------------------------------------------------------------------------------
def ros_arguments(argv: Sequence[str]) -> list[str]:
    """The tokens between `--ros-args` and `--` (or the end), from every `--ros-args` block of `argv`."""
    tokens, inside = [], False
    for token in argv:
        if token == '--ros-args':
            inside = True
        elif token == '--' and inside:
            inside = False
        elif inside:
            tokens.append(token)
    return tokens


def _option_values(ros_args: Sequence[str], *options: str) -> list[str]:
    return [value for option, value in zip(ros_args, ros_args[1:]) if option in options]


def params_files(ros_args: Sequence[str]) -> list[str]:
    return _option_values(ros_args, '--params-file')


def node_name(ros_args: Sequence[str], default: str) -> str:
    """The node name after a `-r __node:=NAME` remap (what `ros2 launch` does with `name=`), else `default`."""
    for rule in _option_values(ros_args, '-r', '--remap'):
        key, _, value = rule.partition(':=')
        if key.rsplit(':', 1)[-1] in ('__node', '__name') and value:
            default = value
    return default


def check_params_files(argv: Sequence[str], name: str) -> None:
    """Every `--params-file` in `argv` exists, is not empty and has only known sections (before rclpy reads it)."""
    ros_args = ros_arguments(argv)
    name = node_name(ros_args, name)
    for path in params_files(ros_args):
        check_sections(load_yaml(path), path, name)


def check_overrides(node: Node, argv: Sequence[str]) -> None:
    """Refuse parameter values given to `node` for parameters it did not declare (typos such as `cem.horizn`, former
    topic parameters such as `image_topic`: the error names the remap that replaces them)."""
    overrides = getattr(node, '_parameter_overrides', {})     # rclpy: values from files and -p meant for this node
    undeclared = {name for name in overrides if not node.has_parameter(name)}
    if not undeclared:
        return
    own, shared = _sources(node.get_name(), ros_arguments(argv))
    refused = sorted(n for n in undeclared if n in own or n not in shared or n in FORMER_PARAMETERS)
    if not refused:
        return
    first = next((n for n in refused if n in FORMER_PARAMETERS), refused[0])
    given = own.get(first) or shared.get(first)
    where = 'by -p' if given == '-p' else f'in {given or "the overrides"}'
    if first in FORMER_PARAMETERS:
        raise ConfigError(f'[{node.get_name()}] {first} (set {where}) is not a parameter: {remap_hint(first)}')
    raise ConfigError(f'[{node.get_name()}] unknown parameter(s) {refused} set {where}'
                      f'{did_you_mean(first, node.list_parameters([], 0).names)}; this node does not declare them')


def _sources(node: str, ros_args: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """({name: '-p' or file} set for `node` itself, {name: file} set in wildcard sections)."""
    own = {rule.partition(':=')[0].rsplit(':', 1)[-1]: '-p' for rule in _option_values(ros_args, '-p', '--param')}
    shared: dict[str, str] = {}
    for path in params_files(ros_args):
        for key, block in load_yaml(path).items():
            target = str(key).rstrip('/').rsplit('/', 1)[-1]
            names = _flatten(block.get('ros__parameters') or {})
            if target == node:
                own.update({n: path for n in names if n not in own})
            elif '*' in target:
                shared.update({n: path for n in names if n not in shared})
    return own, shared


def _flatten(params: dict, prefix: str = '') -> set[str]:
    names: set[str] = set()
    for key, value in params.items():
        if isinstance(value, dict):
            names |= _flatten(value, f'{prefix}{key}.')
        else:
            names.add(f'{prefix}{key}')
    return names
