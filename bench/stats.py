"""Small statistics for benchmark samples."""

from __future__ import annotations

import math


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
