"""The agent loop (ROS-free): when it holds, what it plans from, what it sends, and when it stops at the goal."""
import numpy as np
import pytest

from jepa_agent.command_gate import CommandGate, CommandGateConfig, JointReading
from jepa_agent.planning.agent import Agent, AgentConfig, Command, Hold
from jepa_agent.planning.cem import Plan
from jepa_agent.planning.constraints import JointLimits

LIMITS = JointLimits(lower=[-2.0, -2.0], upper=[2.0, 2.0], velocity=[1.5, 1.5], dt=0.1)
IMAGE = np.zeros((4, 4, 3), np.uint8)


class Scripted:
    """Plans 0.1 rad further on joint 0 per step from where it is told to start; records what it was given."""

    needs_images = True
    periods_per_step = 1

    def __init__(self, cost=1.0, stay=2.0, horizon=5, ahead=False):
        self.cost, self.stay, self.horizon, self.calls, self.goals = cost, stay, horizon, [], []
        self.ahead, self.prepared = ahead, []

    def set_goal(self, goal):
        self.goals.append(goal)

    def plan(self, frames, q, in_flight, shift):
        self.calls.append(dict(frames=frames, q=q, in_flight=in_flight, shift=shift))
        q0 = in_flight[-1] if len(in_flight) else q
        targets = q0 + np.outer(np.arange(1, self.horizon + 1), [0.1, 0.0])
        return Plan(np.diff(np.vstack([q0, targets]), axis=0), targets, self.cost, 0.2)

    def prepare(self, frames, q, in_flight, shift, stop=None):
        self.prepared.append(dict(frames=frames, q=q, in_flight=in_flight, shift=shift))
        return self.ahead

    def stay_cost(self):
        return self.stay


def make(policy=None, latency=0.05, **config):
    gate = CommandGate(LIMITS.lower, LIMITS.upper, LIMITS.velocity, 0.5, CommandGateConfig(command_latency_s=latency))
    agent = Agent(policy or Scripted(), LIMITS, gate, AgentConfig(**config), horizon=5)
    agent.set_goal('goal')
    return agent


def reading(q=(0.0, 0.0), age=0.0):
    return JointReading(np.array(q, float), age)


def test_holds_without_goal_frames_joint_states_or_fresh_inputs():
    agent = make()
    agent.clear_goal()
    assert agent.plan(0.0, reading()) == Hold('no goal')
    agent = make()
    assert agent.plan(0.0, reading()).reason.startswith('waiting')
    agent.observe(IMAGE, 0.0)
    assert agent.plan(0.1, None).reason.startswith('waiting')
    assert agent.plan(0.6, reading()).reason.startswith('stale')            # the frame is 0.6 s old
    assert agent.plan(0.1, reading(age=0.6)).reason.startswith('stale')
    assert isinstance(agent.plan(0.1, reading()), Plan)


def test_a_new_goal_starts_a_new_episode():
    agent = make()
    agent.observe(IMAGE, 0.0)
    agent.set_goal('another goal')
    assert agent.plan(0.05, reading()).reason.startswith('waiting')        # the old episode's frame is gone
    assert agent.policy.goals == ['goal', 'another goal']


def test_the_first_command_starts_on_arrival_and_is_gated():
    agent = make()
    agent.observe(IMAGE, 0.0)
    plan = agent.plan(0.0, reading())
    command = agent.command(plan, 0.2, reading(), camera_age_s=0.2)
    assert isinstance(command, Command)
    # planned for 0.1, 0.2, ... after the frame; sent at 0.2 + 0.05 latency: the first two points are in the past
    np.testing.assert_allclose(command.positions[0], [0.3, 0.0])
    assert np.all(np.diff(command.times) > 0) and command.times[0] > 0
    assert len(command.positions) >= 3                                     # enough to last until the next plan


def test_plans_start_where_the_running_command_will_have_taken_the_arm():
    agent = make(latency=0.05)
    agent.observe(IMAGE, 0.0)
    agent.command(agent.plan(0.0, reading()), 0.2, reading(), camera_age_s=0.2)   # starts at 0.25 from q=0
    agent.observe(IMAGE, 0.3)
    agent.plan(0.3, reading([0.05, 0.0]))
    call = agent.policy.calls[-1]
    # expected effect ~0.3 + 0.2 (last latency) + 0.05: 2-3 periods after the frame at 0.3, on the running command
    assert 2 <= len(call['in_flight']) <= 3
    assert np.all(np.diff(call['in_flight'][:, 0]) > 0) and call['in_flight'][0, 0] > 0.05
    np.testing.assert_allclose(call['q'], [0.05, 0.0])
    assert [f.t for f in call['frames']] == [0.3]     # the frame at 0.0 is three periods back, not one


def test_a_displaced_arm_is_predicted_from_where_it_is():
    """After a reset or a push the arm is not where the commands sent would have taken it: the prediction keeps
    the commands' motion but starts from the measured position."""
    agent = make(latency=0.05)
    agent.observe(IMAGE, 0.0)
    agent.command(agent.plan(0.0, reading()), 0.2, reading(), camera_age_s=0.2)
    agent.observe(IMAGE, 0.3)
    agent.plan(0.3, reading([1.0, -0.5]))                          # moved 1 rad away meanwhile
    in_flight = agent.policy.calls[-1]['in_flight']
    assert np.all(np.abs(in_flight - [1.0, -0.5]) <= 0.35), in_flight      # near it, not near the commands
    assert np.all(np.diff(in_flight[:, 0]) > 0)                    # still with the commands' motion


def test_without_latency_compensation_plans_start_from_the_measured_position():
    agent = make(compensate_latency=False)
    agent.observe(IMAGE, 0.0)
    agent.command(agent.plan(0.0, reading()), 0.2, reading(), camera_age_s=0.2)
    agent.observe(IMAGE, 0.3)
    agent.plan(0.3, reading([0.05, 0.0]))
    assert len(agent.policy.calls[-1]['in_flight']) == 0


def test_a_plan_whose_points_are_all_past_is_not_sent():
    agent = make()
    agent.observe(IMAGE, 0.0)
    plan = agent.plan(0.0, reading())
    assert agent.command(plan, 2.0, reading(), camera_age_s=0.1).reason.startswith('plan came too late')


def test_the_gate_has_the_last_word():
    agent = make()
    agent.observe(IMAGE, 0.0)
    plan = agent.plan(0.0, reading())
    assert agent.command(plan, 0.1, reading(), enabled=False) == Hold('command refused: disabled')
    agent.observe(IMAGE, 0.2)
    plan = agent.plan(0.2, reading())
    assert agent.command(plan, 0.3, reading(), camera_age_s=0.9).reason.startswith('command refused: camera')


def test_at_the_goal_the_agent_stops_the_arm_instead_of_chasing_noise():
    """Deadband: a plan that does not beat staying put by (1 - hold_ratio) becomes a stop where the arm will be, and
    the arm is held there; hysteresis: once stopped, only a plan below release_ratio x staying moves it again."""
    agent = make(Scripted(cost=0.95, stay=1.0), hold_ratio=0.9, release_ratio=0.5)
    agent.observe(IMAGE, 0.0)
    plan = agent.plan(0.0, reading([0.4, 0.2]))
    assert agent.at_goal and np.allclose(plan.targets, [0.4, 0.2]) and np.allclose(plan.actions, 0.0)
    command = agent.command(plan, 0.1, reading([0.4, 0.2]), camera_age_s=0.1)
    np.testing.assert_allclose(command.positions, np.tile([0.4, 0.2], (len(command.positions), 1)))
    agent.policy.cost = 0.6                             # would move a moving arm, but not one stopped at the goal
    agent.observe(IMAGE, 0.2)
    plan = agent.plan(0.2, reading([0.38, 0.2]))            # the arm sags: it is held where it was stopped
    assert agent.at_goal and np.allclose(plan.targets, [0.4, 0.2])
    agent.policy.cost = 0.3                                  # clearly better than staying (release_ratio): move
    agent.observe(IMAGE, 0.3)
    plan = agent.plan(0.3, reading([0.4, 0.2]))
    assert not agent.at_goal and plan.targets[-1][0] > 0.4


class Hover(Scripted):
    """Plans to hold the arm at `target` (cost never beats staying: the agent never stops it)."""

    def __init__(self, target):
        super().__init__(stay=float('inf'))
        self.target = np.asarray(target, float)

    def plan(self, frames, q, in_flight, shift):
        targets = np.tile(self.target, (self.horizon, 1))
        return Plan(np.diff(np.vstack([self.target, targets]), axis=0), targets, self.cost, 0.02)


def settle(agent, arm_error, periods=30):
    """Run the agent for `periods` on an arm that settles `arm_error` short of each command's end; where it ends."""
    q = np.zeros(2)
    for k in range(periods):
        agent.observe(IMAGE, 0.1 * k, q)
        plan = agent.plan(0.1 * k, reading(q))
        command = agent.command(plan, 0.1 * k + 0.02, reading(q), camera_age_s=0.02)
        q = command.positions[-1] - arm_error
    return q


def test_an_arm_that_settles_short_of_its_setpoint_is_brought_to_the_plan():
    """A position servo under gravity, or a trajectory controller restarting from where the arm is, leaves the arm
    short of a still setpoint: integral action on that error makes the commands overshoot it by just as much."""
    sag = np.array([0.05, -0.03])
    np.testing.assert_allclose(settle(make(Hover([0.5, 0.2]), tracking_gain=0.0), sag), [0.45, 0.23])
    agent = make(Hover([0.5, 0.2]))
    np.testing.assert_allclose(settle(agent, sag), [0.5, 0.2], atol=2e-3)
    np.testing.assert_allclose(agent.tracking_offset, sag, atol=2e-3)
    agent = make(Hover([0.5, 0.2]), tracking_limit_rad=0.1)
    np.testing.assert_allclose(settle(agent, [0.3, 0.0]), [0.3, 0.2], atol=2e-3)      # the offset is bounded
    agent.set_goal('another goal')
    assert not agent.tracking_offset.any()


def test_tracking_errors_of_moving_joints_are_not_integrated():
    """Lag behind a moving setpoint is not an offset to compensate (it would overshoot where the motion stops); a
    joint held still meanwhile settles short as it would alone."""
    class Sweep(Hover):                                          # joint 0 moves at 1 rad/s, joint 1 stays
        def plan(self, frames, q, in_flight, shift):
            self.target = self.target + [0.1, 0.0]
            targets = self.target + np.outer(np.arange(self.horizon), [0.1, 0.0])
            return Plan(np.diff(np.vstack([self.target, targets]), axis=0), targets, self.cost, 0.02)

    agent = make(Sweep([0.0, 0.2]), tracking_gain=1.0)
    settle(agent, [0.1, 0.1], periods=10)
    assert agent.tracking_offset[0] == 0.0 and agent.tracking_offset[1] == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize('bad', [dict(execute_steps=0), dict(stale_timeout_s=0.0), dict(hold_ratio=1.0),
                                 dict(hold_ratio=-0.1), dict(release_ratio=0.95), dict(release_ratio=1.0, hold_ratio=0.0),
                                 dict(tracking_gain=1.5), dict(tracking_limit_rad=-0.1)])
def test_invalid_agent_config_is_rejected(bad):
    with pytest.raises(ValueError):
        AgentConfig(**bad)


def test_a_policy_whose_steps_span_several_periods_is_fed_and_timed_in_its_steps():
    """A frameskip-3 world model plans steps of 0.3 s: history frames, command points and the warm start's shift
    all count in those steps, while frames still arrive every period."""
    policy = Scripted()
    policy.periods_per_step = 3
    agent = make(policy, compensate_latency=False)
    assert agent.limits.dt == pytest.approx(0.3) and agent.control_limits.dt == pytest.approx(0.1)
    for i in range(8):                                   # a frame every period, a plan on each
        agent.observe(IMAGE, 0.1 * i)
        plan = agent.plan(0.1 * i, reading())
        command = agent.command(plan, 0.1 * i, reading(), camera_age_s=0.0)
    assert [c['shift'] for c in policy.calls] == [5, 0, 1, 0, 0, 1, 0, 0]   # nearest whole steps since the last
    assert [round(f.t, 3) for f in policy.calls[-1]['frames']] == [0.1, 0.4, 0.7]
    # points one step (0.3 s) apart, the first a step after the frame, less the command latency
    np.testing.assert_allclose(np.diff(command.times), 0.3, atol=1e-9)
    assert command.times[0] == pytest.approx(0.25)


def test_searching_ahead_prepares_the_plan_the_next_frame_asks_for():
    """Right after a command the agent has the policy search ahead from the newest frame, over the commands in
    flight until a plan made on the next frame (one frame interval later, as old as frames have been when planned
    from) takes effect; that plan then starts where the search ahead did, so it continues it unshifted."""
    agent = make(Scripted(ahead=True), latency=0.05)
    for t in (0.0, 0.1):
        agent.observe(IMAGE, t)
        plan = agent.plan(t + 0.03, reading())
        agent.command(plan, t + 0.05, reading(), camera_age_s=0.05)   # each plan took 0.02 s
    assert agent.prepare(0.15, reading())
    ahead = agent.policy.prepared[-1]
    # the next frame at 0.2 is planned from at 0.23; its command takes effect at 0.23 + 0.02 + 0.05 = 0.30
    assert len(ahead['in_flight']) == 2 and ahead['shift'] == 1 and [f.t for f in ahead['frames']] == [0.0, 0.1]
    agent.observe(IMAGE, 0.2)
    agent.plan(0.23, reading())
    assert len(agent.policy.calls[-1]['in_flight']) == 1 and agent.policy.calls[-1]['shift'] == 0

    agent = make(Scripted(ahead=False), latency=0.05)                  # a policy that does not search ahead
    for t in (0.0, 0.1, 0.2):
        agent.observe(IMAGE, t)
        plan = agent.plan(t + 0.03, reading())
        agent.command(plan, t + 0.05, reading(), camera_age_s=0.05)
        assert not agent.prepare(t + 0.05, reading())
    assert agent.policy.calls[-1]['shift'] == 1
