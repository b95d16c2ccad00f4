"""TrajectoryFollower: joint_trajectory_controller timing and interpolation, without ROS."""
import numpy as np
import pytest

from jepa_agent.sim.trajectory import TrajectoryError, TrajectoryFollower

LOWER, UPPER = np.array([-1.0, -2.0]), np.array([1.0, 2.0])


def follower(times, positions, start=10.0):
    f = TrajectoryFollower(LOWER, UPPER)
    f.replace(np.array(times), np.array(positions), start)
    return f


def test_interpolates_from_the_position_at_start_through_waypoints():
    f = follower([1.0, 3.0], [[0.5, 1.0], [0.5, -1.0]])
    here = np.array([-0.5, 0.0])
    np.testing.assert_allclose(f.setpoint(10.0, here), here)              # anchored at the start
    np.testing.assert_allclose(f.setpoint(10.5, [9, 9]), [0.0, 0.5])      # anchor fixed after the first sample
    np.testing.assert_allclose(f.setpoint(11.0, here), [0.5, 1.0])
    np.testing.assert_allclose(f.setpoint(12.0, here), [0.5, 0.0])
    np.testing.assert_allclose(f.setpoint(20.0, here), [0.5, -1.0])       # holds the last point


def test_nothing_before_the_start_time_or_without_a_trajectory():
    assert TrajectoryFollower(LOWER, UPPER).setpoint(0.0, np.zeros(2)) is None
    f = follower([1.0], [[0.5, 0.5]], start=10.0)
    assert f.setpoint(9.9, np.zeros(2)) is None
    np.testing.assert_allclose(f.setpoint(10.5, np.zeros(2)), [0.25, 0.25])   # anchored when motion begins
    f.clear()
    assert not f.active and f.setpoint(10.5, np.zeros(2)) is None


def test_first_point_at_time_zero_is_a_jump():
    f = follower([0.0, 1.0], [[0.2, 0.2], [0.4, 0.4]])
    np.testing.assert_allclose(f.setpoint(10.0, np.zeros(2)), [0.2, 0.2])
    np.testing.assert_allclose(f.setpoint(10.5, np.zeros(2)), [0.3, 0.3])


def test_new_trajectory_replaces_the_running_one_from_the_current_position():
    f = follower([2.0], [[1.0, 1.0]])
    f.setpoint(10.0, np.zeros(2))
    midway = f.setpoint(11.0, np.zeros(2))
    f.replace(np.array([1.0]), np.array([[-1.0, -1.0]]), start=11.0)
    np.testing.assert_allclose(f.setpoint(11.0, midway), midway)
    np.testing.assert_allclose(f.setpoint(12.0, midway), [-1.0, -1.0])


def test_from_desired_state_a_new_trajectory_starts_at_the_setpoint_not_the_lagging_arm():
    f = TrajectoryFollower(LOWER, UPPER, interpolate_from_desired_state=True)
    f.replace(np.array([2.0]), np.array([[1.0, 1.0]]), start=10.0)
    np.testing.assert_allclose(f.setpoint(10.0, [0.2, 0.2]), [0.2, 0.2])     # the first one starts at the arm
    np.testing.assert_allclose(f.setpoint(11.0, [0.0, 0.0]), [0.6, 0.6])
    f.replace(np.array([1.0]), np.array([[1.0, 1.0]]), start=11.0)
    lagging = np.array([0.3, 0.3])
    np.testing.assert_allclose(f.setpoint(11.0, lagging), [0.6, 0.6])         # not pulled back to the arm
    np.testing.assert_allclose(f.setpoint(11.5, lagging), [0.8, 0.8])
    f.clear()                                                                   # e.g. a reset: nothing to continue
    f.replace(np.array([1.0]), np.array([[1.0, 1.0]]), start=12.0)
    np.testing.assert_allclose(f.setpoint(12.0, lagging), lagging)


@pytest.mark.parametrize('times, positions, needle', [
    ([1.0, 1.0], [[0, 0], [0.1, 0]], 'strictly increasing'),
    ([2.0, 1.0], [[0, 0], [0.1, 0]], 'strictly increasing'),
    ([-1.0], [[0, 0]], 'non-negative'),
    ([1.0], [[np.nan, 0]], 'NaN'),
    ([np.inf], [[0, 0]], 'NaN or inf'),
    ([1.0], [[0, 2.5]], 'outside the limits'),
    ([1.0], [[0, 0, 0]], 'positions'),
    ([], np.zeros((0, 2)), 'positions'),
])
def test_bad_trajectories_are_refused_and_the_running_one_kept(times, positions, needle):
    f = follower([1.0], [[0.5, 0.5]])
    with pytest.raises(TrajectoryError, match=needle):
        f.replace(np.array(times, dtype=float), np.array(positions, dtype=float), start=10.0)
    np.testing.assert_allclose(f.setpoint(11.0, np.zeros(2)), [0.5, 0.5])
