"""CEM planner and latent MPC: optimum of a toy problem, warm start, elite retention, hard bounds, NaN → no plan."""
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from jepa_agent.config import ConfigError, build
from jepa_agent.model.images import to_model_image
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.planning.agent import Frame
from jepa_agent.planning.cem import CEMConfig, CEMPlanner, colored_noise_filter
from jepa_agent.planning.constraints import JointLimits, project
from jepa_agent.planning.mpc import LatentMPC
from jepa_agent.planning.objectives import LatentGoalCost, fast_rollout

def search(**overrides) -> CEMConfig:
    """The unit tests' search: a short horizon on latent distance only, rolled out by eager torch (the runtimes have
    tests of their own), whatever the shipped defaults (config/planner.yaml's) are."""
    return CEMConfig(**{'num_samples': 300, 'horizon': 5, 'num_iterations': 6, 'state_cost_weight': 0.0,
                        'population_decay': 1.0, 'elite_reuse': 0, 'runtime': 'torch', **overrides})


LIMITS = JointLimits(lower=[-2.8, -2.5, -2.5], upper=[2.8, 2.5, 2.5], velocity=[1.5, 1.5, 1.5], dt=0.1)


def reach(goal):
    """Toy objective: distance of the final implied joint target to `goal`."""
    goal = torch.as_tensor(goal, dtype=torch.float32)
    return lambda actions, targets: (targets[:, -1] - goal).norm(dim=-1)


def test_cem_finds_the_optimum_of_a_toy_problem():
    goal = np.array([0.4, -0.3, 0.2])       # reachable within H=5 steps of 0.15 rad
    plan = CEMPlanner(search(num_iterations=8), LIMITS).plan(reach(goal), np.zeros(3))
    np.testing.assert_allclose(plan.targets[-1], goal, atol=0.02)
    np.testing.assert_allclose(np.cumsum(plan.actions, 0), plan.targets, atol=1e-6)
    assert plan.cost < 0.03


def test_far_goal_moves_at_the_velocity_limit_towards_it():
    plan = CEMPlanner(search(), LIMITS).plan(reach([2.0, -2.0, 0.0]), np.zeros(3))
    np.testing.assert_allclose(plan.targets[-1, :2], [0.75, -0.75], atol=0.03)   # 5 steps × 0.15 rad


def test_warm_start_is_the_previous_plan_shifted():
    planner = CEMPlanner(search(), LIMITS)
    assert torch.equal(planner.warm_start(1), torch.zeros(5, 3))
    plan = planner.plan(reach([0.4, -0.3, 0.2]), np.zeros(3))
    previous = torch.as_tensor(plan.actions, dtype=torch.float32)
    np.testing.assert_allclose(planner.warm_start(1)[:4], previous[1:])
    assert torch.equal(planner.warm_start(1)[4], torch.zeros(3))
    np.testing.assert_allclose(planner.warm_start(2)[:3], previous[2:])
    assert torch.equal(planner.warm_start(5), torch.zeros(5, 3))
    planner.reset()
    assert torch.equal(planner.warm_start(1), torch.zeros(5, 3))


def test_elites_are_retained_into_the_next_iteration():
    batches = []

    def spy(actions, targets):
        batches.append(actions.clone())
        return reach([0.3, 0.3, 0.3])(actions, targets)

    config = search(num_samples=50, num_iterations=3, num_elites=10, num_retained=4)
    CEMPlanner(config, LIMITS).plan(spy, np.zeros(3))
    for before, after in zip(batches, batches[1:]):
        costs = reach([0.3, 0.3, 0.3])(before, project(before, torch.zeros(3), *limit_tensors(config))[1])
        best = before[costs.argsort()[:4]]
        assert torch.allclose(after[1:5], best)     # slot 0 holds the refit mean


def test_population_shrinks_with_iterations_but_never_below_the_elites():
    sizes = []

    def spy(actions, targets):
        sizes.append(actions.shape[0])
        return reach([0.3, 0.3, 0.3])(actions, targets)

    CEMPlanner(search(num_samples=100, num_iterations=5, num_elites=20, population_decay=2.0), LIMITS).plan(
        spy, np.zeros(3))
    assert sizes == [100, 50, 25, 21, 21]


def test_elites_of_the_previous_plan_start_the_next_search_shifted():
    batches = []

    def spy(actions, targets):
        batches.append(actions.clone())
        return reach([0.3, 0.3, 0.3])(actions, targets)

    planner = CEMPlanner(search(num_samples=50, num_iterations=2, num_elites=10, num_retained=4, elite_reuse=4), LIMITS)
    planner.plan(spy, np.zeros(3))
    last = batches[-1]
    kept = last[reach([0.3, 0.3, 0.3])(last, project(last, torch.zeros(3), *limit_tensors(search()))[1]).argsort()[:4]]
    planner.plan(spy, np.zeros(3), shift=2)
    first = batches[2]
    assert torch.allclose(first[1:5, :3], kept[:, 2:])       # slot 0: the previous plan, shifted
    assert torch.equal(first[1:5, 3:], torch.zeros(4, 2, 3))  # padded with zero actions
    planner.reset()
    planner.plan(spy, np.zeros(3))
    assert not batches[4][0].any()                             # forgotten: the zero warm start alone is kept
    assert not torch.allclose(batches[4][1:5, :3], kept[:, 2:])


@pytest.mark.parametrize('horizon', [1, 4, 5, 15])
def test_colored_noise_has_unit_variance_and_is_smoother_for_higher_beta(horizon):
    assert torch.equal(colored_noise_filter(horizon, 0.0), torch.eye(horizon))
    roughness = []
    for beta in (0.0, 1.0, 2.5):
        f = colored_noise_filter(horizon, beta)
        np.testing.assert_allclose(torch.diag(f @ f.T), 1.0, atol=1e-4)
        noise = f @ torch.randn(20000, horizon, 3, generator=torch.Generator().manual_seed(0))
        np.testing.assert_allclose(noise.std((0, 2)), 1.0, atol=0.03)
        roughness.append(float(noise.diff(dim=1).pow(2).mean()) if horizon > 1 else 0.0)
    assert horizon == 1 or roughness[0] > roughness[1] > roughness[2]


def test_mppi_weights_pull_the_refit_toward_the_best_elites():
    planner = CEMPlanner(search(num_elites=3, num_retained=1, mppi_temperature=0.1), LIMITS)
    elites = torch.stack([torch.full((5, 3), v) for v in (0.0, 1.0, 2.0)])
    mean, _ = planner._refit(elites, torch.tensor([0.0, 1.0, 2.0]))
    assert float(mean.max()) < 0.01                      # the best elite dominates at a low temperature
    cem = CEMPlanner(search(num_elites=3, num_retained=1), LIMITS)
    cem_mean, cem_std = cem._refit(elites, torch.tensor([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(cem_mean, 1.0)           # CEM: the plain mean and std
    np.testing.assert_allclose(cem_std, elites.std(0, unbiased=False), rtol=1e-5)


@pytest.mark.parametrize('options', [dict(population_decay=1.5, elite_reuse=5), dict(noise_beta=2.0),
                                     dict(mppi_temperature=0.5)])
def test_search_options_still_find_the_optimum(options):
    goal = np.array([0.4, -0.3, 0.2])
    planner = CEMPlanner(search(num_iterations=8, **options), LIMITS)
    for _ in range(2):                                    # the second plan starts from the first one's elites
        plan = planner.plan(reach(goal), np.zeros(3), shift=0)
    np.testing.assert_allclose(plan.targets[-1], goal, atol=0.02)


def limit_tensors(config):
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    return as_t(LIMITS.lower), as_t(LIMITS.upper), as_t(LIMITS.max_step(config.trust_region))


def test_plans_never_violate_position_velocity_or_trust_region_bounds():
    rng = np.random.default_rng(0)
    for trial in range(40):
        lower = rng.uniform(-3, 0, 3)
        limits = JointLimits(lower, lower + rng.uniform(0.05, 4, 3), rng.uniform(0.1, 3, 3), rng.uniform(0.02, 0.5))
        config = search(num_samples=40, num_iterations=2, num_elites=8, num_retained=3,
                           horizon=int(rng.integers(1, 8)), trust_region=float(rng.uniform(0.01, 1)),
                           init_std=float(rng.uniform(0.1, 10)), seed=trial)
        max_step = limits.max_step(config.trust_region)
        # measured positions inside, or less than one step outside, the limits
        q0 = rng.uniform(limits.lower - 0.9 * max_step, limits.upper + 0.9 * max_step)
        goal = torch.as_tensor(rng.uniform(-10, 10, 3), dtype=torch.float32)
        plan = CEMPlanner(config, limits).plan(lambda a, t: (t - goal).norm(dim=-1).sum(1), q0)
        assert plan is not None
        assert limits.contains(plan.targets, q0, config.trust_region), (trial, q0, plan.targets)


def test_projection_bounds_arbitrary_actions():
    actions = torch.randn(200, 6, 3) * 100
    actions[0, 0] = float('inf')
    lower, upper, max_step = limit_tensors(search())
    feasible, targets = project(actions, torch.tensor([2.75, -2.45, 0.0]), lower, upper, max_step)
    for row in targets.double().numpy():
        assert LIMITS.contains(row, np.array([2.75, -2.45, 0.0]), 0.15)
    assert torch.isfinite(feasible).all()


@pytest.mark.parametrize('q0', [[np.nan, 0, 0], [0, np.inf, 0], [3.5, 0, 0]])
def test_bad_measured_positions_give_no_plan(q0):
    assert CEMPlanner(search(), LIMITS).plan(reach([0, 0, 0]), np.array(q0)) is None


def test_non_finite_cost_gives_no_plan():
    def poisoned(actions, targets):
        cost = reach([0.1, 0.1, 0.1])(actions, targets)
        cost[7] = float('nan')
        return cost

    assert CEMPlanner(search(), LIMITS).plan(poisoned, np.zeros(3)) is None


@pytest.mark.parametrize('bad', [dict(num_samples=0), dict(num_elites=400), dict(num_retained=40),
                                 dict(init_std=0.0), dict(min_std=2.0), dict(step_weighting='max'),
                                 dict(trust_region=0.0), dict(smoothness=-1.0),
                                 dict(population_decay=0.5), dict(num_elites=300, elite_reuse=300),
                                 dict(noise_beta=-1.0), dict(mppi_temperature=-1.0), dict(runtime='tensorrt')])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(ConfigError):
        build(CEMConfig, bad)


class ToyWorldModel(torch.nn.Module):
    """Latent = mean colour of the image (3 joints ↔ 3 channels); an action shifts the latent by itself (plus
    `bias`: a predictor that is consistently wrong)."""

    def __init__(self, poison: bool = False, state_head: torch.nn.Linear | None = None, bias=(0.0, 0.0, 0.0),
                 frameskip: int = 1):
        super().__init__()
        self.config = SimpleNamespace(latent_dim=3, history=2, action_dim=3, image_size=8, frameskip=frameskip)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.poison = poison
        self.state_head = state_head
        self.bias = torch.tensor(bias)

    def encode(self, images):
        return images.float().mean((2, 3)) * self.scale

    def predict(self, z_hist, action):
        return z_hist[:, -1] + action + self.bias

    def rollout(self, z_hist, actions):
        z = z_hist[:, -1:] + torch.cumsum(actions + self.bias, 1)
        return z * float('nan') if self.poison else z

    @property
    def reads_state(self):
        return self.state_head is not None

    def decode_state(self, z):
        return self.state_head(z)


def colour(rgb, size=16):
    return np.broadcast_to(np.asarray(rgb, np.float32), (size, size, 3)).copy()


NO_FLIGHT = np.zeros((0, 3))
FRAME_TIMES = itertools.count()


def plan_from(mpc, image, q, in_flight=NO_FLIGHT):
    """One plan from a new frame `image` (frames are known by their time) at joint positions `q`."""
    return mpc.plan([Frame(image, 0.1 * next(FRAME_TIMES))], q, in_flight)


def test_latent_mpc_moves_toward_the_goal_view():
    mpc = LatentMPC(ToyWorldModel(), LIMITS, search())
    assert plan_from(mpc, colour([0.5] * 3), np.zeros(3)) is None                # no goal yet
    mpc.set_goal((colour([0.8, 0.2, 0.5], size=32) * 255).astype(np.uint8))    # resized + uint8
    q = np.zeros(3)
    for _ in range(10):     # receding horizon: the toy camera sees colour 0.5 + q
        q = plan_from(mpc, colour(0.5 + q), q).targets[0]
    np.testing.assert_allclose(q, [0.3, -0.3, 0.0], atol=0.02)


def test_a_frameskip_model_plans_steps_of_several_periods():
    """A step of a frameskip-3 model spans three control periods: its plan may move each joint three periods'
    largest step per step (velocity limit and trust region alike), and "near the goal" still counts periods."""
    mpc = LatentMPC(ToyWorldModel(frameskip=3), LIMITS, search(num_iterations=8))
    assert mpc.periods_per_step == 3
    mpc.set_goal(colour([0.9, 0.5, 0.5]))
    plan = plan_from(mpc, colour([0.1, 0.5, 0.5]), np.zeros(3))                   # 0.8 away on joint 0
    assert LIMITS.per_step(3).contains(plan.targets, np.zeros(3), 3 * search().trust_region)
    assert plan.targets[0, 0] > 1.5 * LIMITS.max_step(search().trust_region)[0]      # more than one period's step
    np.testing.assert_allclose(plan.targets[-1], [0.8, 0.0, 0.0], atol=0.05)
    assert mpc.step_distance == pytest.approx(0.15, abs=1e-6)                     # one period's largest step


def test_latent_mpc_plans_from_the_end_of_the_actions_in_flight():
    """The arm will have moved by the in-flight targets when the plan takes effect: the plan starts there, and the
    model is rolled over them first (the goal is 0.3 away, 0.2 of it already on its way)."""
    mpc = LatentMPC(ToyWorldModel(), LIMITS, search(num_iterations=8))
    mpc.set_goal(colour([0.8, 0.5, 0.5]))
    in_flight = np.array([[0.1, 0.0, 0.0], [0.2, 0.0, 0.0]])
    plan = plan_from(mpc, colour([0.5] * 3), np.zeros(3), in_flight)
    assert LIMITS.contains(plan.targets, in_flight[-1], search().trust_region)
    np.testing.assert_allclose(plan.targets[-1], [0.3, 0.0, 0.0], atol=0.03)


def test_offset_free_mpc_settles_on_the_goal_view_despite_a_biased_predictor():
    """A predictor that always adds 0.05 to channel 0 leads a plain MPC 0.05 short of the goal; comparing what the
    camera sees with what was predicted for it removes that offset."""
    def settle(with_joint_positions: bool) -> np.ndarray:
        mpc = LatentMPC(ToyWorldModel(bias=(0.05, 0.0, 0.0)), LIMITS, search(num_iterations=8))
        mpc.set_goal(colour([0.8, 0.5, 0.5]))
        q, frames = np.zeros(3), []
        for k in range(25):
            frames = (frames + [Frame(colour(0.5 + q), k * 0.1, q.copy() if with_joint_positions else None)])[-3:]
            q = mpc.plan(frames, q, NO_FLIGHT).targets[0]
        return q

    np.testing.assert_allclose(settle(False), [0.25, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(settle(True), [0.3, 0.0, 0.0], atol=0.02)


def test_staying_only_has_a_cost_near_the_goal():
    """The toy model moves its latent 0.15 per largest step, so near = within 4 x 0.15 of the goal view: only there
    is the cost of staying finite (the agent may stop the arm)."""
    mpc = LatentMPC(ToyWorldModel(), LIMITS, search(num_iterations=2, near_goal_steps=4.0))
    mpc.set_goal(colour([0.8, 0.5, 0.5]))
    assert mpc.step_distance == pytest.approx(0.15, abs=1e-6)
    plan_from(mpc, colour([0.5] * 3), np.zeros(3))                            # 0.3 away: near
    assert mpc.near_goal and 0 < mpc.stay_cost() < float('inf')
    mpc.set_goal(colour([1.0, 1.0, 0.5]))
    plan_from(mpc, colour([0.2, 0.2, 0.5]), np.zeros(3))                      # 1.13 away: far
    assert not mpc.near_goal and mpc.stay_cost() == float('inf')


def test_staying_is_scored_in_the_searchs_first_batch():
    """The cost of staying put comes from the search's first batch: one rollout per iteration, none extra, and
    the same cost as scoring staying on its own."""
    model = ToyWorldModel()
    calls = []
    rollout = model.rollout
    model.rollout = lambda z_hist, actions: calls.append(actions.shape[0]) or rollout(z_hist, actions)
    mpc = LatentMPC(model, LIMITS, search(num_samples=40, num_iterations=3, num_elites=10))
    mpc.set_goal(colour([0.7, 0.5, 0.5]))
    plan_from(mpc, colour([0.5] * 3), np.array([0.1, 0.0, 0.0]))
    assert calls == [41, 40, 40]
    goal = mpc.goal_latent - mpc._offset if mpc._offset is not None else mpc.goal_latent
    stay = torch.tensor([[[0.1, 0.0, 0.0]] * 5])
    alone = LatentGoalCost(rollout, torch.full((2, 3), 0.5), goal, mpc.weights)(torch.zeros_like(stay), stay)
    assert mpc.stay_cost() == pytest.approx(float(alone[0]), abs=1e-6)


def test_state_readout_adds_the_joint_space_distance():
    readout = torch.nn.Linear(3, 3)
    with torch.no_grad():
        readout.weight.copy_(torch.diag(torch.tensor([2.0, 0.0, 0.0])))
        readout.bias.fill_(5.0)                                     # a bias cancels in a difference
    z_hist, goal = torch.zeros(2, 3), torch.tensor([1.0, 1.0, 0.0])
    actions = torch.tensor([[[3.0, 1.0, 0.0]]])                    # one step to z = (3, 1, 0)
    rollout = ToyWorldModel().rollout
    plain = LatentGoalCost(rollout, z_hist, goal, torch.ones(1))(actions, actions)
    joint = LatentGoalCost(rollout, z_hist, goal, torch.ones(1), readout, state_weight=0.5)(actions, actions)
    torch.testing.assert_close(plain, torch.tensor([2.0]))
    torch.testing.assert_close(joint, torch.tensor([2.0 + 0.5 * 4.0]))
    squared = LatentGoalCost(rollout, z_hist, goal, torch.ones(1), torch.square, state_weight=0.5)   # nonlinear
    torch.testing.assert_close(squared(actions, actions), torch.tensor([2.0 + 0.5 * 8.0]))   # (9,1,0) vs (1,1,0)


def test_limit_margin_cost_keeps_plans_off_the_joint_limits():
    """A goal exactly at a limit, the goal pose unknown to the planner: without the margin cost the plan goes there,
    with it the plan stays out of the band."""
    q0, goal = np.array([2.0, 0.0, 0.0]), np.array([2.8, 0.0, 0.0])
    plain = CEMPlanner(search(num_iterations=8, limit_margin=0.0), LIMITS).plan(reach(goal), q0)
    margin = CEMPlanner(search(num_iterations=8, limit_margin=0.2, limit_cost=10.0), LIMITS).plan(reach(goal), q0)
    assert plain.targets[-1][0] > 2.75 and margin.targets[-1][0] < 2.7


def test_the_limit_margin_lets_plans_reach_a_goal_pose_inside_it():
    """Only depth into the band beyond the goal's own costs, so the goal of the test above is reached once the
    planner knows it; and the latent planner knows it when its model reads joint positions out of the goal view."""
    q0, goal = np.array([2.0, 0.0, 0.0]), np.array([2.8, 0.0, 0.0])
    planner = CEMPlanner(search(num_iterations=8, limit_margin=0.2, limit_cost=10.0), LIMITS)
    planner.set_goal_positions(goal)
    assert planner.plan(reach(goal), q0).targets[-1][0] > 2.75
    limits = JointLimits(lower=[-0.4] * 3, upper=[0.4] * 3, velocity=[1.5] * 3, dt=0.1)
    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.fill_(-0.5)                                   # the toy camera sees colour 0.5 + q
    ends = {}
    for name, model in (('blind', ToyWorldModel()), ('reads joints', ToyWorldModel(state_head=head))):
        mpc = LatentMPC(model, limits, search(limit_margin=0.2, limit_cost=10.0))
        mpc.set_goal(colour([0.85, 0.5, 0.5]))                   # joint 0 at 0.35: 0.15 rad into the band
        q = np.zeros(3)
        for _ in range(10):
            q = plan_from(mpc, colour(0.5 + q), q).targets[0]
        ends[name] = q[0]
    assert ends['reads joints'] == pytest.approx(0.35, abs=0.02) and ends['blind'] < 0.3, ends


def test_state_cost_needs_a_state_head():
    with pytest.warns(RuntimeWarning, match='no state head'):
        mpc = LatentMPC(ToyWorldModel(), LIMITS, search(state_cost_weight=1.0))
    assert mpc.state_cost_weight == 0.0
    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
    mpc = LatentMPC(ToyWorldModel(state_head=head), LIMITS, search(state_cost_weight=1.0))
    mpc.set_goal(colour([0.8, 0.2, 0.5]))
    q = np.zeros(3)
    for _ in range(10):
        q = plan_from(mpc, colour(0.5 + q), q).targets[0]
    np.testing.assert_allclose(q, [0.3, -0.3, 0.0], atol=0.02)
    with pytest.raises(ValueError, match='state_cost_weight'):
        search(state_cost_weight=-1.0)


def test_latent_mpc_gives_no_plan_from_non_finite_inputs_or_model_output():
    mpc = LatentMPC(ToyWorldModel(), LIMITS, search(num_iterations=2))
    mpc.set_goal(colour([0.8, 0.2, 0.5]))
    assert plan_from(mpc, colour([0.5] * 3), np.array([0.0, np.nan, 0.0])) is None
    assert plan_from(mpc, colour([0.5] * 3), np.zeros(3), np.array([[0.0, np.inf, 0.0]])) is None
    image = colour([0.5] * 3)
    image[3, 3, 1] = np.nan
    assert plan_from(mpc, image, np.zeros(3)) is None
    poisoned = LatentMPC(ToyWorldModel(poison=True), LIMITS, search(num_iterations=2))
    poisoned.set_goal(colour([0.8, 0.2, 0.5]))
    assert plan_from(poisoned, colour([0.5] * 3), np.zeros(3)) is None


def test_model_images_are_resized_and_mono_expanded():
    x = to_model_image(np.full((40, 30), 255, np.uint8), 8)
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.ones(3, 8, 8))
    with pytest.raises(ValueError):
        to_model_image(np.zeros((8, 8, 4), np.uint8), 8)


@pytest.mark.parametrize('runtime', ['compile', 'onnxruntime'])
def test_a_rollout_runtime_plans_like_eager_torch_on_a_cpu(runtime):
    """cem.runtime on a CPU (inductor: CI has a C++ compiler; ONNX Runtime): prepared when the policy is built, so
    the plans compile nothing more, and they are the eager ones."""
    from torch._dynamo.utils import counters
    plans = []
    for chosen in ('torch', runtime):
        mpc = LatentMPC(ToyWorldModel(), LIMITS, search(num_samples=64, num_elites=16, num_retained=4,
                                                        population_decay=2.0, elite_reuse=4, runtime=chosen))
        assert (mpc.rollout != mpc.model.rollout) == (chosen != 'torch')
        graphs = counters['stats']['unique_graphs']
        mpc.set_goal(colour([0.8, 0.2, 0.5]))
        plans.append([plan_from(mpc, colour([0.5] * 3), np.zeros(3)).targets for _ in range(3)])
        assert counters['stats']['unique_graphs'] == graphs
    np.testing.assert_allclose(plans[1], plans[0], atol=1e-5)


@pytest.mark.parametrize('options', [{}, {'predictor': 'transformer'}, {'history': 1}, {'history': 3}])
def test_the_onnxruntime_rollout_is_the_world_models_for_any_batch(options):
    """The exported rollout of a real world model gives torch's latents for batch sizes it was not exported with, and
    refuses a horizon it was not exported for (the trace unrolls the steps)."""
    model = WorldModel(ModelConfig(image_size=32, encoder_width=8, feature_dim=32, projector_hidden=32, latent_dim=16,
                                   predictor_width=32, predictor_depth=2, **options)).eval()
    rollout = fast_rollout(model, 'onnxruntime', 5, torch.device('cpu'))
    for n in (1, 37):
        z_hist, actions = torch.randn(n, model.config.history, 16), torch.randn(n, 5, 3) * 0.1
        with torch.no_grad():
            torch.testing.assert_close(rollout(z_hist, actions), model.rollout(z_hist, actions),
                                       atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match='exported for 5 steps'):
        rollout(z_hist, actions[:, :4])


def test_a_search_made_ahead_is_continued_on_the_fresh_frame_for_frame_iterations_only():
    """`anticipate`: the search runs before its frame; on the frame, only `frame_iterations` more iterations run,
    from where it stopped (its best sequences and its narrowed distribution), not from scratch."""
    batches = []

    def spy(actions, targets):
        batches.append(actions.clone())
        return reach([0.3, 0.3, 0.3])(actions, targets)

    config = search(num_samples=50, num_iterations=5, num_elites=10, num_retained=4, elite_reuse=4,
                    anticipate=True, frame_iterations=2)
    planner = CEMPlanner(config, LIMITS)
    planner.plan(spy, np.zeros(3), ahead=True)
    assert len(batches) == 5
    last = batches[-1]
    best = last[reach([0.3, 0.3, 0.3])(last, project(last, torch.zeros(3), *limit_tensors(config))[1]).argsort()[:4]]
    planner.plan(spy, np.zeros(3), shift=0)
    assert len(batches) == 7                                          # two iterations on the fresh frame
    assert torch.allclose(batches[5][1:5], best)                      # the search's best sequences, re-scored
    init_std = config.init_std * LIMITS.max_step(config.trust_region).min()
    assert batches[5][5:].std(0).mean() < 0.6 * init_std              # drawn from its narrowed distribution
    planner.plan(spy, np.zeros(3), shift=1)
    assert len(batches) == 12                                         # nothing was prepared: a whole search
    assert batches[7][5:].std(0).mean() > 0.8 * init_std


def test_a_search_ahead_stops_between_iterations_when_its_frame_arrives():
    sizes = []

    def spy(actions, targets):
        sizes.append(actions.shape[0])
        return reach([0.3, 0.3, 0.3])(actions, targets)

    planner = CEMPlanner(search(num_iterations=4, anticipate=True), LIMITS)
    assert planner.plan(spy, np.zeros(3), ahead=True, stop=lambda: True) is not None
    assert len(sizes) == 1                                            # the first iteration always runs
    planner.plan(spy, np.zeros(3), shift=0)
    assert len(sizes) == 2                                            # and is continued like a whole one


def test_latent_mpc_searching_ahead_still_reaches_the_goal_and_observes_each_frame_once():
    """With `anticipate` the MPC searches after each plan, from the newest frame over the actions in flight, and the
    next plan continues that search; the search ahead leaves the offset (what the newest frame taught) alone."""
    assert not LatentMPC(ToyWorldModel(), LIMITS, search()).prepare([Frame(colour([0.5] * 3), 0.0)], np.zeros(3),
                                                                    NO_FLIGHT)       # not asked to search ahead
    for bias in (0.0, 0.05):
        mpc = LatentMPC(ToyWorldModel(bias=(bias, 0.0, 0.0)), LIMITS, search(num_iterations=8, anticipate=True))
        mpc.set_goal(colour([0.8, 0.5, 0.5]))
        q, frames = np.zeros(3), []
        for k in range(25):
            frames = (frames + [Frame(colour(0.5 + q), k * 0.1, q.copy())])[-3:]
            plan = mpc.plan(frames, q, NO_FLIGHT, shift=0)
            offset = None if mpc._offset is None else mpc._offset.clone()
            assert mpc.prepare(frames, q, plan.targets[:1], shift=1)
            assert offset is None or torch.equal(mpc._offset, offset)
            q = plan.targets[0]
        if not bias:
            np.testing.assert_allclose(q, [0.3, 0.0, 0.0], atol=0.02)
