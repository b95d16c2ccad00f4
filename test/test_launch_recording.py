"""launch_pytest: `ros2 launch jepa_agent record_teleop.launch.py` — the recording pipeline under real launch: an
episode started and stopped through the recorder's services holds the commanded jog, and every process exits cleanly.

The test publishes the jog itself (teleop:=false; teleop_keyboard needs a terminal). Needs a ROS 2 install with
jepa_agent built; skipped where launch_pytest is absent. Plain-pytest twin: test_integration_recording.py.
"""
import pytest
from ros_helpers import launch_test_requirements

MISSING = launch_test_requirements('launch_pytest', 'launch_testing', 'launch_ros')
if MISSING:
    def test_recording_launch_needs_a_ros_2_install():
        pytest.skip(MISSING)
else:
    import threading
    import time

    import launch_pytest
    import numpy as np
    import rclpy
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState
    from std_srvs.srv import Trigger
    from trajectory_msgs.msg import JointTrajectory

    from jepa_agent.data.episodes import EpisodeReader, episode_dirs
    from jepa_agent.ros.conversions import joint_positions, make_trajectory
    from jepa_agent.ros.launch import share_file
    from jepa_agent.ros.qos import SENSOR

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
        """A node in its own context, spinning in a thread: joint states in, jogs and service calls out."""

        def __init__(self):
            self.context = rclpy.Context()
            rclpy.init(context=self.context)
            self.node = rclpy.create_node('recording_probe', context=self.context)
            self.q, self.image_seen = None, False
            self.node.create_subscription(JointState, '/joint_states', self._on_joints, 10)
            self.node.create_subscription(Image, '/camera/image_raw', self._on_image, SENSOR)
            self.jog = self.node.create_publisher(JointTrajectory, '/arm_controller/joint_trajectory', 10)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
            self.thread = threading.Thread(target=self.executor.spin, daemon=True)
            self.thread.start()

        def _on_joints(self, msg):
            self.q = joint_positions(msg, NAMES)

        def _on_image(self, msg):
            self.image_seen = True

        def wait(self, predicate, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while not predicate() and time.monotonic() < deadline:
                time.sleep(0.05)
            return bool(predicate())

        def call(self, service: str) -> Trigger.Response:
            client = self.node.create_client(Trigger, service)
            assert client.wait_for_service(timeout_sec=60), f'{service} not available'
            future = client.call_async(Trigger.Request())
            assert self.wait(future.done, 15), f'{service} did not answer'
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
            assert probe.wait(lambda: probe.q is not None, 90), 'no joint states from the sim'
            assert probe.wait(lambda: probe.image_seen, 60), 'no camera images from the sim'
            response = probe.call('/recorder/start_episode')
            assert response.success, response.message
            start = probe.q.copy()
            target = start + [0.4, 0.0, 0.0]
            probe.jog.publish(make_trajectory(NAMES, [target], 1.0))
            assert probe.wait(lambda: abs(probe.q[0] - target[0]) < 0.02, 30), (probe.q, target)
            time.sleep(0.5)
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
