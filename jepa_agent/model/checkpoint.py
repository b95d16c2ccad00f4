"""Self-describing checkpoints: `model.safetensors` (weights) + `config.json` (format version, model config, metadata).

    save_checkpoint(model, 'runs/a', {'joint_names': [...], 'lower': [...], ...})
    model, metadata = load_checkpoint('runs/a')          # the directory, or either file in it

Loading rebuilds the architecture from config.json, never from the caller's guess, and refuses anything that does
not match exactly (missing/extra/mis-shaped tensors, another format version, a truncated file) with CheckpointError.
config.json records the sha256 of the weights file (`weights_sha256`); every load checks it, so a flipped byte that
still parses as safetensors is refused instead of silently degrading the model. An older checkpoint without it is
refused too, until `jepa-agent seal-checkpoint DIR` records the checksum of weights you trust.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from jepa_agent.config import build
from jepa_agent.model.world_model import ModelConfig, WorldModel

FORMAT = 'jepa_agent.world_model'
FORMAT_VERSION = 1
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
CHECKSUM_KEY = 'weights_sha256'


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, from another format version, or does not match its config."""


def save_checkpoint(model: WorldModel, directory: str | Path, metadata: dict) -> Path:
    """Write weights and config (with the weights' sha256) into `directory`, each atomically (temp file + rename),
    so readers never see half a file."""
    from safetensors.torch import save as to_bytes
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to('cpu').contiguous() for k, v in model.state_dict().items()}
    weights = to_bytes(state)
    document = {'format': FORMAT, 'format_version': FORMAT_VERSION, CHECKSUM_KEY: sha256(weights),
                'model': asdict(model.config), 'metadata': metadata}
    _atomic_write(directory / WEIGHTS_FILE, lambda tmp: tmp.write_bytes(weights))
    _write_config(directory / CONFIG_FILE, document)
    return directory


def seal_checkpoint(path: str | Path) -> str:
    """Record the sha256 of the weights as they are now in config.json (for a checkpoint saved before checksums
    existed, or weights replaced on purpose); returns it. Only for weights you trust: this is what makes them load."""
    directory = _directory(path)
    _, _, document = _read_config(directory)     # a valid config.json of this format
    weights_file = directory / WEIGHTS_FILE
    try:
        digest = sha256(weights_file.read_bytes())
    except OSError as exc:
        raise CheckpointError(f'cannot read checkpoint weights {weights_file}: {exc}') from exc
    document = {'format': document['format'], 'format_version': document['format_version'], CHECKSUM_KEY: digest,
                **{k: v for k, v in document.items() if k not in ('format', 'format_version', CHECKSUM_KEY)}}
    _write_config(directory / CONFIG_FILE, document)
    return digest


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`, as recorded under `weights_sha256` in config.json."""
    return hashlib.sha256(data).hexdigest()


def _write_config(path: Path, document: dict) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(document, indent=2) + '\n'))


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + '.tmp')
    write(tmp)
    os.replace(tmp, path)


def read_checkpoint_config(path: str | Path) -> tuple[ModelConfig, dict]:
    """Model config and metadata from a checkpoint's config.json, validated, without touching the weights."""
    config, metadata, _ = _read_config(path)
    return config, metadata


def _read_config(path: str | Path) -> tuple[ModelConfig, dict, dict]:
    config_file = _directory(path) / CONFIG_FILE
    try:
        document = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f'checkpoint config {config_file} does not exist') from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'checkpoint config {config_file} is unreadable or not JSON: {exc}') from exc
    if not isinstance(document, dict) or document.get('format') != FORMAT:
        raise CheckpointError(f'{config_file} is not a jepa_agent world-model checkpoint (format {FORMAT!r})')
    version = document.get('format_version')
    if version != FORMAT_VERSION:
        raise CheckpointError(f'{config_file} has format_version {version!r}; this jepa_agent reads version '
                              f'{FORMAT_VERSION}')
    try:
        config = build(ModelConfig, document.get('model'), section='model')
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f'{config_file}: invalid model config: {exc}') from exc
    metadata = document.get('metadata') or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f'{config_file}: metadata must be a JSON object')
    return config, metadata, document


def _expected_checksum(document: dict, config_file: Path) -> str:
    digest = document.get(CHECKSUM_KEY)
    if not digest:
        raise CheckpointError(f'{config_file} records no {CHECKSUM_KEY}, so its weights cannot be verified (saved '
                              f'before checksums existed?); if you trust them, run `jepa-agent seal-checkpoint '
                              f'{config_file.parent}`, else re-save the checkpoint')
    if not isinstance(digest, str) or len(digest) != 64:
        raise CheckpointError(f'{config_file}: {CHECKSUM_KEY} must be a 64-digit hex sha256, got {digest!r}')
    return digest.lower()


def load_checkpoint(path: str | Path, device: str | torch.device = 'cpu') -> tuple[WorldModel, dict]:
    """(model in eval mode on `device`, metadata) from a checkpoint directory or a file inside it.

    The weights are read once, checked against the sha256 in config.json, and parsed from those same bytes."""
    from safetensors import SafetensorError
    from safetensors.torch import load
    config, metadata, document = _read_config(path)
    weights_file = _directory(path) / WEIGHTS_FILE
    if not weights_file.is_file():
        raise CheckpointError(f'checkpoint weights {weights_file} do not exist')
    expected = _expected_checksum(document, _directory(path) / CONFIG_FILE)
    try:
        weights = weights_file.read_bytes()
    except OSError as exc:
        raise CheckpointError(f'cannot read checkpoint weights {weights_file}: {exc}') from exc
    if sha256(weights) != expected:
        raise CheckpointError(f'checkpoint weights {weights_file} are corrupt or truncated, or were changed after '
                              f'saving: their sha256 differs from the {CHECKSUM_KEY} in {CONFIG_FILE}; restore the '
                              f'file or re-save the checkpoint')
    try:
        state = load(weights)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f'checkpoint weights {weights_file} are corrupt or truncated: {exc}') from exc
    model = WorldModel(config, load_pretrained=False)
    _check_state(model, state, weights_file)
    model.load_state_dict(state)
    return model.to(device).eval(), metadata


def _check_state(model: WorldModel, state: dict, weights_file: Path) -> None:
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f'{weights_file} does not match its config.json: missing {missing[:5]}, '
                              f'unexpected {extra[:5]}')
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise CheckpointError(f'{weights_file}: tensor {name!r} has shape {tuple(state[name].shape)}, '
                                  f'the config needs {tuple(tensor.shape)}')
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise CheckpointError(f'{weights_file}: tensor {name!r} contains NaN or inf')


def _directory(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.name in (WEIGHTS_FILE, CONFIG_FILE) or path.is_file() else path
