"""One device vocabulary: 'auto' | 'cpu' | 'cuda' | 'cuda:N', checked with one clear error everywhere."""
from __future__ import annotations

import pytest
import torch

from jepa_agent.config import ConfigError, build
from jepa_agent.model.devices import check_device, resolve_device
from jepa_agent.nodes.planner import PlannerNodeConfig
from jepa_agent.training.online import OnlineLearnerConfig
from jepa_agent.training.trainer import TrainConfig


def test_resolve_device_accepts_the_vocabulary():
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.cuda.is_available():
        assert resolve_device('cuda:0') == torch.device('cuda', 0)


@pytest.mark.parametrize('spec', ['gpu', 'CPU', 'cuda:', 'cuda:x', 'cuda0', 'mps', ''])
def test_misspelled_devices_are_refused_with_the_vocabulary(spec):
    with pytest.raises(ValueError, match="device must be 'auto' .*'cpu', 'cuda' or 'cuda:N', got"):
        resolve_device(spec)


def test_missing_cuda_device_is_a_clear_error():
    missing = f'cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}'
    with pytest.raises(ValueError, match=f"device '{missing}' requested but this machine has"):
        resolve_device(missing)


@pytest.mark.parametrize('cls', [PlannerNodeConfig, OnlineLearnerConfig, TrainConfig])
def test_every_config_with_a_device_speaks_the_same_vocabulary(cls):
    for spec in ('auto', 'cpu', 'cuda', 'cuda:1'):      # spelling only: no hardware needed to build a config
        assert build(cls, {'device': spec}).device == check_device(spec)
    with pytest.raises(ConfigError, match="device must be 'auto'"):
        build(cls, {'device': 'gpu'})
