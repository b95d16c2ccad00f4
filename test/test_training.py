"""Offline training: loss goes down, NaN batches stop or are skipped, `jepa-agent train` end to end, resume."""
import json

import pytest
import torch
import yaml

from jepa_agent.cli import main
from jepa_agent.data.collect import collect_sim, env_dataset_meta
from jepa_agent.data.dataset import collate_windows
from jepa_agent.data.episode_writer import open_dataset
from jepa_agent.model.checkpoint import load_checkpoint
from jepa_agent.sim.arm_env import ArmEnv, ArmEnvConfig
from jepa_agent.training.losses import JEPAObjective, LossConfig, NonFiniteBatchError, prediction_errors
from jepa_agent.training.refit import encode_dataset
from jepa_agent.training.trainer import Trainer, TrainingBudgetWarning, load_configs

TINY = {'batch_size': 8, 'log_every': 5, 'checkpoint_every': 1000, 'threads': 1, 'warmup_steps': 5,
        'learning_rate': 0.003,
        'model': {'encoder_width': 8, 'feature_dim': 32, 'projector_hidden': 32, 'latent_dim': 16,
                  'predictor_width': 32, 'predictor_depth': 1},
        'loss': {'rollout_steps': 2, 'sigreg_projections': 32, 'state_weight': 1.0}}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'babble'
    collect_sim(root, episodes=3, steps=24, seed=0, env=ArmEnv(ArmEnvConfig(image_size=32)))
    return root


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / 'train.yaml'
    path.write_text(yaml.safe_dump({'train': {'ros__parameters': {**TINY, 'steps': 6}}}))
    return path


def make_trainer(dataset, out, resume: bool = False, **overrides) -> Trainer:
    config, model_config, loss_config = load_configs(None, {**TINY, **overrides})
    return Trainer(dataset, out, config, model_config, loss_config, resume=resume, progress=False)


def test_training_reduces_the_loss(dataset, tmp_path):
    torch.manual_seed(0)
    trainer = make_trainer(dataset, tmp_path / 'run', steps=60)
    batches = [next(iter(torch.utils.data.DataLoader(trainer.dataset, batch_size=8, shuffle=True)))
               for _ in range(4)]
    losses = [float(trainer.train_step(batches[i % 4])['total']) for i in range(60)]
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8
    assert trainer.step == 60


def test_state_probe_needs_joint_positions(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path / 'run')
    batch = next(iter(torch.utils.data.DataLoader(trainer.dataset, batch_size=4)))
    objective = JEPAObjective(trainer.model, LossConfig(rollout_steps=2, state_weight=1.0))
    with pytest.raises(ValueError, match='qpos'):
        objective(batch['images'], batch['actions'], 0)
    loss, terms = objective(batch['images'], batch['actions'], 0, batch['qpos'])
    assert terms['state'] > 0 and torch.isfinite(loss)
    plain = JEPAObjective(trainer.model, LossConfig(rollout_steps=2))
    assert plain(batch['images'], batch['actions'], 0)[1]['state'] == 0


def test_state_head_is_part_of_the_trained_model(dataset, tmp_path):
    """state_weight > 0 gives the model a state head, saved with the checkpoint (planners read joints through it)."""
    trainer = make_trainer(dataset, tmp_path / 'run', steps=2)
    trainer.run()
    model, _ = load_checkpoint(tmp_path / 'run')
    assert model.config.state_head and model.decode_state(torch.zeros(5, 16)).shape == (5, 3)
    headless = make_trainer(dataset, tmp_path / 'headless', loss={**TINY['loss'], 'state_weight': 0.0}).model
    assert headless.state_head is None
    with pytest.raises(ValueError, match='state head'):
        headless.decode_state(torch.zeros(1, 16))
    with pytest.raises(ValueError, match='state_head: true'):
        JEPAObjective(headless, LossConfig(state_weight=1.0))


def rollout_error_on(model, dataset) -> float:
    latents, actions, starts, _ = encode_dataset(model, dataset)
    frames = starts[:, None] + torch.arange(dataset.window)
    with torch.no_grad():
        return float(prediction_errors(model.eval(), latents[frames], latents[frames][:, model.config.history:],
                                       actions[frames[:, :-1]])[1].mean())


def test_predictor_refit_trains_only_the_predictor_and_runs_once(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path / 'run', steps=4, predictor_refit_steps=150)
    trainer.run()
    assert trainer.refit_at_step == 4 and trainer.step == 4

    end_to_end = make_trainer(dataset, tmp_path / 'plain', steps=4)   # same seed: same end-to-end steps
    end_to_end.run()
    refitted, metadata = load_checkpoint(tmp_path / 'run')
    assert metadata['training']['predictor_refit_at_step'] == 4
    for name, value in refitted.state_dict().items():   # only the predictor differs from the plain run
        same = torch.allclose(value.float(), end_to_end.model.state_dict()[name].float())
        assert same != name.startswith('predictor.'), name
    assert rollout_error_on(refitted, end_to_end.dataset) < 0.8 * rollout_error_on(
        end_to_end.model, end_to_end.dataset)

    whole, chunked = encode_dataset(refitted, end_to_end.dataset), encode_dataset(refitted, end_to_end.dataset, chunk=5)
    torch.testing.assert_close(chunked[0], whole[0])
    assert torch.equal(chunked[1], whole[1]) and torch.equal(chunked[2], whole[2]) and torch.equal(chunked[3], whole[3])
    assert len(whole[2]) == len(end_to_end.dataset)   # every stride-1 window of the dataset

    # resuming a finished run refits nothing again (the steps are done and the predictor was refitted at step 4)
    resumed = make_trainer(dataset, tmp_path / 'run', resume=True, steps=4, predictor_refit_steps=150)
    weights = {k: v.clone() for k, v in resumed.model.state_dict().items()}
    resumed.run()
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, weights[name])


def test_state_readout_is_fitted_after_the_refit_and_changes_no_other_weight(dataset, tmp_path):
    """The MLP readout reads the training frames' joints better than the linear head, and the rest of the model is
    exactly the run without it (it is fitted last, from its own seed)."""
    plain = make_trainer(dataset, tmp_path / 'plain', steps=30, predictor_refit_steps=20)
    plain.run()
    trainer = make_trainer(dataset, tmp_path / 'run', steps=30, predictor_refit_steps=20, state_readout_hidden=32,
                           state_readout_steps=400)
    trainer.run()
    model, _ = load_checkpoint(tmp_path / 'run')
    assert model.config.state_readout_hidden == 32
    for name, value in plain.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)
    latents, _, _, qpos = encode_dataset(model, trainer.dataset)
    with torch.no_grad():
        readout = float((model.decode_state(latents) - qpos).square().mean())
        linear = float((model.state_head(latents) - qpos).square().mean())
    assert readout < 0.5 * linear

    # more end-to-end steps on resume: the old readout is dropped, and fitted again at the end
    resumed = make_trainer(dataset, tmp_path / 'run', resume=True, steps=32, predictor_refit_steps=20)
    assert resumed.model.state_readout is None
    resumed.run()
    assert load_checkpoint(tmp_path / 'run')[0].state_readout is None          # this resume asked for none
    # a finished run without a readout gets one from a resume that asks for it, and nothing else changes
    before = load_checkpoint(tmp_path / 'run')[0].state_dict()
    make_trainer(dataset, tmp_path / 'run', resume=True, steps=32, predictor_refit_steps=20,
                 state_readout_hidden=32, state_readout_steps=50).run()
    fitted = load_checkpoint(tmp_path / 'run')[0]
    assert fitted.state_readout is not None
    for name, value in before.items():
        torch.testing.assert_close(fitted.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match='fitted after training'):
        make_trainer(dataset, tmp_path / 'bad', model={**TINY['model'], 'state_readout_hidden': 8})


def test_a_frameskip_model_trains_and_refits_on_steps_of_several_periods(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path / 'run', steps=3, predictor_refit_steps=5,
                           model={**TINY['model'], 'frameskip': 3})
    trainer.run()
    model, metadata = load_checkpoint(tmp_path / 'run')
    assert model.config.frameskip == 3 and metadata['training']['predictor_refit_at_step'] == 3
    # a step's action spans three periods: the largest joint change per step scales with it
    assert model.config.action_scale == pytest.approx([3 * v / 10.0 for v in metadata['velocity_limit']])
    assert trainer.dataset.span == (trainer.dataset.window - 1) * 3 + 1
    latents, actions, starts, _ = encode_dataset(model, trainer.dataset)
    lengths = trainer.dataset.episode_lengths
    assert len(latents) == lengths.sum() and len(starts) == len(trainer.dataset)
    first = trainer.dataset.frames(0, 0, int(lengths[0]))['qpos']
    torch.testing.assert_close(actions[:lengths[0] - 3], first[3:] - first[:-3])   # the motion over 3 periods


def test_a_time_budget_too_short_for_the_refit_says_it_was_skipped(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path / 'run', steps=50, predictor_refit_steps=10, state_readout_hidden=8)
    with pytest.warns(TrainingBudgetWarning, match='step 1 of 50, with no room left for the predictor refit .* and '
                                                   'the state readout: SKIPPED'):
        trainer.run(max_minutes=1e-9)                    # the budget is spent after the first step
    assert trainer.step == 1 and trainer.refit_at_step is None and trainer.model.state_readout is None


def test_a_time_budget_holds_the_refit_and_ends_the_schedule_at_the_steps_that_fit(dataset, tmp_path, capsys):
    """Steps that do not fit the budget: the refit is timed on a batch, its share kept, and the learning-rate
    schedule ends at the last end-to-end step that fits (timed on the steps so far)."""
    trainer = make_trainer(dataset, tmp_path / 'run', steps=100_000, predictor_refit_steps=10, state_readout_hidden=8)
    batch = next(iter(torch.utils.data.DataLoader(trainer.dataset, batch_size=8, collate_fn=collate_windows)))
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer._plan_budget(batch, step_s=0.01, remaining_s=60.0)
    assert 0 < trainer.refit_reserve_s < 60 and trainer.refit_fits
    assert trainer.schedule_steps == int((60.0 - trainer.refit_reserve_s) / 0.01)
    assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())   # timed on a copy
    trainer._plan_budget(batch, step_s=0.01, remaining_s=0.5 * trainer.refit_reserve_s)     # the budget runs out
    assert trainer.schedule_steps == 0
    short = make_trainer(dataset, tmp_path / 'short', steps=100_000, predictor_refit_steps=10)
    short._plan_budget(batch, step_s=0.01, remaining_s=1e-3)                # no room for the refit from the start
    assert not short.refit_fits and short.schedule_steps == 0

    trainer = make_trainer(dataset, tmp_path / 'budget', steps=100_000, predictor_refit_steps=10,
                           state_readout_hidden=8, state_readout_steps=100)
    trainer.run(max_minutes=0.1)
    assert 20 <= trainer.step < trainer.schedule_steps + 5 < 100_000      # planned every log_every (5) steps
    assert trainer.refit_at_step == trainer.step and trainer.model.state_readout is not None
    assert 'end-to-end training stopped at step' in capsys.readouterr().out
    assert load_checkpoint(tmp_path / 'budget')[1]['training']['schedule_steps'] == trainer.schedule_steps


def test_nan_batch_stops_training_unless_skipping_is_enabled(dataset, tmp_path):
    trainer = make_trainer(dataset, tmp_path / 'a')
    batch = next(iter(torch.utils.data.DataLoader(trainer.dataset, batch_size=4)))
    batch['actions'][1, 0, 2] = float('nan')
    with pytest.raises(NonFiniteBatchError, match='NaN'):
        trainer.train_step(batch)

    trainer = make_trainer(dataset, tmp_path / 'b', skip_nonfinite=True)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.warns(RuntimeWarning, match='skipping'):
        assert trainer.train_step(batch) is None
    assert trainer.step == 0 and trainer.skipped == 1
    for name, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_train_cli_end_to_end_with_resume(dataset, config_file, tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', '--data', str(dataset), '--out', str(out), '--config', str(config_file),
                 '--no-progress']) == 0
    model, metadata = load_checkpoint(out)
    assert metadata['joint_names'] == ['shoulder', 'elbow', 'wrist']
    assert metadata['training']['steps'] == 6
    assert model.config.image_size == 32 and model.config.action_dim == 3
    assert model.config.action_scale == pytest.approx([1.5 / 10] * 3, rel=1e-3)
    assert list((out / 'tensorboard').iterdir())

    assert main(['train', '--data', str(dataset), '--out', str(out), '--config', str(config_file)]) == 1
    assert 'already holds a checkpoint' in capsys.readouterr().err

    assert main(['train', '--data', str(dataset), '--out', str(out), '--config', str(config_file), '--resume',
                 '--steps', '10', '--no-progress']) == 0
    assert json.loads((out / 'config.json').read_text())['metadata']['training']['steps'] == 10


def test_empty_dataset_is_a_clear_error(tmp_path, config_file, capsys):
    open_dataset(tmp_path / 'empty', env_dataset_meta(ArmEnv(ArmEnvConfig(image_size=32)), 'test'))
    assert main(['train', '--data', str(tmp_path / 'empty'), '--out', str(tmp_path / 'run'),
                 '--config', str(config_file)]) == 1
    assert 'no episode with at least' in capsys.readouterr().err
    assert not (tmp_path / 'run' / 'config.json').exists()


def test_bad_config_is_rejected(tmp_path, dataset, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({'train': {'ros__parameters': {'steps': 5, 'model': {'latent_dim': 1}}}}))
    assert main(['train', '--data', str(dataset), '--out', str(tmp_path / 'run'), '--config', str(bad)]) == 2
    assert 'latent_dim' in capsys.readouterr().err
    with pytest.raises(ValueError, match='regularizer'):
        load_configs(None, {'loss': {'regularizer': 'magic'}})


PAGE_FAULTS_OF_BIG_TENSORS = '''
import resource, sys, torch
from jepa_agent.training.trainer import keep_freed_memory
kept = sys.argv[1] == 'kept' and keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    torch.ones(16 * 2 ** 20)                 # 64 MB, freed at once, as a training step's batch and activations
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def test_a_training_process_keeps_freed_memory_instead_of_faulting_in_fresh_pages_every_step():
    """Each tensor over malloc's mmap threshold used to be mapped afresh: 16k page faults per 64 MB (kernel time
    that outweighed the arithmetic on a small CPU). With the trainer's runtime setting, the pages are reused."""
    import subprocess
    import sys
    runs = {mode: subprocess.run([sys.executable, '-c', PAGE_FAULTS_OF_BIG_TENSORS, mode], capture_output=True,
                                 text=True, check=True).stdout.split() for mode in ('default', 'kept')}
    assert runs['kept'][0] == 'True', runs
    assert int(runs['kept'][1]) * 10 < int(runs['default'][1]), runs
