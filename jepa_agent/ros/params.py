"""Declare a config dataclass as ROS parameters and build it back, validated, from their values."""
from __future__ import annotations

import dataclasses
from typing import TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from jepa_agent.config import ConfigError, build

T = TypeVar('T')


def declare_config(node: Node, cls: type[T], prefix: str = '') -> T:
    """Declare every field of `cls` (defaults from the dataclass) and return the validated config.

    Parameters are dynamically typed so YAML `2` for a float field is accepted; `config.build` does the type
    checking with one clear ConfigError naming the node and parameter. Nodes let that error stop start-up.
    """
    values = {}
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if isinstance(default, tuple):
            default = list(default)
        descriptor = ParameterDescriptor(dynamic_typing=True, description=field.name)
        value = node.declare_parameter(prefix + field.name, default if default != [] else None, descriptor).value
        values[field.name] = [] if value is None and default == [] else value
        if isinstance(values[field.name], (tuple,)) or type(values[field.name]).__name__ == 'array':
            values[field.name] = list(values[field.name])
    try:
        return build(cls, values, section=node.get_name())
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'[{node.get_name()}] {exc}') from exc
