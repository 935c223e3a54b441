"""The operator routes (overview, dead letters) and resubmitting a task, through the edge."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import aio_pika
import pytest
from chalice.test import Client

from taskcore.config import Config
from taskcore.message import Submitted
from taskcore.names import Names
from taskcore.overview import Overview, OverviewStore, QueueDepth, WorkerState
from taskcore.status import Status
from taskcore.store import TaskStore
from tests.conftest import drain
from tests.functional.edge import ALICE, BOB, body_of, error_of, submit
from tests.integration.helpers import make_task

OPERATOR = {"X-Api-Key": "alice-key"}
USER = {"X-Api-Key": "bob-key"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def _operators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_OPERATORS", "alice")


async def bury(channel: aio_pika.abc.AbstractChannel, names: Names, body: bytes, id_: str) -> None:
    """A message on the dead queue, as the relay or the sweeper would have put it there."""
    dead = await channel.get_exchange(names.dead_exchange)
    await dead.publish(
        aio_pika.Message(body, message_id=id_, headers={"x-taskcast-reason": "no_worker: test"}),
        routing_key=Names.submitted_key("demo.noop"),
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ops/overview"),
        ("GET", "/ops/dead-letters"),
        ("POST", "/ops/dead-letters/replay"),
        ("POST", "/ops/dead-letters/purge"),
    ],
)
def test_the_operator_routes_are_403_for_other_keys_and_401_without_one(
    edge: Client, method: str, path: str
) -> None:
    body = '{"all": true}' if method == "POST" else None
    refused = edge.http.request(method, path, headers={**USER, **JSON}, body=body)
    anonymous = edge.http.request(method, path, headers=JSON, body=body)

    assert refused.status_code == 403
    assert error_of(refused)["code"] == "forbidden"
    assert anonymous.status_code == 401


def test_the_overview_is_503_until_reported_then_the_last_report(
    edge: Client, aws: Any, config: Config
) -> None:
    before = edge.http.get("/ops/overview", headers=OPERATOR)
    assert before.status_code == 503
    assert "sweeper" in error_of(before)["message"]

    OverviewStore(aws, config.names.tasks_table).put(
        Overview(
            updated_at="2026-12-01T10:00:00.000Z",
            queues=(QueueDepth("q.default.high", 3, 2, 1), QueueDepth("q.default.low", 0, 1, 0)),
            workers=(WorkerState("w1", "busy", ("q.default.high",), "t-1"),),
            broker={"tasks": 4, "dead": 5},
        )
    )
    overview = body_of(edge.http.get("/ops/overview", headers=OPERATOR))["overview"]

    assert overview["in_flight"] == 3
    assert overview["queues"][0] == {
        "name": "q.default.high",
        "queued": 3,
        "started": 2,
        "scheduled": 1,
    }
    assert overview["workers"] == [
        {"name": "w1", "state": "busy", "queues": ["q.default.high"], "task_id": "t-1"}
    ]
    assert overview["broker"] == {"tasks": 4, "dead": 5}
    # The overview item is no task: no listing or lookup meets it.
    assert body_of(edge.http.get("/tasks", headers=OPERATOR))["tasks"] == []


async def test_dead_letters_are_listed_without_being_taken_replayed_and_purged(
    edge: Client, aws: Any, config: Config, amqp: aio_pika.abc.AbstractChannel
) -> None:
    store = TaskStore(aws, config.names.tasks_table)
    pending = make_task("demo.noop", owner="bob")
    failed = make_task(
        "demo.sleep", {"seconds": 1}, owner="bob", status=Status.FAILED, max_attempts=2
    )
    for task in (pending, failed):
        store.create(task)
        body = Submitted.of(task).encode()
        await bury(amqp, config.names, body, task.task_id)
    await bury(amqp, config.names, b"not json", "garbage")

    for _ in range(2):  # listing leaves the queue as it was
        listed = body_of(edge.http.get("/ops/dead-letters", headers=OPERATOR))["dead_letters"]
        assert [m["message_id"] for m in listed] == [pending.task_id, failed.task_id, "garbage"]
    assert listed[0] == {
        "message_id": pending.task_id,
        "routing_key": "task.submitted.demo.noop",
        "reason": "no_worker: test",
        "task_id": pending.task_id,
        "type": "demo.noop",
    }
    assert listed[2]["task_id"] is None

    replay = {"ids": [pending.task_id, failed.task_id]}
    answers = [
        body_of(edge.http.post("/ops/dead-letters/replay", headers={**OPERATOR, **JSON}, body=b))
        for b in (json.dumps(replay), json.dumps(replay))
    ]

    # The pending task's message goes back to the relay; the failed task is submitted anew.
    assert answers[0]["replayed"] == [pending.task_id, failed.task_id]
    assert answers[1] == {"replayed": [], "resubmitted": [], "skipped": []}  # none left
    [again] = answers[0]["resubmitted"]
    assert again["task_id"] == failed.task_id
    new = store.get(again["new_task_id"])
    assert new is not None
    assert (new.owner, new.type, new.payload, new.max_attempts, new.status) == (
        "bob",
        "demo.sleep",
        failed.payload,
        2,
        Status.PENDING,
    )
    relayed = await drain(await amqp.get_queue(config.names.tasks_queue))
    assert sorted(m.message_id or "" for m in relayed) == sorted([pending.task_id, new.task_id])

    purged = edge.http.post("/ops/dead-letters/purge", headers=OPERATOR)
    assert body_of(purged) == {"purged": 1}  # the garbage
    assert body_of(edge.http.get("/ops/dead-letters", headers=OPERATOR))["dead_letters"] == []


async def test_a_dead_letter_that_cannot_be_replayed_stays_and_the_others_go_on(
    edge: Client, aws: Any, config: Config, amqp: aio_pika.abc.AbstractChannel
) -> None:
    store = TaskStore(aws, config.names.tasks_table)
    # A failed task whose type this edge no longer accepts, and a task its owner cancelled.
    gone = dataclasses.replace(make_task(status=Status.FAILED), type="gone.type")
    cancelled = make_task("demo.noop", status=Status.CANCELLED)
    for task in (gone, cancelled):
        store.create(task)
        body = Submitted.of(task).encode()
        await bury(amqp, config.names, body, task.task_id)

    response = edge.http.post(
        "/ops/dead-letters/replay", headers={**OPERATOR, **JSON}, body='{"all": true}'
    )

    answer = body_of(response)
    assert response.status_code == 200
    # The cancelled task is not run again behind its owner's back: its message goes to the relay,
    # which ignores it.
    assert answer["replayed"] == [cancelled.task_id]
    assert answer["resubmitted"] == []
    [skipped] = answer["skipped"]
    assert skipped["message_id"] == gone.task_id
    assert "gone.type" in skipped["error"]
    listed = body_of(edge.http.get("/ops/dead-letters", headers=OPERATOR))["dead_letters"]
    assert [m["message_id"] for m in listed] == [gone.task_id]


@pytest.mark.parametrize(
    "body", ["{}", '{"ids": []}', '{"ids": "x"}', '{"ids": [1]}', '{"all": 1}', "[]", "nope"]
)
def test_a_replay_that_names_nothing_is_refused_in_words(edge: Client, body: str) -> None:
    response = edge.http.post("/ops/dead-letters/replay", headers={**OPERATOR, **JSON}, body=body)

    assert response.status_code in (400, 422)
    assert error_of(response)["message"]


def test_a_failed_task_is_resubmitted_once_as_a_new_task_with_its_options(
    edge: Client, aws: Any, config: Config
) -> None:
    store = TaskStore(aws, config.names.tasks_table)
    failed = make_task("demo.sleep", {"seconds": 2}, status=Status.FAILED, timeout_s=42)
    store.create(failed)

    first = edge.http.post(f"/tasks/{failed.task_id}/resubmit", headers=ALICE)
    second = edge.http.post(f"/tasks/{failed.task_id}/resubmit", headers=ALICE)
    stranger = edge.http.post(f"/tasks/{failed.task_id}/resubmit", headers=BOB)

    assert first.status_code == second.status_code == 202
    new = body_of(first)["task"]
    assert body_of(second)["task"]["task_id"] == new["task_id"] != failed.task_id
    assert second.headers["Idempotent-Replayed"] == "true"
    assert (new["type"], new["payload"], new["timeout_s"]) == ("demo.sleep", failed.payload, 42)
    assert stranger.status_code == 404


def test_a_task_that_did_not_fail_is_not_resubmitted(edge: Client) -> None:
    task = body_of(submit(edge, {"type": "demo.noop"}))["task"]

    response = edge.http.post(f"/tasks/{task['task_id']}/resubmit", headers=ALICE)

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert "pending" in error_of(response)["message"]


def test_the_listing_takes_a_created_at_range(edge: Client, aws: Any, config: Config) -> None:
    store = TaskStore(aws, config.names.tasks_table)
    times = ["2026-11-30T23:59:59.999Z", "2026-12-01T00:00:00.000Z", "2026-12-01T12:00:00.000Z"]
    tasks = [make_task("demo.noop", created_at=t) for t in times]
    for task in tasks:
        store.create(task)

    def listed(query: str) -> list[str]:
        response = edge.http.get(f"/tasks?{query}", headers=ALICE)
        assert response.status_code == 200, response.body
        return [t["task_id"] for t in body_of(response)["tasks"]]

    ids = [t.task_id for t in tasks]
    assert listed("since=2026-12-01T00:00:00Z") == [ids[2], ids[1]]
    assert listed("until=2026-12-01T00:00:00Z") == [ids[0]]
    assert listed("since=2026-12-01T00:00:00Z&until=2026-12-01T12:00:00Z") == [ids[1]]
    assert listed("since=2026-12-01T01:00:00%2B01:00") == [ids[2], ids[1]]  # an offset is kept
    assert listed("since=2026-12-01T13:00:00") == []  # no offset: UTC


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-01", "\uff12\uff10\uff12\uff16-12-01", "1" * 100]
)
def test_a_malformed_time_is_422_naming_the_parameter(edge: Client, value: str) -> None:
    response = edge.http.get(f"/tasks?since={value}", headers=ALICE)

    assert response.status_code == 422
    assert error_of(response)["field"] == "since"
