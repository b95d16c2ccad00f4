"""Checkpoints: exact round trip, and a clear CheckpointError for every kind of broken or mismatched file,
including weights whose bytes differ from the sha256 recorded in config.json (checked by every load and CLI)."""
import hashlib
import json

import pytest
import torch

from jepa_agent.cli import main
from jepa_agent.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jepa_agent.model.world_model import ModelConfig, WorldModel
from jepa_agent.resources import model_path

TINY = ModelConfig(image_size=32, encoder_width=8, feature_dim=32, projector_hidden=32, latent_dim=16,
                   predictor_width=32, predictor_depth=1, action_scale=[0.15, 0.15, 0.15])
META = {'joint_names': ['shoulder', 'elbow', 'wrist'], 'lower': [-2.8, -2.5, -2.5], 'upper': [2.8, 2.5, 2.5]}


pytestmark = pytest.mark.usefixtures('torch_one_thread')


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = WorldModel(TINY)
    with torch.no_grad():   # non-trivial BatchNorm statistics must survive the round trip too
        model.train().encode(torch.rand(8, 3, 32, 32))
    save_checkpoint(model.eval(), tmp_path / 'ckpt', META)
    return model, tmp_path / 'ckpt'


def test_save_load_gives_identical_outputs(saved):
    model, path = saved
    loaded, metadata = load_checkpoint(path)
    assert metadata == META
    assert loaded.config == model.config
    assert not loaded.training
    images, actions = torch.randint(0, 256, (4, 2, 3, 32, 32), dtype=torch.uint8), torch.randn(4, 6, 3) * 0.1
    z, z_loaded = model.encode(images), loaded.encode(images)
    torch.testing.assert_close(z_loaded, z, rtol=0, atol=0)
    torch.testing.assert_close(loaded.rollout(z_loaded, actions), model.rollout(z, actions), rtol=0, atol=0)


def test_either_file_path_locates_the_checkpoint(saved):
    _, path = saved
    for name in ('model.safetensors', 'config.json'):
        assert load_checkpoint(path / name)[1] == META


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'nowhere')
    (tmp_path / 'half').mkdir()
    save_checkpoint(WorldModel(TINY), tmp_path / 'half', META)
    (tmp_path / 'half' / 'model.safetensors').unlink()
    with pytest.raises(CheckpointError, match='weights .* do not exist'):
        load_checkpoint(tmp_path / 'half')


def test_truncated_weights(saved):
    _, path = saved
    weights = path / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='corrupt or truncated'):
        load_checkpoint(path)


def test_garbage_weights(saved):
    _, path = saved
    (path / 'model.safetensors').write_bytes(b'\x00' * 100)
    with pytest.raises(CheckpointError, match='corrupt or truncated'):
        load_checkpoint(path)


def _edit_config(path, edit):
    document = json.loads((path / 'config.json').read_text())
    edit(document)
    (path / 'config.json').write_text(json.dumps(document))


def test_wrong_format_version(saved):
    _, path = saved
    _edit_config(path, lambda d: d.update(format_version=99))
    with pytest.raises(CheckpointError, match='format_version 99'):
        load_checkpoint(path)


def test_not_a_checkpoint_config(saved):
    _, path = saved
    (path / 'config.json').write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match='not a jepa_agent world-model checkpoint'):
        load_checkpoint(path)
    (path / 'config.json').write_text('{not json')
    with pytest.raises(CheckpointError, match='not JSON'):
        load_checkpoint(path)


def test_weights_that_do_not_match_the_config(saved):
    _, path = saved
    _edit_config(path, lambda d: d['model'].update(latent_dim=32))
    with pytest.raises(CheckpointError, match='has shape'):
        load_checkpoint(path)
    _edit_config(path, lambda d: d['model'].update(latent_dim=16, predictor_depth=2))
    with pytest.raises(CheckpointError, match='missing'):
        load_checkpoint(path)


def test_invalid_model_config(saved):
    _, path = saved
    _edit_config(path, lambda d: d['model'].update(history=9))
    with pytest.raises(CheckpointError, match='history'):
        load_checkpoint(path)
    _edit_config(path, lambda d: d['model'].update(history=2, colour='red'))
    with pytest.raises(CheckpointError, match='colour'):
        load_checkpoint(path)


def test_nan_weights_are_refused(tmp_path):
    model = WorldModel(TINY)
    with torch.no_grad():
        model.predictor.output[1].weight[0, 0] = float('nan')
    save_checkpoint(model, tmp_path, META)
    with pytest.raises(CheckpointError, match='NaN'):
        load_checkpoint(tmp_path)


# -- weights integrity: config.json records the weights' sha256, and every load checks it -------------------------
def _flip_last_byte(path):
    weights = path / 'model.safetensors'
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF                        # tensor data, not the header: still a valid safetensors file
    weights.write_bytes(bytes(data))


def test_config_records_the_sha256_of_the_weights(saved):
    _, path = saved
    document = json.loads((path / 'config.json').read_text())
    assert document['weights_sha256'] == hashlib.sha256((path / 'model.safetensors').read_bytes()).hexdigest()


def test_flipped_weight_bytes_are_refused(saved):
    _, path = saved
    _flip_last_byte(path)
    from safetensors.torch import load_file
    load_file(str(path / 'model.safetensors'))          # the format alone would not notice
    with pytest.raises(CheckpointError, match='sha256 differs') as info:
        load_checkpoint(path)
    assert '\n' not in str(info.value)


def test_checkpoint_without_checksum_is_refused_until_sealed(saved):
    _, path = saved
    _edit_config(path, lambda d: d.pop('weights_sha256'))
    with pytest.raises(CheckpointError, match='records no weights_sha256.*jepa-agent seal-checkpoint'):
        load_checkpoint(path)
    assert main(['seal-checkpoint', str(path)]) == 0
    assert load_checkpoint(path)[1] == META


def test_shipped_model_matches_its_recorded_checksum():
    document = json.loads((model_path('reach_64px') / 'config.json').read_text())
    weights = (model_path('reach_64px') / 'model.safetensors').read_bytes()
    assert document['weights_sha256'] == hashlib.sha256(weights).hexdigest()
    load_checkpoint(model_path('reach_64px'))


@pytest.mark.parametrize('command', ['eval-model', 'eval-planner', 'train'])
def test_cli_refuses_flipped_weights_with_one_line(saved, tmp_path, capsys, command):
    _, path = saved
    _flip_last_byte(path)
    argv = {'eval-model': ['eval-model', '--checkpoint', str(path), '--data', str(tmp_path / 'no_data')],
            'eval-planner': ['eval-planner', '--checkpoint', str(path), '--out', str(tmp_path / 'eval')],
            'train': ['train', '--resume', '--out', str(path), '--data', str(tmp_path / 'no_data'),
                      '--device', 'cpu']}[command]
    (path / 'train_state.pt').touch()           # a resumable run directory
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'sha256 differs' in err and 'Traceback' not in err, err
