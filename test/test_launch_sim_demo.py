"""launch_testing: `ros2 launch jepa_agent sim_demo.launch.py` — the sim streams, the planner plans toward the goal of
the seed and commands the arm within its limits, and every process exits cleanly at shutdown.

Needs a ROS 2 install with jepa_agent built (`colcon build`, then `colcon test` or
`python -m pytest test/test_launch_sim_demo.py` with the workspace sourced); skipped where launch_testing is absent.
Plain-pytest twin (runs everywhere): test_integration_sim_demo.py.
"""
import pytest
from ros_helpers import launch_test_requirements

MISSING = launch_test_requirements('launch_testing', 'launch_testing_ros', 'launch_ros')
if MISSING:
    def test_sim_demo_launch_needs_a_ros_2_install():
        pytest.skip(MISSING)
else:
    import unittest

    import launch_testing.actions
    import launch_testing.asserts
    import launch_testing.markers
    import numpy as np
    from launch_testing_ros import WaitForTopics
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from jepa_agent.data.messages import trajectory_points
    from jepa_agent.ros.launch import share_file
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription

    NAMES = ['shoulder', 'elbow', 'wrist']
    LOWER, UPPER = np.array([-2.8, -2.5, -2.5]), np.array([2.8, 2.5, 2.5])

    @pytest.mark.launch_test
    @launch_testing.markers.keep_alive
    def generate_test_description():
        demo = IncludeLaunchDescription(share_file('launch', 'sim_demo.launch.py'),
                                        launch_arguments={'goal_seed': '1000'}.items())
        return LaunchDescription([demo, launch_testing.actions.ReadyToTest()])

    class TestSimDemo(unittest.TestCase):

        def test_planner_commands_the_sim_arm_within_limits(self):
            topics = [('/joint_states', JointState), ('/jepa_agent/plan', JointTrajectory),
                      ('/arm_controller/joint_trajectory', JointTrajectory)]
            with WaitForTopics(topics, timeout=120.0, messages_received_buffer_length=20) as seen:
                commands = list(seen.received_messages('/arm_controller/joint_trajectory'))
                plans = list(seen.received_messages('/jepa_agent/plan'))
            self.assertTrue(commands and plans)
            for msg in commands + plans:
                _, positions = trajectory_points(msg, NAMES)       # valid, finite, increasing times
                self.assertTrue(np.all(positions >= LOWER) and np.all(positions <= UPPER), positions)

        def test_planner_loaded_the_goal_of_the_seed(self, proc_output):
            proc_output.assertWaitFor('goal image from', timeout=60)

    @launch_testing.post_shutdown_test()
    class TestShutdown(unittest.TestCase):

        def test_every_process_exits_cleanly(self, proc_info):
            launch_testing.asserts.assertExitCodes(proc_info)
