"""CommandGate: what may be published to the arm, checked from where the arm really is (ROS-free)."""
import numpy as np
import pytest

from jepa_agent.command_gate import (CommandGate, CommandGateConfig, CommandRefused, ExecutedTrajectory, JointReading,
                                     point_at, speed_ratios)

LOWER, UPPER, VELOCITY = np.array([-2.8, -2.5, -2.5]), np.array([2.8, 2.5, 2.5]), np.array([1.5, 1.5, 1.0])


def gate(**config) -> CommandGate:
    return CommandGate(LOWER, UPPER, VELOCITY, stale_timeout_s=0.5, config=CommandGateConfig(**config))


def reading(q=(0.0, 0.0, 0.0), age=0.02) -> JointReading:
    return JointReading(np.array(q, float), age)


def test_refuses_when_disabled_stale_missing_or_not_finite():
    g = gate()
    ok = dict(positions=[[0.1, 0.1, 0.1]], times=[0.1])
    g.admit(**ok, joints=reading())                                            # the baseline is admitted
    cases = {'disabled': dict(joints=reading(), enabled=False),
             'no joint state': dict(joints=None),
             'joint state is 0.60 s old': dict(joints=reading(age=0.6)),
             'camera frame is 0.51 s old': dict(joints=reading(), camera_age_s=0.51),
             'camera frame is nan': dict(joints=reading(), camera_age_s=float('nan'))}
    for reason, kwargs in cases.items():
        with pytest.raises(CommandRefused, match=reason.split(' s old')[0]):
            g.admit(**ok, **kwargs)
    for bad in (dict(positions=[[np.nan, 0, 0]], times=[0.1], joints=reading()),
                dict(positions=[[0, 0, 0]], times=[np.inf], joints=reading()),
                dict(positions=[[0, 0, 0]], times=[0.1], joints=reading(q=(0, np.nan, 0))),
                dict(positions=[[0, 0]], times=[0.1], joints=reading()),
                dict(positions=[[0, 0, 0]], times=[0.1, 0.2], joints=reading()),
                dict(positions=np.zeros((0, 3)), times=[], joints=reading())):
        with pytest.raises(CommandRefused):
            g.admit(**bad)


def test_positions_are_moved_into_the_limits_and_times_only_later():
    g = gate(command_latency_s=0.0)
    times, positions = g.admit([[5.0, -9.0, 0.0], [2.0, 0.0, 0.0]], [0.1, 0.2], reading(q=(2.7, -2.4, 0.0), age=0.0))
    np.testing.assert_allclose(positions, [[2.8, -2.5, 0.0], [2.0, 0.0, 0.0]])
    assert np.all(times >= [0.1, 0.2]) and np.all(np.diff(times) > 0)


def test_a_slow_enough_plan_keeps_its_times():
    g = gate(command_latency_s=0.0, velocity_fraction=1.0)
    planned = np.array([0.1, 0.2, 0.3])
    times, _ = g.admit([[0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0]], planned, reading(age=0.0))
    np.testing.assert_allclose(times, planned)


def test_time_is_stretched_so_no_joint_exceeds_its_limit():
    g = gate(command_latency_s=0.0, velocity_fraction=1.0)
    # 1 rad on the wrist (limit 1.0 rad/s) in 0.1 s: needs 1 s; the next 0.5 rad on the shoulder needs 1/3 s
    times, positions = g.admit([[0.0, 0.0, 1.0], [0.5, 0.0, 1.0]], [0.1, 0.2], reading(age=0.0))
    np.testing.assert_allclose(times, [1.0, 1.0 + 0.5 / 1.5])
    assert speed_ratios(times, positions, np.zeros(3), VELOCITY).max() <= 1.0 + 1e-9


@pytest.mark.parametrize('seed', range(20))
def test_first_point_is_feasible_from_wherever_the_arm_got_to_meanwhile(seed):
    """During age + latency the arm moves at most velocity × that time: from any such position the admitted
    trajectory needs no joint beyond its limit (the guarantee the gate exists for)."""
    rng = np.random.default_rng(seed)
    g = gate(command_latency_s=0.05, velocity_fraction=0.9)
    q = rng.uniform(LOWER * 0.8, UPPER * 0.8)
    plan = np.clip(q + np.cumsum(rng.normal(0, 0.3, (6, 3)), axis=0), LOWER, UPPER)
    age = rng.uniform(0.0, 0.3)
    times, positions = g.admit(plan, 0.1 * np.arange(1, 7), reading(q, age))
    np.testing.assert_allclose(positions, plan)                               # the path is the planned one
    for _ in range(50):
        drift = rng.uniform(-1, 1, 3) * VELOCITY * (age + 0.05)              # where the arm may be on arrival
        assert speed_ratios(times, positions, q + drift, VELOCITY).max() <= 1.0 + 1e-9


@pytest.mark.parametrize('seed', range(20))
def test_with_a_clock_the_first_point_is_feasible_from_the_controllers_setpoint_too(seed):
    """A controller with interpolate_from_desired_state starts each trajectory from its setpoint, which leads an arm
    that lags it: with `now`, the gate times the first point from there as well, whenever (within the latency's
    variation) the command takes effect, and from the measured position as before."""
    rng = np.random.default_rng(seed)
    g = gate(command_latency_s=0.05, velocity_fraction=0.9)
    latency, q = 0.05, rng.uniform(LOWER * 0.5, UPPER * 0.5)
    previous = None
    for k in range(8):
        now = 0.1 * k
        lagging = q - rng.uniform(-1, 1, 3) * VELOCITY * 0.12    # the reading trails the setpoint (lag + age)
        plan = np.clip(q + np.cumsum(rng.normal(0, 0.15, (3, 3)), axis=0), LOWER, UPPER)
        times, positions = g.admit(plan, 0.1 * np.arange(1, 4), reading(lagging, 0.02), now=now)
        effect = now + latency * rng.uniform(0.0, 2.0)                           # the latency varies
        setpoint = lagging if previous is None else previous.position_at(effect)
        assert speed_ratios(times, positions, setpoint, VELOCITY).max() <= 1.0 + 1e-9
        assert speed_ratios(times, positions, lagging, VELOCITY).max() <= 1.0 + 1e-9
        previous = ExecutedTrajectory(effect, setpoint, times, positions)   # as the controller runs it
        q = previous.position_at(now + 0.1 + latency)


def test_a_reversal_is_timed_from_the_setpoint_that_leads_the_lagging_arm():
    g = gate(command_latency_s=0.05, velocity_fraction=0.9)
    first = g.admit([[1.35, 0.0, 0.0]], [1.0], reading(age=0.0), now=0.0)       # joint 0 at about 0.9 × its limit
    lagging = reading((0.48, 0.0, 0.0), age=0.02)                             # 0.12 s of motion behind
    times, positions = g.admit([[0.4, 0.0, 0.0]], [0.1], lagging, now=0.5)       # back
    for effect in (0.55, 0.6):                                                  # the latency as expected, or twice
        setpoint = point_at(effect - 0.05, np.zeros(3), *first)
        assert speed_ratios(times, positions, setpoint, VELOCITY).max() <= 1.0


def test_a_clock_that_went_back_forgets_the_commands_admitted_before():
    g = gate(command_latency_s=0.05)
    g.admit([[0.5, 0.0, 0.0]], [0.5], reading(age=0.0), now=10.0)
    assert g.setpoint_at(10.3) is not None
    g.admit([[0.0, 0.0, 0.1]], [0.1], reading(age=0.0), now=0.0)                # a new episode's clock
    np.testing.assert_allclose(g.setpoint_at(0.05), [0.0, 0.0, 0.0])          # from the measured position


def test_optional_acceleration_limit_lengthens_short_fast_segments():
    g = gate(command_latency_s=0.0, velocity_fraction=1.0, max_acceleration=4.0)
    # 0.16 rad rest to rest at 4 rad/s² takes 2·sqrt(0.04) = 0.4 s (the velocity limit alone would allow 0.107 s)
    times, _ = g.admit([[0.16, 0.0, 0.0]], [0.1], reading(age=0.0))
    np.testing.assert_allclose(times, [0.4])
    slow, _ = gate(command_latency_s=0.0, velocity_fraction=1.0).admit([[0.16, 0.0, 0.0]], [0.1], reading(age=0.0))
    np.testing.assert_allclose(slow, [0.16 / 1.5])


def test_speed_ratios_flag_a_jump_and_a_fast_segment():
    ratios = speed_ratios(np.array([0.1, 0.2]), np.array([[0.15, 0, 0], [0.45, 0, 0]]), np.zeros(3), VELOCITY)
    np.testing.assert_allclose(ratios, [1.0, 2.0])


def test_config_is_validated():
    for bad in (dict(command_latency_s=-0.1), dict(velocity_fraction=0.0), dict(velocity_fraction=1.2),
                dict(max_acceleration=-1.0), dict(max_acceleration=float('inf'))):
        with pytest.raises(ValueError):
            CommandGateConfig(**bad)
    with pytest.raises(ValueError):
        CommandGate([0.0], [-1.0], [1.0])
    with pytest.raises(ValueError):
        CommandGate([0.0], [1.0], [1.0], stale_timeout_s=0.0)
