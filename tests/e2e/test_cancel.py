"""Cancelling running tasks through the API, watched live: by request, and by force."""

from __future__ import annotations

import pytest

from taskcast import Client, Update
from taskcast.local.stack import Stack

from .test_cli import taskcast

pytestmark = pytest.mark.e2e


async def _cancel_once_running(client: Client, payload: dict[str, object]) -> list[Update]:
    sub = client.submit("demo.sleep", payload)
    updates: list[Update] = []
    async for update in client.watch(sub.task_id, sub.watch):
        updates.append(update)
        if update.op == "event" and update.status == "running" and len(updates) == 3:
            client.cancel(sub.task_id)
    return updates


@pytest.mark.parametrize("cooperative", [True, False], ids=["on-request", "by-force"])
async def test_a_running_task_is_cancelled_and_its_watcher_told(
    shared_stack: Stack, cooperative: bool
) -> None:
    with Client(shared_stack.edge_url, "dev-key") as client:
        payload = {"seconds": 60, "steps": 60, "fail_rate": 0, "cooperative": cooperative}
        updates = await _cancel_once_running(client, payload)
        task_id = updates[0].task_id

        assert updates[-1].op == "end"
        assert updates[-1].status == "cancelled"
        assert [u.status for u in updates if u.op == "event"][-1] == "cancelled"
        record = client.get(task_id)
        assert record["status"] == "cancelled"
        assert record["progress"]["percent"] < 100
        # The workers are still fine: the next task runs to its end.
        after = client.submit("demo.sleep", {"seconds": 0.2, "steps": 1, "fail_rate": 0})
        ends = [u async for u in client.watch(after.task_id, after.watch) if u.op == "end"]
        assert ends[0].status == "succeeded"


def test_cancelling_an_ended_task_says_so_and_changes_nothing(shared_stack: Stack) -> None:
    done = taskcast(
        shared_stack,
        "submit",
        "demo.sleep",
        "--payload",
        '{"seconds": 0, "steps": 1, "fail_rate": 0}',
        "--watch",
    )
    assert done.returncode == 0
    with Client(shared_stack.edge_url, "dev-key") as client:
        task_id = client.list(limit=1).tasks[0]["task_id"]
        cancelled = taskcast(shared_stack, "cancel", task_id)
        assert cancelled.returncode == 0
        assert "had ended as succeeded" in cancelled.stdout
        assert client.get(task_id)["status"] == "succeeded"
