"""launch_pytest: `ros2 launch jepa_agent record_teleop.launch.py` — the recording pipeline under real launch: an
episode started and stopped through the recorder's services holds the commanded jog, and every process exits cleanly.
Without a terminal program or a display, the launch file starts no teleop_keyboard and says so in one log line.

The test publishes the jog itself (teleop:=false; teleop_keyboard needs a terminal) and waits only on what its probe
receives, never on time. Needs a ROS 2 install with jepa_agent built; skipped where launch_pytest is absent.
Plain-pytest twin: test_integration_recording.py.
"""
import pytest
from ros_helpers import launch_test_requirements

MISSING = launch_test_requirements('launch_pytest', 'launch_testing', 'launch_ros')
if MISSING:
    def test_recording_launch_needs_a_ros_2_install():
        pytest.skip(MISSING)
else:
    import os
    import threading

    import launch_pytest
    import numpy as np
    import rclpy
    from ament_index_python.packages import get_package_share_directory
    from conftest import wait_for
    from launch import LaunchContext, LaunchDescription
    from launch.actions import IncludeLaunchDescription, LogInfo, OpaqueFunction, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch_ros.actions import Node, SetRemap
    from rclpy.executors import SingleThreadedExecutor
    from ros_helpers import Inbox, JointWatcher, RecorderStatus
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from jepa_agent.data.episode_reader import EpisodeReader
    from jepa_agent.data.episodes import episode_dirs
    from jepa_agent.ros.conversions import make_trajectory
    from jepa_agent.ros.launch import share_file
    from jepa_agent.ros.qos import RELIABLE, SENSOR

    NAMES = ['shoulder', 'elbow', 'wrist']
    EXIT_CODES: dict[str, int] = {}

    @pytest.fixture
    def dataset_dir(tmp_path):
        return tmp_path / 'teleop'

    @launch_pytest.fixture
    def recording(dataset_dir):
        record = IncludeLaunchDescription(
            share_file('launch', 'record_teleop.launch.py'),
            launch_arguments={'teleop': 'false', 'dataset_dir': str(dataset_dir)}.items())
        exits = RegisterEventHandler(OnProcessExit(
            on_exit=lambda event, context: EXIT_CODES.__setitem__(event.action.name, event.returncode)))
        return LaunchDescription([exits, record, launch_pytest.actions.ReadyToTest()])

    class Probe:
        """A node in its own context, spinning in a thread. Every wait is on what it receives itself: the sim's
        streams, the recorder's /diagnostics (what the recorder has received and recorded), matched subscriptions
        of its jog publisher, the recorder's services."""

        def __init__(self):
            self.context = rclpy.Context()
            rclpy.init(context=self.context)
            self.node = rclpy.create_node('recording_probe', context=self.context)
            self.joints = JointWatcher(self.node, NAMES)
            self.images = Inbox(self.node, Image, '/camera/image_raw', SENSOR)
            self.recorder = RecorderStatus(self.node)
            self.jog = self.node.create_publisher(JointTrajectory, '/arm_controller/joint_trajectory', RELIABLE)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
            self.thread = threading.Thread(target=self.executor.spin, daemon=True)
            self.thread.start()

        def now(self) -> float:
            return self.node.get_clock().now().nanoseconds * 1e-9

        def call(self, service: str) -> Trigger.Response:
            client = self.node.create_client(Trigger, service)
            assert client.wait_for_service(timeout_sec=60), f'{service} not available'
            future = client.call_async(Trigger.Request())
            assert wait_for(future.done, 15), f'{service} did not answer'
            return future.result()

        def close(self):
            self.executor.shutdown()
            self.thread.join(timeout=5)
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)

    @pytest.mark.launch(fixture=recording)
    def test_a_commanded_jog_is_recorded_and_processes_exit_cleanly(dataset_dir):
        probe = Probe()
        try:
            assert wait_for(lambda: probe.joints.positions() is not None, 90), 'no joint states from the sim'
            assert wait_for(lambda: len(probe.images) > 0, 60), 'no camera images from the sim'
            # the recorder has both streams (else start_episode answers 'no image received yet')
            assert wait_for(lambda: probe.recorder.received('images', 'joint_states'), 60), probe.recorder.values()[-1:]
            # sim_arm and recorder both hear the jog before it is sent (a publish before matching is lost)
            assert wait_for(lambda: probe.jog.get_subscription_count() >= 2, 30), probe.jog.get_subscription_count()
            response = probe.call('/recorder/start_episode')
            assert response.success, response.message
            start = probe.joints.positions()
            target = start + [0.4, 0.0, 0.0]
            probe.jog.publish(make_trajectory(NAMES, [target], 1.0))
            assert wait_for(lambda: abs(probe.joints.positions()[0] - target[0]) < 0.02, 30), \
                (probe.joints.positions(), target)
            reached = probe.now()
            # stop once the recorder reports the jog received and 1 s of frames stored after the arm arrived (more
            # than its backlog of camera images on a busy machine: the last frames show the arm there)
            assert wait_for(lambda: probe.recorder.received('commands')
                            and probe.recorder.frames_recorded_since(reached) >= 10, 30), probe.recorder.values()[-3:]
            response = probe.call('/recorder/stop_episode')
            assert response.success, response.message
        finally:
            probe.close()
        yield
        # after launch shut everything down
        assert EXIT_CODES and all(code == 0 for code in EXIT_CODES.values()), EXIT_CODES
        (episode,) = episode_dirs(dataset_dir)
        reader = EpisodeReader(episode)
        assert len(reader) >= 10
        assert reader.qpos[-1][0] - reader.qpos[0][0] > 0.3
        assert reader.target[-1] == pytest.approx(target, abs=0.02)
        assert np.all(np.isfinite(reader.qpos))

    def teleop_actions(**arguments) -> list:
        """The actions inside record_teleop.launch.py's GroupAction (remaps, nodes, log lines) for `arguments`,
        made without starting anything."""
        description = get_launch_description_from_python_launch_file(
            os.path.join(get_package_share_directory('jepa_agent'), 'launch', 'record_teleop.launch.py'))
        context = LaunchContext()
        context.launch_configurations.update(arguments)
        actions = []
        for entity in description.entities:
            if isinstance(entity, OpaqueFunction):
                (group,) = entity.execute(context)
                actions += group.get_sub_entities()
            else:
                entity.visit(context)          # DeclareLaunchArgument: the defaults of the arguments not given
        return actions

    def executables(actions: list) -> list[str]:
        return [action.node_executable for action in actions if isinstance(action, Node)]

    def remaps(actions: list) -> dict[str, str]:
        """{fixed name: topic} of the SetRemap actions: what every node of the group uses."""
        def text(substitutions) -> str:
            return ''.join(part.perform(LaunchContext()) for part in substitutions)
        return {text(action.src): text(action.dst) for action in actions if isinstance(action, SetRemap)}

    def log_lines(actions: list) -> list[str]:
        return [''.join(part.perform(LaunchContext()) for part in action.msg)
                for action in actions if isinstance(action, LogInfo)]

    def test_without_a_terminal_program_teleop_is_one_log_line_not_a_failed_process(monkeypatch):
        monkeypatch.setenv('DISPLAY', ':0')
        actions = teleop_actions(teleop_terminal='jepa-agent-no-such-terminal -e',
                                 trajectory_topic='/my_arm/joint_trajectory', camera_topic='/wrist/image_raw')
        assert executables(actions) == ['sim_arm', 'recorder']
        (line,) = log_lines(actions)
        assert "'jepa-agent-no-such-terminal' is not installed" in line
        assert line.endswith('ros2 run jepa_agent teleop_keyboard --ros-args '
                             '-r arm_controller/joint_trajectory:=/my_arm/joint_trajectory')
        assert remaps(actions) == {'camera/image_raw': '/wrist/image_raw', 'joint_states': '/joint_states',
                                   'camera/camera_info': '/wrist/camera_info',     # follows the camera
                                   'arm_controller/joint_trajectory': '/my_arm/joint_trajectory'}

    def test_teleop_opens_in_its_terminal_only_where_there_is_a_display(monkeypatch):
        monkeypatch.delenv('DISPLAY', raising=False)
        monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
        actions = teleop_actions(teleop_terminal='sh -c')       # sh is everywhere; a window needs a display
        assert executables(actions) == ['sim_arm', 'recorder']
        (line,) = log_lines(actions)
        assert "no display for 'sh'" in line
        monkeypatch.setenv('DISPLAY', ':0')
        actions = teleop_actions(teleop_terminal='sh -c')
        assert executables(actions) == ['sim_arm', 'teleop_keyboard', 'recorder'] and log_lines(actions) == []
        actions = teleop_actions(teleop='false')
        assert executables(actions) == ['sim_arm', 'recorder'] and log_lines(actions) == []

    def test_launch_outputs_default_under_ros_home_not_the_working_directory(monkeypatch, tmp_path):
        from jepa_agent.ros.launch import output_dir
        monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros_home'))
        monkeypatch.chdir(tmp_path)
        assert output_dir('teleop') == str(tmp_path / 'ros_home' / 'jepa_agent' / 'teleop')
        monkeypatch.delenv('ROS_HOME')
        assert output_dir('online') == os.path.join(os.path.expanduser('~'), '.ros', 'jepa_agent', 'online')
