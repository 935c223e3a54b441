"""Retries with backoff through RQ's Retry and scheduler, watched live."""

from __future__ import annotations

from typing import Any

import pytest

from taskcast import Client
from taskcast.local.stack import Stack

pytestmark = pytest.mark.e2e


async def _watched(
    client: Client, failures: int
) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    """What a watcher saw (its snapshot's status, then each status event's), the events, the record."""
    sub = client.submit("demo.flaky", {"failures": failures, "seconds": 0})
    updates = [u async for u in client.watch(sub.task_id, sub.watch)]
    events = [u.data["event"] for u in updates if u.op == "event"]
    statuses = [updates[0].status] + [e["status"] for e in events if e["kind"] == "status"]
    return statuses, events, client.get(sub.task_id)


async def test_a_failed_attempt_is_retried_after_a_backoff_until_one_succeeds(
    shared_stack: Stack,
) -> None:
    with Client(shared_stack.edge_url, "dev-key") as client:
        statuses, events, record = await _watched(client, failures=2)

    # However early the watcher came in, it saw every retry and the end.
    assert statuses[0] in ("pending", "queued", "running")
    assert statuses[-5:] == ["retrying", "running", "retrying", "running", "succeeded"]
    retrying = [e for e in events if e["status"] == "retrying"]
    assert [e["attempt"] for e in retrying] == [1, 2]
    assert all(e["error"]["type"] == "flaky" for e in retrying)
    assert all(e["retry_at"] > e["ts"] for e in retrying)
    assert (record["status"], record["attempt"], record["result"]) == (
        "succeeded",
        3,
        {"attempts": 3},
    )
    assert "retry_at" not in record
    assert "error" not in record


async def test_a_task_that_keeps_failing_fails_after_its_last_attempt(shared_stack: Stack) -> None:
    with Client(shared_stack.edge_url, "dev-key") as client:
        statuses, _, record = await _watched(client, failures=5)

    assert statuses[-3:] == ["retrying", "running", "failed"]
    assert record["status"] == "failed"
    assert record["attempt"] == 3
    assert record["error"] == {
        "type": "flaky",
        "message": "attempt 3 fails on purpose (5 will)",
    }


async def test_a_delayed_task_waits_queued_until_its_run_at_then_runs(shared_stack: Stack) -> None:
    with Client(shared_stack.edge_url, "dev-key") as client:
        sub = client.submit("demo.noop", delay_seconds=2)
        run_at = sub.task["run_at"]
        updates = [u async for u in client.watch(sub.task_id, sub.watch)]
        record = client.get(sub.task_id)

    queued = [u.data["event"] for u in updates if u.op == "event" and u.status == "queued"]
    assert [e.get("run_at") for e in queued] in ([run_at], [])  # [] if it came before the watcher
    assert updates[-1].status == "succeeded"
    assert record["started_at"] >= run_at
    assert "run_at" in record
