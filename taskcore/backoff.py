"""Retry delays: exponential, capped, with jitter so retries of many tasks do not arrive together."""

from __future__ import annotations

import random


def intervals(retries: int, base_s: int, cap_s: int, rng: random.Random | None = None) -> list[int]:
    """Whole seconds to wait before each of ``retries`` retries (RQ's ``Retry`` wants ints).

    The n-th delay is ``base_s * 2**n``, capped at ``cap_s``, then scaled by a random factor in
    [0.5, 1.5), and never less than one second.
    """
    draw = rng or random.Random()
    return [
        max(1, round(min(cap_s, base_s * 2**n) * draw.uniform(0.5, 1.5))) for n in range(retries)
    ]
