"""Keyboard jogging without ROS: which key moves which joint, and reading keys from a terminal or a pipe.

Key pairs q/a, w/s, e/d, r/f, t/g, y/h move joints 1..6 up/down by one step; space holds the measured position;
+/- double/halve the step. Jogs accumulate on the last commanded target, so fast key repeats are not lost while the
arm is still moving.
"""
from __future__ import annotations

import os
import termios
import tty
from collections.abc import Iterator
from typing import IO

import numpy as np

#: (up, down) keys per joint, in joint order
JOG_KEYS = ('qa', 'ws', 'ed', 'rf', 'tg', 'yh')
HOLD_KEY = ' '
FASTER_KEYS, SLOWER_KEYS = '+=', '-_'
MIN_STEP, MAX_STEP = 0.01, 1.0


class KeyboardJogger:
    """Turns key presses into joint targets within the position limits."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, step: float = 0.1):
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        if self.lower.size > len(JOG_KEYS):
            raise ValueError(f'keyboard jogging supports at most {len(JOG_KEYS)} joints, got {self.lower.size}')
        if not MIN_STEP <= step <= MAX_STEP:
            raise ValueError(f'step must be in [{MIN_STEP}, {MAX_STEP}] rad, got {step=}')
        self.step = step
        self.target: np.ndarray | None = None
        self._jogs = {key: (joint, sign) for joint, pair in enumerate(JOG_KEYS[:self.lower.size])
                      for key, sign in zip(pair, (1.0, -1.0))}

    def handle(self, key: str, measured: np.ndarray) -> np.ndarray | None:
        """New joint target for `key` given the measured positions, or None if the key sends no command."""
        if key in self._jogs:
            joint, sign = self._jogs[key]
            target = (self.target if self.target is not None else np.asarray(measured, float)).copy()
            target[joint] += sign * self.step
            self.target = np.clip(target, self.lower, self.upper)
        elif key == HOLD_KEY:
            self.target = np.clip(np.asarray(measured, float), self.lower, self.upper)
        else:
            if key in FASTER_KEYS:
                self.step = min(self.step * 2, MAX_STEP)
            elif key in SLOWER_KEYS:
                self.step = max(self.step / 2, MIN_STEP)
            return None
        return self.target.copy()


def help_text(joint_names: list[str]) -> str:
    lines = [f'  {up} / {down} : {name} + / -' for name, (up, down) in zip(joint_names, JOG_KEYS)]
    return '\n'.join(['keyboard teleop:', *lines, '  space : hold here', '  + / - : step x2 / x0.5',
                      '  Ctrl-C: quit'])


class KeyReader:
    """Single keys from a terminal (in cbreak mode until `close()`) or from a pipe, as they arrive."""

    def __init__(self, stream: IO):
        self.fd = stream.fileno()
        self.is_terminal = os.isatty(self.fd)
        self._saved = termios.tcgetattr(self.fd) if self.is_terminal else None
        if self.is_terminal:
            tty.setcbreak(self.fd)   # keys arrive unbuffered and unechoed; Ctrl-C still raises SIGINT

    def __iter__(self) -> Iterator[str]:
        """Keys until end of input (a closed pipe; a terminal only ends with the process)."""
        while chunk := os.read(self.fd, 1):
            yield chunk.decode('latin-1')

    def close(self) -> None:
        """Restore the terminal settings."""
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
