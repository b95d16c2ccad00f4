"""eval-planner: JSON keys and artefacts on a tiny run; the closed loop and its baselines behave as documented."""
import argparse
import json

import numpy as np
import pytest
import torch
import yaml
from test_planner_node import tiny_checkpoint

from jepa_agent.planning import cli
from jepa_agent.planning.cem import CEMConfig
from jepa_agent.planning.cem import Plan
from jepa_agent.planning.closed_loop import (CEILING_LATENCY_S, EpisodeResult, PlanarKinematics, ReplayPolicy,
                                             SimulatorPolicy, make_agent, path_around, run_episode)
from jepa_agent.planning.evaluate import BLOCK_MOVED_M, summarize
from jepa_agent.sim import make_env


def main(argv: list[str]) -> int:
    """`jepa-agent` with only the planning commands (independent of other modules' commands)."""
    parser = argparse.ArgumentParser()
    cli.add_commands(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def small_planner_config(tmp_path) -> str:
    """A cheap CEM for a tiny headless model (config/planner.yaml's state cost needs a state head)."""
    config = tmp_path / 'planner.yaml'
    config.write_text('planner:\n  ros__parameters:\n    cem: {num_samples: 32, num_iterations: 2, num_elites: 4, '
                      'num_retained: 1}\n')
    return str(config)


def test_eval_planner_writes_metrics_for_the_planner_and_both_baselines(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / 'model')
    config = small_planner_config(tmp_path)
    out = tmp_path / 'eval'
    code = main(['eval-planner', '--checkpoint', checkpoint, '--episodes', '2', '--seed', '5000', '--max-steps', '4',
                 '--out', str(out), '--json', str(tmp_path / 'metrics.json'), '--record', '1',
                 '--baseline-episodes', '1', '--config', config])
    assert code == 0
    report = json.loads((tmp_path / 'metrics.json').read_text())
    for summary, episodes in ((report, 2), (report['baselines']['random'], 1),
                              (report['baselines']['simulator_cem'], 1)):
        assert summary['episodes'] == episodes
        assert 0.0 <= summary['success_rate'] <= 1.0
        assert set(summary['plan_latency_ms']) == {'p50', 'p95'}
    assert report['plan_latency_ms']['p50'] > 0 and report['task'] == 'reach'
    assert report['cem']['num_samples'] == 32                    # the --config file was used
    assert (out / 'summary.png').stat().st_size > 1000 and (out / 'episodes.gif').stat().st_size > 1000


def test_eval_planner_without_baselines_reports_only_the_planner(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / 'model')
    code = main(['eval-planner', '--checkpoint', checkpoint, '--episodes', '1', '--seed', '5000', '--max-steps', '2',
                 '--out', str(tmp_path / 'eval'), '--record', '0', '--baseline-episodes', '0',
                 '--config', small_planner_config(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / 'eval' / 'eval_planner.json').read_text())
    assert report['episodes'] == 1 and report['baselines'] == {}
    out = capsys.readouterr().out
    assert 'latent_cem: success' in out and 'random' not in out and 'simulator_cem' not in out


def test_eval_planner_refuses_a_negative_baseline_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['eval-planner', '--episodes', '2', '--baseline-episodes', '-1', '--out', str(tmp_path)])
    assert exit_info.value.code == 2 and 'must be >= 0' in capsys.readouterr().err


def test_eval_planner_refuses_latencies_out_of_range(tmp_path, capsys):
    for flag in ('--command-latency', '--camera-latency', '--plan-latency'):
        assert main(['eval-planner', flag, '-0.1', '--episodes', '1', '--out', str(tmp_path)]) == 2
        assert 'must be in [0, 2]' in capsys.readouterr().err


def test_eval_planner_with_a_charged_plan_latency_repeats_exactly(tmp_path):
    """--plan-latency charges a fixed time per plan instead of the measured one: two runs give the same episodes, and
    a longer charge lets the arm coast further on each command (it ends elsewhere)."""
    checkpoint, config = tiny_checkpoint(tmp_path / 'model'), small_planner_config(tmp_path)

    def run(latency: str, name: str) -> dict:
        assert main(['eval-planner', '--checkpoint', checkpoint, '--episodes', '2', '--seed', '5000', '--max-steps',
                     '12', '--out', str(tmp_path / name), '--record', '0', '--baseline-episodes', '0', '--config',
                     config, '--plan-latency', latency]) == 0
        return json.loads((tmp_path / name / 'eval_planner.json').read_text())

    first, again, slow = run('0.02', 'first'), run('0.02', 'again'), run('0.25', 'slow')
    assert first['plan_latency_charged_s'] == 0.02 and first['plan_latency_ms']['p50'] == pytest.approx(20.0)
    assert first['interpolate_from_desired_state'] and first['commands_over_velocity_limit'] == 0
    assert first['final_distance_m'] == again['final_distance_m']
    assert first['final_distance_m'] != slow['final_distance_m']


def test_eval_planner_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(['eval-planner', '--checkpoint', str(tmp_path / 'none'), '--episodes', '1', '--out',
                 str(tmp_path)]) == 1
    assert 'does not exist' in capsys.readouterr().err


def test_planar_kinematics_match_the_simulator():
    env = make_env()
    fk = PlanarKinematics(env)
    rng = np.random.default_rng(0)
    for _ in range(10):
        q = env.random_joint_positions(rng)
        expected = env.forward_kinematics(q)[:2]                      # the table plane
        np.testing.assert_allclose(fk(torch.as_tensor(q, dtype=torch.float32)).numpy(), expected, atol=1e-5)


def test_a_policy_without_a_plan_holds_the_arm():
    class Refusing:
        needs_images = False
        charged_latency_s = None
        periods_per_step = 1

        def set_goal(self, goal):
            pass

        def plan(self, frames, q, in_flight, shift):
            return None

        def prepare(self, frames, q, in_flight, shift, stop=None):
            return False

        def stay_cost(self):
            return float('inf')

    env = make_env()
    start = env.reset(11).qpos
    result = run_episode(env, make_agent(Refusing(), env, horizon=5), 11, 'reach', max_steps=5)
    assert result.holds == 5 and not result.touched and not result.success and result.latencies_ms == []
    np.testing.assert_allclose(env.joint_positions(), start, atol=0.01)


def test_simulator_ceiling_reaches_and_holds_goals_on_the_hardware_like_arm():
    """Simulated time, plan latency charged, late camera frames, the command gate and a joint_trajectory_controller
    with 50 ms latency: the ceiling still gets there and stays, and the arm never moves faster than 1.1 x its
    limit."""
    env = make_env()
    agent = make_agent(SimulatorPolicy(env, CEMConfig()), env, CEMConfig().horizon)
    results = [run_episode(env, agent, seed, 'reach', max_steps=100) for seed in (7000, 7001)]
    assert all(r.success and r.touched and r.peak_speed_ratio <= 1.1 for r in results), results


def test_simulator_ceiling_holds_goals_on_an_arm_that_gravity_pulls_short_of_its_setpoints():
    """arm4's pitch joints carry their links against gravity, and its position servos, restarted from where the arm
    is by every trajectory, settle up to 0.1 rad short: the agent's integral action on that error gets the ceiling
    (joint-space cost: it does not know this arm's kinematics) there, within 1 cm, and it stays."""
    env = make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='')
    agent = make_agent(SimulatorPolicy(env, CEMConfig()), env, CEMConfig().horizon)
    results = [run_episode(env, agent, seed, 'reach', max_steps=100) for seed in (1001, 1004)]
    assert all(r.success and r.final_distance < 0.01 for r in results), results


def test_simulator_ceiling_holds_goals_whose_pose_lies_inside_the_limit_margin():
    """arm4's shoulder range is 1.7 rad, so some goal poses lie within `cem.limit_margin` (0.2 rad) of a limit
    (seeds 1010 and 1033: 0.09 rad). A margin is for a learned model's poor readings there; with it, the ceiling
    stopped at the edge of the band, 2.4 and 3.8 cm off."""
    env = make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='')
    agent = make_agent(SimulatorPolicy(env, CEMConfig()), env, CEMConfig().horizon)
    for seed in (1010, 1033):
        env.reset(seed, render=False)
        goal = env.sample_goal(seed)
        assert np.min(np.minimum(goal.qpos - env.lower, env.upper - goal.qpos)) < CEMConfig().limit_margin
        result = run_episode(env, agent, seed, 'reach', max_steps=100)
        assert result.success, (seed, result)


class Scripted:
    """Plans that go to the goal pose and, once `leave` and there, away again; each plan 'takes' `latency_s`."""

    needs_images = False
    charged_latency_s = None
    periods_per_step = 1

    def __init__(self, env, latency_s=0.0, leave=False):
        self.env, self.latency_s, self.leave = env, latency_s, leave

    def set_goal(self, goal):
        self.goal = goal

    def plan(self, frames, q, in_flight, shift):
        q = in_flight[-1] if len(in_flight) else q
        target = self.goal.qpos if not (self.leave and self.env.success(self.goal)) else q + [0.4, 0.0, 0.0]
        step = np.clip(target - q, -self.env.max_delta, self.env.max_delta)
        targets = np.array([np.clip(q + step * k, self.env.lower, self.env.upper) for k in range(1, 6)])
        return Plan(targets - np.vstack([q, targets[:-1]]), targets, 0.0, self.latency_s)

    def prepare(self, frames, q, in_flight, shift, stop=None):
        return False

    def stay_cost(self):
        return float('inf')


def test_plan_latency_is_charged_in_simulated_time():
    """A plan that takes 0.35 s lets 3-4 control periods pass: a 40-period episode holds about 11 plans, not 40,
    and every one is sent (the agent plans for when it will take effect, so none comes too late)."""
    env = make_env()
    result = run_episode(env, make_agent(Scripted(env, latency_s=0.35), env, 5), 7002, 'reach', max_steps=40)
    assert 9 <= len(result.latencies_ms) <= 12 and result.holds == 0, result
    assert result.latencies_ms[0] == pytest.approx(350.0)


def test_a_goal_touched_and_then_left_is_not_held():
    env = make_env()
    left = run_episode(env, make_agent(Scripted(env, leave=True), env, 5), 7003, 'reach', max_steps=100)
    stayed = run_episode(env, make_agent(Scripted(env), env, 5), 7003, 'reach', max_steps=100)
    assert left.touched and not left.success
    assert stayed.touched and stayed.success


def test_eval_planner_drives_another_arm_from_its_params_file(tmp_path):
    """config/examples/arm4.yaml's sim_arm section sets the scene: four joints, its camera, no block."""
    from jepa_agent.model.checkpoint import save_checkpoint
    from jepa_agent.model.world_model import ModelConfig, WorldModel
    from jepa_agent.resources import config_path
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(image_size=32, action_dim=4, action_scale=[0.15] * 4, encoder_width=8,
                                   feature_dim=32, projector_hidden=32, latent_dim=8, predictor_width=32,
                                   predictor_depth=1))
    env = make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint='')
    checkpoint = save_checkpoint(model.eval(), tmp_path / 'model', {**vars(env.robot), 'rate_hz': 10.0,
                                                                     'image_height': 32, 'image_width': 32})
    params = yaml.safe_load(config_path('examples/arm4.yaml').read_text())      # with a cheap search
    params['/**/planner']['ros__parameters']['cem'] = {'num_samples': 16, 'num_iterations': 1, 'num_elites': 4,
                                                      'num_retained': 1, 'state_cost_weight': 0.0}
    config = tmp_path / 'arm4.yaml'
    config.write_text(yaml.safe_dump(params))
    assert main(['eval-planner', '--checkpoint', str(checkpoint), '--episodes', '1', '--seed', '5000',
                 '--max-steps', '3', '--out', str(tmp_path / 'eval'), '--record', '0', '--config', str(config)]) == 0
    report = json.loads((tmp_path / 'eval' / 'eval_planner.json').read_text())
    assert report['episodes'] == 1 and report['cem']['num_samples'] == 16
    assert set(report['baselines']) == {'random', 'simulator_cem'}


def test_push_episodes_use_seeds_with_a_scripted_push_and_last_twice_its_length(tmp_path):
    from jepa_agent.planning.evaluate import goal_seeds
    env = make_env(task='push')
    seeds = goal_seeds(env, 1000, 3, 'push')
    assert len(seeds) == 3 and seeds == sorted(seeds) and seeds[0] >= 1000
    for seed in range(1000, seeds[-1] + 1):                  # the seeds passed over have no scripted push
        env.reset(seed, render=False)
        if seed not in seeds:
            with pytest.raises(ValueError, match='no scripted push'):
                env.sample_goal(seed)
    assert goal_seeds(env, 7, 2, 'reach') == [7, 8]
    with pytest.raises(ValueError, match='push needs a block'):              # not a search that never ends
        goal_seeds(make_env(model_file='arm4.xml', camera='oblique', ee_site='tool', block_joint=''), 8000, 1, 'push')
    env.reset(seeds[0], render=False)
    demonstration = env.sample_goal(seeds[0]).demonstration
    agent = make_agent(SimulatorPolicy(env, CEMConfig(num_samples=8, num_iterations=1, num_elites=2,
                                                      num_retained=1, horizon=2)), env, 2)
    result = run_episode(env, agent, seeds[0], 'push', max_steps=150)
    assert result.steps == 2 * len(demonstration) or result.touched    # the budget when the block is not moved there
    assert result.success == (result.final_distance <= env.config.push_tolerance)     # push: scored at the end
    assert result.latencies_ms and set(result.latencies_ms) == {CEILING_LATENCY_S * 1e3}   # not its physics time
    assert run_episode(env, agent, seeds[0], 'push', max_steps=5).steps in range(0, 6)


def test_the_path_around_the_block_goes_straight_when_clear_and_around_when_not():
    centre = np.zeros(2)
    assert path_around(np.array([-0.1, 0.1]), np.array([0.1, 0.1]), centre, 0.05) == pytest.approx(0.2)
    tangents, arc = 2 * np.sqrt(0.1 ** 2 - 0.05 ** 2), 0.05 * (np.pi - 2 * np.arccos(0.5))
    assert path_around(np.array([-0.1, 0.0]), np.array([0.1, 0.0]), centre, 0.05) == pytest.approx(tangents + arc)


def test_replaying_a_push_open_loop_moves_the_block_toward_its_goal():
    """The replay baseline commands the scripted push's targets on the episode's clock; through the hardware-like
    arm it lags the push but still moves the block most of the way."""
    from jepa_agent.planning.evaluate import goal_seeds
    env = make_env(task='push')
    seed = goal_seeds(env, 1000, 1, 'push')[0]
    env.reset(seed, render=False)
    start = env.block_pos()
    goal = env.sample_goal(seed)
    result = run_episode(env, make_agent(ReplayPolicy(env, 5), env, 5), seed, 'push', max_steps=150)
    assert result.holds == 0 and result.peak_speed_ratio <= 1.1
    assert result.final_distance < 0.5 * np.linalg.norm(goal.block_pos - start), result.final_distance
    assert result.block_moved == pytest.approx(np.linalg.norm(env.block_pos() - start))
    assert result.block_moved > BLOCK_MOVED_M


def test_summaries_count_the_episodes_that_moved_the_block_and_their_successes():
    results = [EpisodeResult(True, 10, 0.01, block_moved=0.0), EpisodeResult(True, 10, 0.01, block_moved=0.3),
               EpisodeResult(False, 10, 0.05, block_moved=0.1), EpisodeResult(False, 10, 0.05, block_moved=0.001)]
    summary = summarize(results)
    assert summary['block_moved_rate'] == 0.5 and summary['success_rate_block_moved'] == 0.5
    assert summarize(results[:1])['success_rate_block_moved'] is None


def test_eval_planner_push_reports_success_at_the_end_held_and_the_replay_baseline(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path / 'model')
    assert main(['eval-planner', '--checkpoint', checkpoint, '--task', 'push', '--episodes', '1', '--seed', '1000',
                 '--max-steps', '3', '--out', str(tmp_path / 'eval'), '--record', '0', '--baseline-episodes', '1',
                 '--config', small_planner_config(tmp_path)]) == 0
    report = json.loads((tmp_path / 'eval' / 'eval_planner.json').read_text())
    assert report['task'] == 'push' and set(report['baselines']) == {'random', 'replay', 'simulator_cem'}
    assert all(0.0 <= s['held_rate'] <= s['touched_rate'] <= 1.0 for s in [report, *report['baselines'].values()])
    assert 'replay: success' in capsys.readouterr().out


def test_a_search_ahead_is_charged_before_the_next_plan():
    """A policy that searches ahead after each command (cem.anticipate) is busy meanwhile, as the node's planning
    thread is: with plans and searches ahead charged 0.15 s each, a plan is made every 0.3 s, not every 0.15 s."""
    class SearchingAhead(Scripted):
        charged_latency_s = 0.15

        def prepare(self, frames, q, in_flight, shift, stop=None):
            return self.ahead

    counts = {}
    for ahead in (False, True):
        env = make_env()
        policy = SearchingAhead(env)
        policy.ahead = ahead
        counts[ahead] = len(run_episode(env, make_agent(policy, env, 5), 7002, 'reach', max_steps=40).latencies_ms)
    assert 25 <= counts[False] <= 27 and 13 <= counts[True] <= 14, counts
