"""Retry delays: exponential, capped, with jitter so retries of many tasks do not arrive together."""

from __future__ import annotations

import random


def delay(retry: int, base_s: int, cap_s: int, rng: random.Random | None = None) -> int:
    """Whole seconds to wait before retry number ``retry`` (1 for the first; RQ wants ints).

    ``base_s * 2**(retry - 1)``, capped at ``cap_s``, then scaled by a random factor in
    [0.5, 1.5), and never less than one second.
    """
    draw = rng or random.Random()
    raw = min(cap_s, base_s * (1 << max(retry - 1, 0)))
    return max(1, round(raw * draw.uniform(0.5, 1.5)))


def intervals(retries: int, base_s: int, cap_s: int, rng: random.Random | None = None) -> list[int]:
    """:func:`delay` of each of ``retries`` retries, in order."""
    draw = rng or random.Random()
    return [delay(n, base_s, cap_s, draw) for n in range(1, retries + 1)]
