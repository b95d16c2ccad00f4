"""Strict configuration: config files (CLI and nodes) refuse empty files, unknown sections and unknown keys with one
line naming the file, section and closest valid name; node parameters are read-only unless the node applies them
at run time, and a node refuses parameters it does not declare."""
import time

import pytest
import rclpy
from conftest import wait_for
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

from jepa_agent.cli import main
from jepa_agent.config import ConfigError, build, load, load_section
from jepa_agent.robot import RobotDescription
from jepa_agent.ros.params import declare_config, field_docs, node_name, params_files, ros_arguments

PARAMS = '  ros__parameters:\n'


def write(tmp_path, text, name='params.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


# -- config files (CLI) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize('text', ['', '# only a comment\n', '{}\n'])
def test_empty_file_is_refused(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f'{path} is empty'):
        load_section(path, 'train')


def test_misspelled_section_names_the_file_and_the_closest_section(tmp_path):
    path = write(tmp_path, 'trian:\n' + PARAMS + '    steps: 3\n')
    with pytest.raises(ConfigError, match=rf"{path}: unknown section 'trian' \(did you mean 'train'\?\)"):
        load_section(path, 'train')
    path = write(tmp_path, '/**/plannr:\n' + PARAMS + '    rate_hz: 3.0\n')
    with pytest.raises(ConfigError, match="did you mean 'planner'"):
        load_section(path, 'planner')


def test_file_without_a_section_for_the_node_is_refused(tmp_path):
    path = write(tmp_path, 'planner:\n' + PARAMS + '    rate_hz: 3.0\n')
    with pytest.raises(ConfigError, match=f"{path} has no section for 'train'"):
        load_section(path, 'train')
    assert load_section(path, 'train', required=False) == {}       # an optional section (e.g. collect-sim --config)


def test_misspelled_ros_parameters_key_is_refused(tmp_path):
    path = write(tmp_path, 'train:\n  ros_parameters:\n    steps: 3\n')
    with pytest.raises(ConfigError, match="section 'train'.*did you mean 'ros__parameters'"):
        load_section(path, 'train')


def test_one_file_may_configure_several_nodes_with_wildcards_and_namespaces(tmp_path):
    path = write(tmp_path, '/**:\n' + PARAMS + '    seed: 1\n'
                           'explorer:\n' + PARAMS + '    rate_hz: 5.0\n'
                           '/arm/planner:\n' + PARAMS + '    rate_hz: 2.0\n'
                           '/train:\n' + PARAMS + '    steps: 7\n'
                           '/arm/*:\n' + PARAMS + '    other: 1\n')
    assert load_section(path, 'train') == {'seed': 1, 'steps': 7}
    assert load_section(path, 'explorer') == {'seed': 1, 'rate_hz': 5.0}
    assert load_section(path, 'planner') == {'seed': 1, 'rate_hz': 2.0}      # under any namespace
    assert load_section(write(tmp_path, '/**/recorder:\n' + PARAMS + '    rate_hz: 4.0\n', 'ns.yaml'),
                        'recorder') == {'rate_hz': 4.0}


def test_dotted_keys_are_the_nested_form(tmp_path):
    path = write(tmp_path, 'planner:\n' + PARAMS + '    cem.horizon: 9\n    cem:\n      num_samples: 50\n')
    assert load_section(path, 'planner') == {'cem': {'horizon': 9, 'num_samples': 50}}


def test_unknown_key_names_the_file_section_and_closest_key(tmp_path):
    path = write(tmp_path, 'explorer:\n' + PARAMS + '    joint_nmes: [a]\n')
    with pytest.raises(ConfigError, match=rf"{path}: \[explorer\] unknown parameter\(s\) \['joint_nmes'\] "
                                          r"\(did you mean 'joint_names'\?\)"):
        load(RobotDescription, path, 'explorer')
    with pytest.raises(ConfigError, match=r'\[planner.cem\] must be a mapping'):
        build(RobotDescription, 5, section='planner.cem')


@pytest.mark.parametrize('text, message', [
    ('', 'is empty'),
    ('trian:\n' + PARAMS + '    steps: 3\n', "unknown section 'trian' (did you mean 'train'?)"),
    ('planner:\n' + PARAMS + '    rate_hz: 3.0\n', "has no section for 'train'"),
    ('train:\n' + PARAMS + '    model:\n      latnt_dim: 8\n', "[train.model] unknown parameter(s) ['latnt_dim'] "
                                                              "(did you mean 'latent_dim'?)"),
    ('train:\n' + PARAMS + '    loss:\n      rollout_step: 3\n', "(did you mean 'rollout_steps'?)"),
    ('train:\n' + PARAMS + '    stepz: 3\n', "(did you mean 'steps'?)"),
])
def test_train_cli_refuses_a_bad_config_with_one_line_and_exit_code_2(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(['train', '--config', str(path), '--data', str(tmp_path / 'no_data'),
                 '--out', str(tmp_path / 'run')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(path) in err and message in err, err
    assert not (tmp_path / 'run').exists()


def test_eval_planner_refuses_a_misspelled_cem_key(tmp_path, capsys):
    path = write(tmp_path, 'planner:\n' + PARAMS + '    cem:\n      horizn: 9\n')
    assert main(['eval-planner', '--config', str(path), '--out', str(tmp_path / 'eval')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and "[planner.cem] unknown parameter(s) ['horizn'] (did you mean 'horizon'?)" in err
    assert main(['eval-planner', '--config', str(tmp_path / 'missing.yaml'), '--out', str(tmp_path / 'eval')]) == 2
    assert 'cannot read config file' in capsys.readouterr().err


# -- ROS parameters -----------------------------------------------------------------------------------------------
def test_ros_argument_parsing():
    argv = ['prog', 'x', '--ros-args', '--params-file', 'a.yaml', '-p', 'seed:=1', '-r', '__node:=arm_planner', '--',
            'y', '--ros-args', '--params-file', 'b.yaml']
    ros_args = ros_arguments(argv)
    assert params_files(ros_args) == ['a.yaml', 'b.yaml']
    assert node_name(ros_args, 'planner') == 'arm_planner'
    assert node_name([], 'planner') == 'planner'


def test_field_docstrings_become_descriptions():
    docs = field_docs(RobotDescription)
    assert docs['lower'] == 'Lower position limits (rad).'


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('config_test', context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_parameters_are_read_only_unless_dynamic(node):
    from rclpy.parameter import Parameter
    config = declare_config(node, RobotDescription, prefix='arm.', dynamic=('lower',))
    assert config == RobotDescription()
    assert node.describe_parameter('arm.upper').read_only
    assert node.describe_parameter('arm.upper').description == 'Upper position limits (rad).'
    assert not node.describe_parameter('arm.lower').read_only
    result = node.set_parameters([Parameter('arm.upper', value=[1.0, 1.0, 1.0])])[0]
    assert not result.successful and 'read-only' in result.reason
    assert node.set_parameters([Parameter('arm.lower', value=[-1.0, -1.0, -1.0])])[0].successful
    with pytest.raises(ValueError, match=r"\['colour'\] are not fields"):
        declare_config(node, RobotDescription, prefix='x.', dynamic=('colour',))


# -- node processes -----------------------------------------------------------------------------------------------
def _exits_with_one_fatal_line(process, *expected):
    assert wait_for(lambda: not process.alive(), timeout=30.0), process.output()
    output = process.output()
    fatal = [line for line in output.splitlines() if 'FATAL' in line]
    assert process.proc.returncode == 2 and len(fatal) == 1, output
    assert 'Traceback' not in output and all(text in fatal[0] for text in expected), output


@pytest.mark.slow
def test_node_refuses_a_misspelled_section_an_empty_file_and_undeclared_or_topic_parameters(start_node, tmp_path):
    typo = write(tmp_path, 'explorr:\n' + PARAMS + '    seed: 1\n', 'typo.yaml')
    empty = write(tmp_path, '', 'empty.yaml')
    own = write(tmp_path, 'explorer:\n' + PARAMS + '    sed: 1\n', 'own.yaml')
    former = write(tmp_path, '/**:\n' + PARAMS + '    image_topic: /wrist/image_raw\n', 'former.yaml')
    processes = [
        (start_node('explorer', args=['--ros-args', '--params-file', str(typo)]),
         (str(typo), "unknown section 'explorr' (did you mean 'explorer'?)")),
        (start_node('explorer', args=['--ros-args', '--params-file', str(empty)]), (str(empty), 'is empty')),
        (start_node('explorer', params={'rate_hzz': 3.0}),
         ("['rate_hzz'] set by -p (did you mean 'rate_hz'?)",)),
        (start_node('explorer', args=['--ros-args', '--params-file', str(own)]),
         (f"['sed'] set in {own} (did you mean 'seed'?)",)),
        # topic names are fixed: a former topic parameter says which remap replaces it, even from a `/**` section
        (start_node('explorer', params={'joint_states_topic': '/my_arm/joint_states'}),
         ('joint_states_topic (set by -p) is not a parameter', '--ros-args -r joint_states:=<topic>')),
        (start_node('explorer', args=['--ros-args', '--params-file', str(former)]),
         (f'image_topic (set in {former}) is not a parameter', '--ros-args -r camera/image_raw:=<topic>')),
    ]
    for process, expected in processes:
        _exits_with_one_fatal_line(process, 'configuration error', *expected)


@pytest.mark.slow
def test_node_refuses_run_time_changes_to_read_only_parameters(start_node, ros_probe, tmp_path):
    shared = write(tmp_path, '/**:\n' + PARAMS + '    some_other_nodes_parameter: 1\n'
                             'planner:\n' + PARAMS + '    rate_hz: 2.0\n')
    explorer = start_node('explorer', args=['--ros-args', '--params-file', str(shared)])  # shared file: accepted
    client = ros_probe.create_client(SetParameters, '/explorer/set_parameters')
    assert client.wait_for_service(timeout_sec=30.0), explorer.output()
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=2.0)
    future = client.call_async(SetParameters.Request(parameters=[ParameterMsg(name='rate_hz', value=value)]))
    assert wait_for(future.done, 10.0)
    (result,) = future.result().results
    assert not result.successful and 'read-only' in result.reason and 'rate_hz' in result.reason
    time.sleep(0.5)
    assert explorer.alive(), explorer.output()
