"""``python -m bench``: with ``--json``, one JSON object on stdout with the figures the issue
asks for; without, the tables. Sizes tiny, so that it runs in well under a minute."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_SERVER

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BENCH_REDIS_URL = f"{REDIS_SERVER}/10"
"""A database of its own: bare RQ's queue in the bench has a fixed name."""
PARTS = {"edge", "relay", "worker", "sweeper", "realtime"}
TINY = ["--samples", "2", "--batch", "6", "--ticks", "2", "--tick-tasks", "2"]
SWEEPER_TINY = ["--sweeper-sizes", "10,30", "--sweeper-passes", "1"]


@pytest.fixture
def bench_redis() -> Iterator[str]:
    yield BENCH_REDIS_URL
    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TASKCAST_BENCH_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,  # where `make bench` runs it: the bench is not an installed package
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_pipeline_bench_prints_one_json_object_with_every_figure_and_the_tables_on_stderr(
    bench_redis: str,
) -> None:
    done = bench("--only", "pipeline", "--json", "--redis-url", bench_redis, *TINY, *SWEEPER_TINY)

    figures = json.loads(done.stdout)  # nothing else on stdout, or this fails
    for name in ("taskcast", "bare_rq"):
        assert set(figures[name]) == {"throughput", "p50_ms", "p99_ms"}
        assert figures[name]["throughput"] > 0
        assert 0 < figures[name]["p50_ms"] <= figures[name]["p99_ms"]
    assert set(figures["cpu_ms_per_task"]) == PARTS | {"emulator"}
    # Every call was made by a part the bench named: none went unaccounted for.
    assert set(figures["dynamodb_calls_by_part"]) <= PARTS
    assert "edge" in figures["dynamodb_calls_by_part"]  # it writes the task: counted, per part
    per_task = figures["dynamodb_calls_per_task"]
    assert per_task > 0
    assert sum(figures["dynamodb_calls_by_operation"].values()) == pytest.approx(per_task)
    assert figures["dynamodb_calls_per_progress_tick"] >= 0
    assert set(figures["sweeper_pass_ms"]) == set(figures["status_list_ms"]) == {"10", "30"}
    assert all(ms > 0 for ms in figures["sweeper_pass_ms"].values())
    assert figures["sweeper_pass_ratio"] == pytest.approx(
        figures["sweeper_pass_ms"]["30"] / figures["sweeper_pass_ms"]["10"]
    )
    assert figures["sweeper"]["30"]["size"] == 30
    assert "submit_load" in figures
    assert "| DynamoDB calls per task" in done.stderr
    assert "| throughput (tasks/s)" in done.stderr


def test_without_json_the_bench_prints_its_tables_on_stdout(bench_redis: str) -> None:
    done = bench("--only", "sweeper", "--redis-url", bench_redis, *SWEEPER_TINY)

    assert "|  finished |" in done.stdout
    assert "pass at 30 / pass at 10" in done.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)


def test_the_fanout_bench_prints_one_json_object_with_a_run_per_watcher_count(
    bench_redis: str,
) -> None:
    done = bench(
        "--only",
        "fanout",
        "--json",
        "--redis-url",
        bench_redis,
        *("--fanout-sizes", "5,10", "--rate", "40", "--seconds", "1"),
    )

    figures = json.loads(done.stdout)  # nothing else on stdout, or this fails
    fanout = figures["fanout"]
    assert (fanout["rate"], fanout["seconds"]) == (40, 1)
    assert [run["watchers"] for run in fanout["runs"]] == [5, 10]
    keys = {"p50_ms", "p99_ms", "events_per_s", "kib_per_conn"}
    for run in fanout["runs"]:
        assert set(run) == {"watchers", "baseline", *keys}
        assert set(run["baseline"]) == keys
        for measured in (run, run["baseline"]):
            assert 0 < measured["p50_ms"] <= measured["p99_ms"]
            assert measured["events_per_s"] > 0
    assert "|  watchers |" in done.stderr
