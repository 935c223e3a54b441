import random

from hypothesis import given
from hypothesis import strategies as st

from taskcore import backoff


def test_delays_double_from_the_base() -> None:
    delays = backoff.intervals(5, base_s=2, cap_s=1000, rng=random.Random(1))
    for n, delay in enumerate(delays):
        assert 2 * 2**n * 0.5 <= delay <= 2 * 2**n * 1.5


@given(st.integers(1, 10), st.integers(1, 60), st.integers(1, 600), st.integers())
def test_delays_are_whole_seconds_at_least_one_and_capped(
    retries: int, base: int, cap: int, seed: int
) -> None:
    delays = backoff.intervals(retries, base, cap, random.Random(seed))
    assert len(delays) == retries
    assert all(isinstance(d, int) and 1 <= d <= max(1, round(cap * 1.5)) for d in delays)


def test_jitter_spreads_tasks_that_failed_together() -> None:
    firsts = {
        backoff.intervals(1, base_s=10, cap_s=100, rng=random.Random(seed))[0] for seed in range(50)
    }
    assert len(firsts) > 5
