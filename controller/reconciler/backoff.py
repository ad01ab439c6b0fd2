"""Capped exponential backoff with full jitter, for transient failures (git, the target)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """The wait before the next attempt; each failure doubles the ceiling up to `cap`."""
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        # Full jitter keeps many controllers from retrying in step, but never below half.
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.failures = 0
