"""Managed nodes (ros/managed.py) driven by a lifecycle manager: the planner loads its model on configure, commands
the arm only while active, holds when deactivated, releases everything on cleanup and can be configured again; a
configure that fails leaves it unconfigured and alive."""
import os
import time

import pytest
from conftest import NodeProcess, spinning_node, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_helpers import Inbox
from sensor_msgs.msg import Image
from test_planner_node import COMMANDS, Feeder, tiny_checkpoint
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.ros.conversions import rgb_to_image
from jepa_agent.ros.qos import LATCHED
from jepa_agent.sim import make_env


def call(probe, srv_type, service: str, request, attempts: int = 1):
    """The service's response within 60 s, the request sent `attempts` times over that time (only for requests
    that change nothing: a request sent just as a service appears can be lost while DDS matches its endpoints)."""
    client = probe.create_client(srv_type, service)
    try:
        assert client.wait_for_service(timeout_sec=60.0), f'{service} never became available'
        for _ in range(attempts):
            future = client.call_async(request)
            if wait_for(future.done, 60.0 / attempts):
                return future.result()
        raise AssertionError(f'{service} did not answer')
    finally:
        probe.destroy_client(client)


def state(probe, node: str) -> str:
    return call(probe, GetState, f'/{node}/get_state', GetState.Request(), attempts=6).current_state.label


def transition(probe, node: str, transition_id: int) -> bool:
    return call(probe, ChangeState, f'/{node}/change_state',
                ChangeState.Request(transition=Transition(id=transition_id))).success


def planner_states(diagnostics: Inbox) -> list[str]:
    return [status.message for msg in diagnostics.messages() for status in msg.status if status.name == 'planner']


@pytest.fixture
def probe():
    with spinning_node(f'lifecycle_probe_{os.getpid()}') as node:
        yield node


@pytest.mark.slow
def test_planner_commands_only_while_active(probe, tmp_path):
    planner = NodeProcess('planner', params={'autostart': False, 'checkpoint': tiny_checkpoint(tmp_path / 'model'),
                                             'cem.num_samples': 32, 'cem.num_iterations': 1, 'cem.num_elites': 4,
                                             'cem.num_retained': 1}, log_dir=tmp_path)
    feeder = Feeder(probe)
    commands = Inbox(probe, JointTrajectory, COMMANDS)
    diagnostics = Inbox(probe, DiagnosticArray, '/diagnostics')
    goal_pub = probe.create_publisher(Image, '/jepa_agent/goal_image', LATCHED)
    env = make_env()
    try:
        goal_pub.publish(rgb_to_image(env.render()))
        assert state(probe, 'planner') == 'unconfigured', planner.output()

        assert transition(probe, 'planner', Transition.TRANSITION_CONFIGURE), planner.output()
        assert state(probe, 'planner') == 'inactive'
        seen = len(planner_states(diagnostics))
        assert wait_for(lambda: planner_states(diagnostics)[seen:].count('inactive') >= 2, 30), planner.output()
        assert len(commands) == 0, 'commanded the arm while inactive'

        assert transition(probe, 'planner', Transition.TRANSITION_ACTIVATE)
        assert wait_for(lambda: len(commands) >= 3, 60), planner.output()[-3000:]

        assert transition(probe, 'planner', Transition.TRANSITION_DEACTIVATE)
        deactivated = time.time()
        seen = len(planner_states(diagnostics))
        assert wait_for(lambda: planner_states(diagnostics)[seen:].count('inactive') >= 2, 30), planner.output()
        assert commands.sent_between(deactivated, time.time()) == [], 'commanded the arm after deactivation'

        assert transition(probe, 'planner', Transition.TRANSITION_CLEANUP)
        assert state(probe, 'planner') == 'unconfigured'
        assert transition(probe, 'planner', Transition.TRANSITION_CONFIGURE), planner.output()   # loads again
        assert transition(probe, 'planner', Transition.TRANSITION_ACTIVATE)
        before = len(commands)
        assert wait_for(lambda: len(commands) >= before + 2, 60), planner.output()[-3000:]
        assert planner.alive()
    finally:
        env.close()
        feeder.stop()
        probe.destroy_publisher(goal_pub)
        assert planner.stop() == 0, planner.output()


@pytest.mark.slow
def test_a_failed_configure_leaves_the_node_unconfigured_and_alive(probe, tmp_path):
    planner = NodeProcess('planner', params={'autostart': False, 'checkpoint': str(tmp_path / 'missing')},
                          log_dir=tmp_path)
    try:
        assert not transition(probe, 'planner', Transition.TRANSITION_CONFIGURE)
        assert state(probe, 'planner') == 'unconfigured'
        assert 'cannot load the world model' in planner.output() and planner.alive()
    finally:
        assert planner.stop() == 0, planner.output()


FALLBACK = '''
import sys
sys.modules['rclpy.lifecycle'] = None                      # an rclpy without lifecycle support
import rclpy
from std_msgs.msg import String
from jepa_agent.ros import managed

class Probe(managed.ManagedNode):
    def configure(self):
        self.pub = self.create_command_publisher(String, 'probe_commands', 10)

assert managed.LifecycleNode is None
rclpy.init()
node = Probe('fallback_probe')
assert not node.active and not hasattr(node, 'pub')
node.start()
assert node.active and node.pub.topic_name == '/probe_commands'
node.destroy_node()
rclpy.shutdown()
print('plain node, configured and active')
'''


def test_without_lifecycle_support_a_managed_node_is_a_plain_node_started_at_once():
    import subprocess
    import sys
    run = subprocess.run([sys.executable, '-c', FALLBACK], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and 'plain node, configured and active' in run.stdout, run.stderr
