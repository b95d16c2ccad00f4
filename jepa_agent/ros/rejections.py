"""Rejected inputs, reported the same way by every node: counted per kind, warned about at most once per kind and
period, with the reason cut to a readable length (a malformed message must not flood or bloat the log)."""
from __future__ import annotations

import time
from collections import Counter

from jepa_agent.data.messages import truncate

WARN_PERIOD_S = 5.0


class InputRejections:
    """Counts rejected inputs by kind ('image', 'joint_state', 'goal', ...) and warns through `logger` (anything
    with `.warning(str)`), at most once per kind every `period_s` seconds."""

    def __init__(self, logger, period_s: float = WARN_PERIOD_S):
        self.logger = logger
        self.period_s = period_s
        self.counts: Counter = Counter()
        self._warned: dict[str, float] = {}

    def reject(self, kind: str, reason: object) -> None:
        """Count one rejected `kind` input; warn with the (truncated) reason unless warned recently."""
        self.counts[kind] += 1
        now = time.monotonic()
        if now - self._warned.get(kind, -self.period_s) >= self.period_s:
            self._warned[kind] = now
            self.logger.warning(f'rejected {kind}: {truncate(reason)} ({self.counts[kind]} rejected so far)')

    def diagnostics(self) -> dict[str, str]:
        """`rejected_<kind>` counters for a /diagnostics status."""
        return {f'rejected_{kind}': str(n) for kind, n in sorted(self.counts.items())}
