"""Parameters that teach: every node parameter, asked through the standard rclpy parameter services (what
`ros2 param list` / `ros2 param describe` call), has its field's docstring as description, is read-only unless the
node applies it at run time, and shows the range the config declares (`config.bounded`) — the range that the
config's own validation uses."""
from __future__ import annotations

import dataclasses
import math
import subprocess
import threading
import typing

import pytest
import rclpy
from rcl_interfaces.srv import DescribeParameters, ListParameters
from rclpy.parameter import Parameter

from jepa_agent.command_gate import CommandGateConfig
from jepa_agent.config import ConfigError, field_range
from jepa_agent.data.curiosity import CuriosityConfig
from jepa_agent.data.play import PlayConfig
from jepa_agent.data.recording import RecorderConfig
from jepa_agent.robot import RobotDescription
from jepa_agent.nodes.explorer import ExplorerConfig
from jepa_agent.nodes.planner import PlannerNodeConfig
from jepa_agent.nodes.sim_arm import SimArmConfig
from jepa_agent.nodes.teleop_keyboard import TeleopConfig
from jepa_agent.nodes.trainer import TrainerConfig
from jepa_agent.planning.agent import AgentConfig
from jepa_agent.planning.cem import CEMConfig
from jepa_agent.ros.managed import AUTOSTART_DESCRIPTION
from jepa_agent.ros.params import declare_config, field_docs

GATE = (CommandGateConfig, 'command_gate.')
#: node -> (config class, parameter prefix) it declares; the planner's `enabled` and `goal_image_path` are dynamic
NODES = {
    'planner': [(PlannerNodeConfig, ''), (CEMConfig, 'cem.'), (RobotDescription, ''), (AgentConfig, ''), GATE],
    'sim_arm': [(SimArmConfig, '')],
    'explorer': [(ExplorerConfig, ''), GATE, (CuriosityConfig, 'curiosity.'), (PlayConfig, 'play.')],
    'recorder': [(RecorderConfig, '')],
    'trainer': [(TrainerConfig, ''), (RobotDescription, '')],
    'teleop_keyboard': [(TeleopConfig, ''), GATE],
}
DYNAMIC = {'planner': {'enabled', 'goal_image_path'}}
#: parameters every rclpy node declares itself
RCLPY_OWN = {'use_sim_time', 'start_type_description_service'}
#: managed (lifecycle) nodes: they command the arm or host a model, and declare `autostart` (ros/managed.py)
MANAGED = {'planner', 'explorer', 'trainer', 'teleop_keyboard'}


def expected_parameters(node: str) -> dict[str, tuple[type, dataclasses.Field]]:
    return {prefix + field.name: (cls, field) for cls, prefix in NODES[node] for field in dataclasses.fields(cls)}


def call(probe, srv_type, service: str, request, timeout: float = 120.0):
    """The response of one service call, waiting on service availability and the call's future (no polling). A
    managed node configures (loads its model) on its executor before it answers: on a loaded machine that took
    over 30 s, so the answer gets the same `timeout` as availability."""
    client = probe.create_client(srv_type, service)
    assert client.wait_for_service(timeout_sec=timeout), f'{service} never became available'
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    assert done.wait(timeout=timeout), f'{service} did not answer within {timeout} s'
    return future.result()


def check_descriptor(node: str, name: str, descriptor, cls: type, field: dataclasses.Field) -> None:
    assert descriptor.description and descriptor.description == field_docs(cls)[field.name], (node, name)
    assert descriptor.read_only == (field.name not in DYNAMIC.get(node, ())), (node, name)
    span = field_range(field)
    ranges = (descriptor.floating_point_range, descriptor.integer_range)
    if span is None:
        assert not any(ranges), (node, name, ranges)
    elif typing.get_type_hints(cls)[field.name] is int:
        (shown,) = descriptor.integer_range                  # closed: the integers of the range
        lo = -2 ** 63 if span.lo == -math.inf else span.lo + span.open_lo
        hi = 2 ** 63 - 1 if span.hi == math.inf else span.hi - span.open_hi
        assert not descriptor.floating_point_range and (shown.from_value, shown.to_value) == (lo, hi), (node, name)
    else:
        (shown,) = descriptor.floating_point_range
        assert not descriptor.integer_range and (shown.from_value, shown.to_value) == (span.lo, span.hi), (node, name)
        open_finite = (span.open_lo and math.isfinite(span.lo)) or (span.open_hi and math.isfinite(span.hi))
        assert (str(span) in descriptor.additional_constraints) == open_finite, (node, name)


@pytest.mark.slow
def test_every_node_parameter_is_described_read_only_unless_dynamic_and_ranged(start_node, ros_probe, tmp_path):
    params = {'sim_arm': {'image_size': 32, 'camera_hz': 2.0, 'joint_state_hz': 10.0},
              'recorder': {'dataset_dir': str(tmp_path / 'data')}}
    procs = {node: start_node(node, params=params.get(node), stdin=subprocess.PIPE if node == 'teleop_keyboard'
                              else None) for node in NODES}
    for node, process in procs.items():
        listed = call(ros_probe, ListParameters, f'/{node}/list_parameters', ListParameters.Request()).result.names
        expected = expected_parameters(node)
        managed = {'autostart'} if node in MANAGED else set()
        assert set(listed) - RCLPY_OWN == set(expected) | managed, (node, process.output())
        names = sorted(expected) + sorted(managed)
        described = call(ros_probe, DescribeParameters, f'/{node}/describe_parameters',
                         DescribeParameters.Request(names=names)).descriptors
        for name, descriptor in zip(names, described):
            if name == 'autostart':
                assert descriptor.description == AUTOSTART_DESCRIPTION and descriptor.read_only, node
            else:
                check_descriptor(node, name, descriptor, *expected[name])
        assert process.alive(), process.output()


# -- in process: the range is shown, values are accepted as before, refusals read like the config's -------------
def make_node(**overrides):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('range_test', context=context,
                             parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    return node, context


@pytest.mark.parametrize('overrides, value', [({}, 0.9), ({'velocity_fraction': 1}, 1.0),   # YAML `1`: an int
                                               ({'velocity_fraction': 0.5}, 0.5)])
def test_ranged_parameters_accept_what_the_config_accepts(overrides, value):
    node, context = make_node(**overrides)
    try:
        assert declare_config(node, CommandGateConfig).velocity_fraction == value
        (shown,) = node.describe_parameter('velocity_fraction').floating_point_range
        assert (shown.from_value, shown.to_value) == (0.0, 1.0)
        assert node.describe_parameter('velocity_fraction').additional_constraints == 'must be in (0, 1]'
        assert node.describe_parameter('max_acceleration').floating_point_range[0].to_value == math.inf
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize('overrides, message', [
    ({'velocity_fraction': 1.5}, 'velocity_fraction must be in (0, 1], got velocity_fraction=1.5'),   # rclpy refuses
    ({'velocity_fraction': 2}, 'velocity_fraction must be in (0, 1], got velocity_fraction=2.0'),     # an int
    ({'velocity_fraction': 0.0}, 'velocity_fraction must be in (0, 1], got velocity_fraction=0.0'),   # open bound
    ({'max_acceleration': math.nan}, 'max_acceleration must be in [0, inf), got max_acceleration=nan'),
])
def test_out_of_range_values_are_one_config_error_in_the_configs_words(overrides, message):
    node, context = make_node(**overrides)
    try:
        with pytest.raises(ConfigError) as error:
            declare_config(node, CommandGateConfig)
        assert str(error.value) == f'[range_test] {message}'
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_integer_ranges_hold_the_integers_of_the_declared_range():
    node, context = make_node()
    try:
        declare_config(node, CEMConfig, prefix='cem.')
        (samples,) = node.describe_parameter('cem.num_samples').integer_range
        assert (samples.from_value, samples.to_value) == (1, 2 ** 63 - 1)
        assert not node.describe_parameter('cem.seed').integer_range    # no range declared: none shown
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


# -- the shipped config files say what the nodes do anyway: a node started without them behaves the same ---------
def flat(params: dict, prefix: str = '') -> dict:
    out = {}
    for key, value in params.items():
        out.update(flat(value, f'{prefix}{key}.') if isinstance(value, dict) else {prefix + key: value})
    return out


@pytest.mark.parametrize('node', sorted(NODES))
def test_node_defaults_equal_the_shipped_config_file(node):
    from jepa_agent.config import load_section
    from jepa_agent.resources import config_path
    shipped = flat(load_section(config_path(f'{node}.yaml'), node))
    expected = expected_parameters(node)
    assert set(shipped) <= set(expected), sorted(set(shipped) - set(expected))
    for name, value in shipped.items():
        field = expected[name][1]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        assert default == value or (isinstance(default, float) and default == float(value)), (node, name, default, value)
