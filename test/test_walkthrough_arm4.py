"""docs/plug_in_your_arm.md section 7, command by command, on the second example arm: collect-sim → train →
eval-planner → sim_arm + planner nodes → demo, all configured by config/examples/arm4.yaml and nothing else (the
training recipe is shrunk to seconds; the recording line through the nodes is test_integration_recording.py's)."""
from __future__ import annotations

import json

import pytest
from conftest import wait_for
from PIL import Image
from ros_helpers import Inbox
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.cli import main
from jepa_agent.resources import config_path

pytestmark = pytest.mark.slow
NAMES = ['turret_yaw', 'shoulder_pitch', 'elbow_pitch', 'wrist_pitch']
TINY_RECIPE = """train:
  ros__parameters:
    steps: 4
    batch_size: 8
    warmup_steps: 1
    predictor_refit_steps: 2
    predictor_refit_batch_size: 8
    device: cpu
    model: {latent_dim: 8, encoder_width: 8, feature_dim: 32, projector_hidden: 32, predictor_width: 32}
    loss: {rollout_steps: 2, sigreg_projections: 16, state_weight: 1.0}
"""


def test_the_second_example_arm_is_recorded_trained_and_driven_by_its_params_file(start_node, ros_probe, tmp_path,
                                                                                     capsys):
    params = config_path('examples/arm4.yaml')
    data, run, recipe = tmp_path / 'data' / 'arm4', tmp_path / 'runs' / 'arm4', tmp_path / 'tiny.yaml'
    recipe.write_text(TINY_RECIPE)
    assert main(['data', 'collect-sim', '--config', str(params), '--out', str(data), '--episodes', '2',
                 '--steps', '24']) == 0
    assert main(['train', '--data', str(data), '--out', str(run), '--config', str(recipe), '--no-progress']) == 0
    assert main(['eval-planner', '--config', str(params), '--checkpoint', str(run), '--episodes', '1', '--seed',
                 '1000', '--max-steps', '5', '--baseline-episodes', '0', '--record', '0',
                 '--out', str(tmp_path / 'eval')]) == 0
    report = json.loads((tmp_path / 'eval' / 'eval_planner.json').read_text())
    assert report['episodes'] == 1 and report['checkpoint'] == str(run)
    capsys.readouterr()

    # the planner node on the sim arm, both under /arm4, the checkpoint the one just trained
    ns = {'__ns': '/arm4'}
    commands = Inbox(ros_probe, JointTrajectory, '/arm4/arm_controller/joint_trajectory')
    sim = start_node('sim_arm', params_file=params, remaps=ns)
    planner = start_node('planner', params_file=params, remaps=ns, params={'checkpoint': str(run)})
    client = ros_probe.create_client(Trigger, '/arm4/planner/set_goal_from_current_view')
    assert client.wait_for_service(timeout_sec=60), planner.output()

    def goal_set() -> bool:                 # the current view is the goal once the planner has seen a frame
        future = client.call_async(Trigger.Request())
        return wait_for(future.done, 10) and future.result().success

    assert wait_for(goal_set, timeout=60), planner.output() + sim.output()
    assert wait_for(lambda: len(commands) > 0, timeout=60), planner.output()
    assert commands.latest().joint_names == NAMES
    assert planner.alive() and sim.alive()
    assert planner.stop() == 0 and sim.stop() == 0

    # the demo: sim_arm + planner scored on a goal of arm4's scene (its 80 px camera)
    out = tmp_path / 'demo'
    assert main(['demo', '--config', str(params), '--checkpoint', str(run), '--goals', '1', '--goal-timeout', '3',
                 '--record', '1', '--out', str(out)]) == 0
    assert json.loads((out / 'demo.json').read_text())['episodes'] == 1
    with Image.open(out / 'episodes.gif') as gif:                  # current view | goal | planned end pose
        assert gif.size == (3 * 80 * 3, 80 * 3)
