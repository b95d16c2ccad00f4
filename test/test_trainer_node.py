"""trainer node as a real process: fed by the live sim on a repeated motion, its surprise falls and it announces
loadable checkpoints that passed its held-out check, which a running planner swaps in (the explore_and_learn loop);
bad messages are skipped while it keeps running; a bad checkpoint stops start-up cleanly.

The surprise test waits on events (training steps reported in /diagnostics, surprise messages, announcements), never
on wall time, so a loaded machine makes it slower but not flaky."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from conftest import wait_for
from diagnostic_msgs.msg import DiagnosticArray
from ros_helpers import Inbox
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32, String
from trajectory_msgs.msg import JointTrajectory

from jepa_agent.model.checkpoint import load_checkpoint, save_checkpoint
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.ros.conversions import make_trajectory, rgb_to_image
from jepa_agent.ros.qos import LATCHED

pytestmark = pytest.mark.slow
NAMES = ['shoulder', 'elbow', 'wrist']
SIZE = 32


def tiny_checkpoint(directory) -> str:
    """An untrained small world model with the sim arm's metadata (training it is what the node does)."""
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(image_size=SIZE, action_dim=3, action_scale=[0.15] * 3, latent_dim=16,
                                   encoder_width=8, feature_dim=32, projector_hidden=64, predictor_width=64,
                                   predictor_depth=2))
    meta = {'joint_names': NAMES, 'lower': [-2.8, -2.5, -2.5], 'upper': [2.8, 2.5, 2.5],
            'velocity_limit': [1.5] * 3, 'rate_hz': 10.0, 'image_height': SIZE, 'image_width': SIZE}
    return str(save_checkpoint(model, directory, meta))


def loop_target(k: int) -> list[float]:
    """Waypoint k of a 40-step loop (4 s at 10 Hz) that the arm repeats over and over."""
    phase = 2 * math.pi * (k % 40) / 40
    return [0.8 * math.sin(phase), 0.8 * math.cos(phase), 0.5 * math.sin(2 * phase)]


#: surprise values compared from the first training step on and after TRAINED_STEPS online steps
SAMPLES = 10
TRAINED_STEPS = 200


def trainer_statuses(diagnostics: Inbox) -> list[tuple[float, dict]]:
    """(arrival time, {key: value}) of every trainer status received so far."""
    return [(t, {kv.key: kv.value for kv in status.values})
            for t, msg in list(diagnostics._items) for status in msg.status if status.name.startswith('trainer')]


def steps_reached(diagnostics: Inbox, steps: int) -> float | None:
    """Arrival time of the first trainer status reporting at least `steps` online training steps, or None."""
    return next((t for t, values in trainer_statuses(diagnostics) if int(values['train_steps']) >= steps), None)


def trained_surprise(surprise: Inbox, diagnostics: Inbox) -> list[float]:
    """Surprise values from the first one computed after a training step on ([] until there is one).

    Values that arrived before the last status reporting no training step are the untrained model's: huge by
    construction (its latents hardly vary and surprise is divided by their variance). The first later value below
    1 % of their median is the first computed after a step: the diagnostics' 1-s period does not blur the start."""
    statuses, values = trainer_statuses(diagnostics), [(t, m.data) for t, m in list(surprise._items)]
    started = next((i for i, (_, status) in enumerate(statuses) if int(status['train_steps']) > 0), None)
    untrained = [v for t, v in values if started and t < statuses[started - 1][0]]
    if len(untrained) < 3:
        return []
    threshold = float(np.median(untrained)) / 100
    first = next((i for i, (t, v) in enumerate(values) if t >= statuses[started - 1][0] and v < threshold), None)
    return [] if first is None else [v for _, v in values[first:]]


def surprise_after(surprise: Inbox, since: float | None) -> list[float]:
    """Surprise values that arrived after `since` (none while it is None)."""
    return [] if since is None else [m.data for t, m in list(surprise._items) if t > since]


def test_surprise_falls_on_a_repeated_motion_and_the_planner_reloads_announced_checkpoints(
        start_node, ros_probe, tmp_path):
    surprise = Inbox(ros_probe, Float32, '/jepa_agent/surprise')
    diagnostics = Inbox(ros_probe, DiagnosticArray, '/diagnostics')
    updates = Inbox(ros_probe, String, '/jepa_agent/model_updated', LATCHED)
    command = ros_probe.create_publisher(JointTrajectory, '/arm_controller/joint_trajectory', 10)
    step = iter(range(10**9))
    ros_probe.create_timer(0.1, lambda: command.publish(make_trajectory(NAMES, [loop_target(next(step))], 0.1)))
    checkpoint = tiny_checkpoint(tmp_path / 'start')
    start_node('sim_arm', params={'image_size': SIZE, 'seed': 1})
    trainer = start_node('trainer', params={
        'checkpoint': checkpoint, 'checkpoint_dir': str(tmp_path / 'online'), 'checkpoint_every_s': 4.0,
        'min_frames': 40, 'duty_cycle': 0.8, 'learning_rate': 1e-3,   # 4 s of untrained surprise first
        'holdout_every': 3, 'holdout_stretch': 20, 'holdout_horizon': 6})   # held-out windows after ~5 s
    planner = start_node('planner', params={'checkpoint': checkpoint, 'enabled': False})   # as in explore mode

    # from the first training step to TRAINED_STEPS steps (counted by the trainer: a loaded machine takes longer
    # and the test waits for it; the surprise of the untrained model is excluded, it is huge by construction)
    assert wait_for(lambda: len(trained_surprise(surprise, diagnostics)) >= SAMPLES, timeout=120), trainer.output()
    early = trained_surprise(surprise, diagnostics)[:SAMPLES]
    assert wait_for(lambda: len(surprise_after(surprise, steps_reached(diagnostics, TRAINED_STEPS))) >= 2 * SAMPLES,
                    timeout=300), trainer.output()
    late = surprise_after(surprise, steps_reached(diagnostics, TRAINED_STEPS))[:2 * SAMPLES]
    assert np.median(late) < 0.5 * np.median(early), (early, late)

    # a trained checkpoint beats the untrained start on the held-out windows, so one is announced
    assert wait_for(lambda: len(updates) > 0, timeout=120), trainer.output()
    assert 'held-out 6-step error' in trainer.output()
    assert wait_for(lambda: any(int(v['checkpoints_announced']) >= 1 and v['holdout_error'] != 'None'
                                for _, v in trainer_statuses(diagnostics)), timeout=30), trainer.output()

    model, metadata = load_checkpoint(updates.latest().data)      # the announced checkpoint is complete
    assert metadata['joint_names'] == NAMES and metadata['online_steps'] > 0
    assert model.config.image_size == SIZE
    announced = [m.data for m in updates.messages()]
    assert wait_for(lambda: any(f'now planning with the model from {path}' in planner.output()
                                for path in announced), timeout=60), planner.output()
    assert trainer.alive() and planner.alive()
    assert trainer.stop() == 0, trainer.output()
    assert planner.stop() == 0, planner.output()


def test_bad_messages_are_skipped_and_the_node_keeps_running(start_node, ros_probe, tmp_path):
    trainer = start_node('trainer', params={'checkpoint': tiny_checkpoint(tmp_path / 'start')})
    images = ros_probe.create_publisher(Image, '/camera/image_raw', 10)
    joints = ros_probe.create_publisher(JointState, '/joint_states', 10)
    commands = ros_probe.create_publisher(JointTrajectory, '/arm_controller/joint_trajectory', 10)
    assert wait_for(lambda: images.get_subscription_count() and joints.get_subscription_count()
                    and commands.get_subscription_count(), timeout=30), trainer.output()
    bad_image = rgb_to_image(np.zeros((SIZE, SIZE, 3), np.uint8))
    bad_image.encoding = 'yuv422'
    for _ in range(5):
        images.publish(bad_image)
        joints.publish(JointState(name=NAMES, position=[0.0, float('nan'), 0.0]))
        commands.publish(make_trajectory(['shoulder', 'elbow', 'gripper'], [[0.0, 0.0, 0.0]], 0.1))
        time.sleep(0.1)
    assert wait_for(lambda: all(kind in trainer.output() for kind in
                                ('rejected image', 'rejected joint_state', 'rejected trajectory')), timeout=10), \
        trainer.output()
    assert 'unsupported image encoding' in trainer.output() and 'non-finite' in trainer.output()
    assert trainer.alive()
    assert trainer.stop() == 0, trainer.output()


def test_unloadable_checkpoint_stops_start_up_with_a_clear_error(start_node, tmp_path):
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'config.json').write_text('{not json')
    trainer = start_node('trainer', params={'checkpoint': str(tmp_path / 'broken')})
    assert wait_for(lambda: not trainer.alive(), timeout=30)
    output = trainer.output()
    assert trainer.stop() == 2, output
    assert 'checkpoint' in output and 'not JSON' in output, output


def test_config_file_sets_every_trainer_parameter():
    from dataclasses import fields

    from jepa_agent.config import load, load_section
    from jepa_agent.nodes.trainer import TrainerConfig
    from jepa_agent.resources import config_path
    path = config_path('trainer.yaml')
    assert set(load_section(path, 'trainer')) == {f.name for f in fields(TrainerConfig)}
    assert load(TrainerConfig, path, 'trainer') == TrainerConfig(checkpoint_dir='runs/online')


def test_unusable_seed_dataset_stops_start_up_with_a_clear_error(start_node, tmp_path):
    trainer = start_node('trainer', params={'checkpoint': tiny_checkpoint(tmp_path / 'start'),
                                            'seed_dataset': str(tmp_path / 'no_such_dataset')})
    assert wait_for(lambda: not trainer.alive(), timeout=30)
    output = trainer.output()
    assert trainer.stop() == 2, output
    assert 'no_such_dataset' in output and 'Traceback' not in output, output
