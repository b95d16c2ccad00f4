"""One device vocabulary for every node, CLI and config: 'auto' | 'cpu' | 'cuda' | 'cuda:N'.

    device = resolve_device(config.device)     # torch.device, or ValueError saying what is wrong

Configs check the spelling when they are built (`check_device`, no hardware needed); `resolve_device` also checks
that this machine has the device, so a node or command asked for a missing GPU stops with one clear error.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N'"
_SPEC = re.compile(r'auto|cpu|cuda(:\d+)?')


def check_device(spec: str) -> str:
    """`spec` unchanged if it is in the vocabulary, else ValueError (usable as an argparse `type`)."""
    if not isinstance(spec, str) or not _SPEC.fullmatch(spec):
        raise ValueError(f'device must be {DEVICE_HELP}, got {spec!r}')
    return spec


def resolve_device(spec: str) -> torch.device:
    """The torch device `spec` names ('auto': CUDA if available, else CPU); ValueError for a misspelled spec or a
    CUDA device this machine does not have."""
    import torch    # here, not at the top: CLIs check --device with check_device without loading torch
    if check_device(spec) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(spec)
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f'device {spec!r} requested but this machine has {count} usable CUDA device(s)')
    return device
