"""Curiosity: babbling that lingers where the world model is surprised, `data collect-sim --source curiosity`.

It needs no knowledge of the scene, so it works on a real arm where no scripted primitive exists. Every period the
newest frame's surprise (a world model's prediction error, `jepa_agent.model.surprise.LatentSurprise`) is divided by
how far the joints moved since the last frame (the arm's own fast motion is mispredicted too), and a frame more
surprising than `surprise_ratio` × the median of the recent ones slows the arm to `slow_fraction` of its velocity
limit and keeps its waypoint for up to `hold` seconds (a new waypoint, slowly approached too, if the arm has just
reached its last one): a push of the block, which the model does not foresee, goes on slowly for many frames
instead of being over in one.

Remembering surprising joint positions and babbling toward them was tried first and lowered the contact fraction,
even with a perfect surprise signal (contact itself): a touched block moves away from where it was touched. Measured
numbers are in docs/data.md.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from jepa_agent.config import bounded, check_ranges
from jepa_agent.data.babble import BabbleConfig, MotorBabbler


class Surprise(Protocol):
    """A world model's surprise at a stream of frames (`LatentSurprise` has this interface)."""

    def reset(self) -> None: ...

    def observe(self, image: np.ndarray, qpos: np.ndarray) -> float | None: ...


@dataclass
class CuriosityConfig:
    """Curiosity parameters (defaults chosen on sim seeds 0-19, docs/data.md)."""

    surprise_ratio: float = bounded(4.0, gt=1)
    """A frame is surprising when its surprise per radian moved exceeds this many times the recent median."""
    slow_fraction: float = bounded(0.1, gt=0, le=1)
    """Speed after a surprising frame, as a fraction of the velocity limit."""
    hold: float = bounded(1.0, ge=0)
    """Seconds the current waypoint is kept after a surprising frame."""
    motion_floor: float = bounded(0.05, gt=0)
    """Radians added to the joint motion that surprise is divided by (a still arm's surprise stays finite)."""
    memory: int = bounded(300, ge=10)
    """Frames whose surprise makes the recent median."""

    def __post_init__(self):
        check_ranges(self)


class CuriousBabbler(MotorBabbler):
    """`MotorBabbler` that slows down and keeps its waypoint after a surprising frame."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, velocity_limit: np.ndarray,
                 surprise: Callable[[np.ndarray], float | None], config: BabbleConfig | None = None,
                 curiosity: CuriosityConfig | None = None):
        """`surprise(measured)`: the surprise of the newest frame, whose joints are `measured` (None: unknown)."""
        super().__init__(lower, upper, velocity_limit, config)
        self.surprise = surprise
        self.curiosity = curiosity or CuriosityConfig()
        self._recent: deque[float] = deque(maxlen=self.curiosity.memory)   # surprise per radian moved
        self._previous: np.ndarray | None = None                           # joints at the previous frame
        self._surprised = False                                            # this period's frame was surprising

    def next_target(self, measured: np.ndarray, dt: float) -> np.ndarray:
        """Linger after a surprising frame (see the module docstring), then babble on (`MotorBabbler.next_target`)."""
        measured = np.asarray(measured, float)
        value = self.surprise(measured)
        if value is not None and self._previous is not None:
            value /= float(np.abs(measured - self._previous).sum()) + self.curiosity.motion_floor
            self._surprised = len(self._recent) >= 10 and \
                value > self.curiosity.surprise_ratio * np.median(self._recent)
            if self._surprised:
                self._linger()
            self._recent.append(value)
        self._previous = measured
        target = super().next_target(measured, dt)
        self._surprised = False
        return target

    def _new_waypoint(self) -> None:
        """Reached in a surprising frame's period, a waypoint is followed by one approached slowly too."""
        super()._new_waypoint()
        if self._surprised:
            self._linger()

    def _linger(self) -> None:
        self._speed = np.minimum(self._speed, self.curiosity.slow_fraction * self.velocity_limit)
        self._time_left = max(self._time_left, self.curiosity.hold)
