"""The learning-rate schedule shared by end-to-end training (trainer.py) and the predictor refit (refit.py)."""
from __future__ import annotations

import math


def cosine_with_warmup(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to `floor`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
