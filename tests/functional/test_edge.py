"""The HTTP edge through chalice's test client, with moto for DynamoDB and the real RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskcore import token
from taskcore.clock import parse_iso
from taskcore.config import Config
from taskcore.errors import ConfigError
from taskcore.idempotency import IdempotencyKey
from taskcore.message import CancelRequested, Submitted
from taskcore.status import Status
from taskcore.store import TaskStore
from tests.conftest import WATCH_SECRET, drain
from tests.functional.edge import ALICE, BOB, error_of, submit


async def test_submit_answers_202_with_the_task_location_and_a_watch_token(
    edge: Client, aws: Any, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    response = submit(edge, {"type": "demo.sleep", "payload": {"seconds": 1}, "priority": "high"})

    assert response.status_code == 202
    body = json.loads(response.body)
    task = body["task"]
    assert task["status"] == "pending"
    assert task["payload"] == {"seconds": 1, "fail_rate": 0.1, "steps": 5}
    assert task["priority"] == "high"
    assert response.headers["Location"] == f"/tasks/{task['task_id']}"
    claims = token.verify(WATCH_SECRET.encode(), body["watch"]["token"], task["task_id"])
    assert claims.owner == "alice"
    assert body["watch"]["url"] == config.realtime_url
    stored = TaskStore(aws, config.names.tasks_table).get(task["task_id"])
    assert stored is not None
    assert stored.owner == "alice"

    queue = await amqp.get_queue(config.names.tasks_queue)
    messages = await drain(queue)
    assert len(messages) == 1
    message = messages[0]
    assert Submitted.decode(message.body) == Submitted(
        task["task_id"], "demo.sleep", stored.trace_id
    )
    assert message.message_id == task["task_id"]
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.routing_key == "task.submitted.demo.sleep"


@pytest.mark.parametrize(
    "headers", [{"Content-Type": "application/json"}, {**ALICE, "X-Api-Key": "wrong"}]
)
def test_a_missing_or_wrong_key_is_401(edge: Client, headers: dict[str, str]) -> None:
    response = submit(edge, {"type": "demo.noop"}, headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ("{not json", 400, None),
        ("[1, 2]", 400, None),
        ("", 400, None),
        ({"type": "demo.nope"}, 422, "type"),
        ({"payload": {}}, 422, "type"),
        ({"type": "demo.sleep", "payload": {"seconds": "ten"}}, 422, "payload.seconds"),
        ({"type": "demo.sleep", "payload": {"secs": 1}}, 422, "payload.secs"),
        ({"type": "demo.sleep", "payload": []}, 422, "payload"),
        ({"type": "demo.noop", "priority": "urgent"}, 422, "priority"),
        ({"type": "demo.noop", "colour": "red"}, 422, "colour"),
        ({"type": "demo.noop", "payload": {"x": "a" * 65_000, "y": "b" * 1000}}, 413, "payload"),
        ({"type": "demo.noop", "payload": {"x": "a" * 70_000}}, 413, None),  # one string
        (
            {
                "type": "demo.noop",
                "payload": {"x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
            },
            400,
            None,
        ),
        ({"type": "demo.noop", "payload": {"x": 1e308 * 10}}, 400, None),
        ({"type": "demo.noop", "payload": {"x": "a" * 200_000}}, 413, None),
        ({"type": "demo.sleep", "payload": {"steps": 0}}, 422, "payload.steps"),
        ({"type": "demo.noop", "max_attempts": 11}, 422, "max_attempts"),
        ({"type": "demo.noop", "max_attempts": 0}, 422, "max_attempts"),
        ({"type": "demo.noop", "timeout_s": 3601}, 422, "timeout_s"),
        ({"type": "demo.noop", "timeout_s": "60"}, 422, "timeout_s"),
        ({"type": "demo.noop", "delay_seconds": -1}, 422, "delay_seconds"),
    ],
)
async def test_bad_input_gets_a_4xx_that_says_what_is_wrong_and_stores_nothing(
    edge: Client,
    aws: Any,
    amqp: aio_pika.abc.AbstractChannel,
    config: Config,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    response = submit(edge, body)
    assert response.status_code == status
    error = error_of(response)
    assert error["message"]
    assert error.get("field") == field
    assert aws.scan(TableName=config.names.tasks_table)["Count"] == 0
    assert await drain(await amqp.get_queue(config.names.tasks_queue), timeout_s=0.2) == []


def test_an_owner_reads_its_task_and_nobody_else_can(edge: Client) -> None:
    task_id = json.loads(submit(edge, {"type": "demo.noop"}).body)["task"]["task_id"]

    mine = edge.http.get(f"/tasks/{task_id}", headers=ALICE)
    assert mine.status_code == 200
    assert json.loads(mine.body)["task"]["task_id"] == task_id
    assert edge.http.get(f"/tasks/{task_id}", headers=BOB).status_code == 404
    assert edge.http.get("/tasks/not-a-uuid", headers=ALICE).status_code == 404
    assert (
        edge.http.get("/tasks/9f0c3a1e-0000-4000-8000-000000000001", headers=ALICE).status_code
        == 404
    )


def test_a_fresh_watch_token_is_minted_for_the_owner_only(edge: Client) -> None:
    task_id = json.loads(submit(edge, {"type": "demo.noop"}).body)["task"]["task_id"]
    response = edge.http.post(f"/tasks/{task_id}/watch", headers=ALICE)
    assert response.status_code == 200
    token.verify(WATCH_SECRET.encode(), json.loads(response.body)["watch"]["token"], task_id)
    assert edge.http.post(f"/tasks/{task_id}/watch", headers=BOB).status_code == 404


def test_listing_is_the_owners_newest_first_filtered_and_paged(edge: Client) -> None:
    ids = [
        json.loads(submit(edge, {"type": t}).body)["task"]["task_id"]
        for t in ["demo.noop", "demo.sleep"] * 3
    ]
    submit(edge, {"type": "demo.noop"}, BOB)

    everything = json.loads(edge.http.get("/tasks?limit=100", headers=ALICE).body)
    assert [t["task_id"] for t in everything["tasks"]] == ids[::-1]
    assert everything["next_cursor"] is None

    sleeps = json.loads(edge.http.get("/tasks?type=demo.sleep", headers=ALICE).body)["tasks"]
    assert [t["task_id"] for t in sleeps] == ids[1::2][::-1]
    assert json.loads(edge.http.get("/tasks?status=running", headers=ALICE).body)["tasks"] == []

    seen: list[str] = []
    cursor = None
    while True:
        query = "/tasks?limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = json.loads(edge.http.get(query, headers=ALICE).body)
        seen += [t["task_id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=abc", "limit"),
        ("?status=done", "status"),
        ("?type=nope", "type"),
        ("?cursor=garbage", "cursor"),
    ],
)
def test_bad_list_queries_are_422(edge: Client, query: str, field: str) -> None:
    response = edge.http.get(f"/tasks{query}", headers=ALICE)
    assert response.status_code == 422
    assert error_of(response)["field"] == field


def test_another_owners_cursor_is_refused(edge: Client) -> None:
    for _ in range(3):
        submit(edge, {"type": "demo.noop"}, BOB)
    cursor = json.loads(edge.http.get("/tasks?limit=1", headers=BOB).body)["next_cursor"]
    assert cursor is not None
    assert edge.http.get(f"/tasks?cursor={cursor}", headers=ALICE).status_code == 422


async def test_when_the_broker_refuses_the_task_is_still_accepted_and_left_pending(
    edge: Client, aws: Any, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    await amqp.exchange_delete(config.names.exchange)  # nothing to publish to

    response = submit(edge, {"type": "demo.noop"})

    # The record is written: the sweeper publishes it later (tests/integration/test_sweeper.py).
    assert response.status_code == 202
    (item,) = aws.scan(TableName=config.names.tasks_table)["Items"]
    assert item["status"]["S"] == "pending"


async def test_a_repeated_request_with_one_idempotency_key_makes_one_task_and_one_message(
    edge: Client, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    keyed = {**ALICE, "Idempotency-Key": "order-42"}
    first = submit(edge, {"type": "demo.sleep", "payload": {"seconds": 2}}, keyed)
    # The same JSON written differently is the same request.
    again = submit(edge, '{ "payload": {"seconds": 2},  "type": "demo.sleep" }', keyed)

    assert (first.status_code, again.status_code) == (202, 202)
    task_id = json.loads(first.body)["task"]["task_id"]
    assert json.loads(again.body)["task"]["task_id"] == task_id
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert json.loads(again.body)["watch"]["token"]
    messages = await drain(await amqp.get_queue(config.names.tasks_queue), timeout_s=0.5)
    assert [Submitted.decode(m.body).task_id for m in messages] == [task_id]


def test_an_idempotency_key_reused_for_another_body_is_422_and_makes_nothing(
    edge: Client, aws: Any, config: Config
) -> None:
    keyed = {**ALICE, "Idempotency-Key": "order-43"}
    assert submit(edge, {"type": "demo.sleep", "payload": {"seconds": 2}}, keyed).status_code == 202

    response = submit(edge, {"type": "demo.sleep", "payload": {"seconds": 3}}, keyed)

    assert response.status_code == 422
    assert error_of(response)["field"] == "Idempotency-Key"
    assert len(aws.scan(TableName=config.names.tasks_table)["Items"]) == 1


async def test_a_key_whose_first_request_died_before_writing_its_task_is_taken_over(
    edge: Client, aws: Any, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    body = {"type": "demo.noop"}
    orphan = str(uuid.uuid4())
    # What a request leaves behind if it dies between claiming the key and writing the task.
    aws.put_item(
        TableName=config.names.idempotency_table,
        Item=IdempotencyKey.parse("alice", "crashed", body, 3600).to_item(orphan),
    )

    response = submit(edge, body, {**ALICE, "Idempotency-Key": "crashed"})

    assert response.status_code == 202
    assert "Idempotent-Replayed" not in response.headers
    assert json.loads(response.body)["task"]["task_id"] == orphan
    (message,) = await drain(await amqp.get_queue(config.names.tasks_queue))
    assert Submitted.decode(message.body).task_id == orphan


def test_idempotency_keys_are_per_owner(edge: Client) -> None:
    body = {"type": "demo.noop"}
    alice = submit(edge, body, {**ALICE, "Idempotency-Key": "same"})
    bob = submit(edge, body, {**BOB, "Idempotency-Key": "same"})

    assert (alice.status_code, bob.status_code) == (202, 202)
    assert json.loads(alice.body)["task"]["task_id"] != json.loads(bob.body)["task"]["task_id"]
    assert "Idempotent-Replayed" not in bob.headers


def test_an_expired_idempotency_key_makes_a_new_task(
    edge: Client, aws: Any, config: Config
) -> None:
    keyed = {**ALICE, "Idempotency-Key": "old"}
    first = json.loads(submit(edge, {"type": "demo.noop"}, keyed).body)["task"]["task_id"]
    # DynamoDB deletes expired items only eventually: one still there must count as free.
    aws.update_item(
        TableName=config.names.idempotency_table,
        Key={"pk": {"S": "alice#old"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},
    )

    response = submit(edge, {"type": "demo.noop"}, keyed)

    assert "Idempotent-Replayed" not in response.headers
    assert json.loads(response.body)["task"]["task_id"] != first


def test_a_delayed_task_says_when_it_will_start(edge: Client) -> None:
    response = submit(edge, {"type": "demo.noop", "delay_seconds": 90})

    assert response.status_code == 202
    task = json.loads(response.body)["task"]
    assert task["status"] == "pending"
    start = parse_iso(task["run_at"]) - parse_iso(task["created_at"])
    assert abs(start - 90) < 0.01


@pytest.mark.parametrize("delay", [-1, 1.5, "10", True, 7 * 86400 + 1])
def test_a_bad_delay_is_422(edge: Client, delay: Any) -> None:
    response = submit(edge, {"type": "demo.noop", "delay_seconds": delay})
    assert response.status_code == 422
    assert error_of(response)["field"] == "delay_seconds"


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "ключ"])
def test_a_malformed_idempotency_key_is_422(edge: Client, key: str) -> None:
    response = submit(edge, {"type": "demo.noop"}, {**ALICE, "Idempotency-Key": key})
    assert response.status_code == 422
    assert error_of(response)["field"] == "Idempotency-Key"


@pytest.mark.parametrize(
    "failure",
    [
        EndpointConnectionError(endpoint_url="http://dynamodb"),
        ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
            "PutItem",
        ),
    ],
    ids=["unreachable", "throttled"],
)
def test_when_dynamodb_is_down_or_throttling_the_answer_is_503_not_500(
    edge: Client, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    from chalicelib import services

    def fail(*args: Any, **kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(services.current().store, "create", fail)

    response = submit(edge, {"type": "demo.noop"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert error_of(response)["code"] == "unavailable"


def test_the_task_types_are_listed_with_their_schemas_defaults_and_limits(edge: Client) -> None:
    types = {t["name"]: t for t in json.loads(edge.http.get("/task-types").body)["task_types"]}
    assert {"demo.sleep", "demo.flaky", "demo.noop", "demo.stream"} <= set(types)
    sleep = types["demo.sleep"]
    assert sleep["payload_schema"]["properties"]["steps"]["maximum"] == 100
    assert sleep["defaults"]["timeout_s"] == 660
    assert sleep["limits"] == {"max_attempts": 10, "timeout_s": 3600, "delay_seconds": 604800}


def test_a_payload_that_breaks_a_schema_rule_is_422_naming_the_field_and_the_rule(
    edge: Client,
) -> None:
    response = submit(edge, {"type": "demo.sleep", "payload": {"fail_rate": 2}})

    assert response.status_code == 422
    error = error_of(response)
    assert (error["field"], error["rule"]) == ("payload.fail_rate", "maximum")
    assert "2 is greater than the maximum of 1" in error["message"]


def test_a_shortcut_route_submits_its_type_with_the_body_as_payload(edge: Client) -> None:
    response = edge.http.post(
        "/images",
        headers={**ALICE, "Content-Type": "application/json"},
        body=json.dumps({"url": "https://images.example/cat.png", "filter": "blur"}),
    )

    assert response.status_code == 202
    task = json.loads(response.body)["task"]
    assert (task["type"], task["queue"], task["max_attempts"]) == ("image.filter", "images", 3)
    assert task["payload"] == {
        "url": "https://images.example/cat.png",
        "filter": "blur",
        "params": {},
        "format": "png",
    }


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({"url": "ftp://images.example/cat.png", "filter": "blur"}, "payload.url", "pattern"),
        ({"url": "http://user:pw@images.example/", "filter": "blur"}, "payload.url", "pattern"),
        ({"url": "https://images.example/cat.png", "filter": "melt"}, "payload.filter", "enum"),
        ({"filter": "blur"}, "payload", "required"),
        (
            {"url": "https://i.example/c.png", "filter": "blur", "params": {"radius": 99}},
            "payload.params.radius",
            "maximum",
        ),
        (
            {"url": "https://i.example/c.png", "filter": "rotate", "format": "gif"},
            "payload.format",
            "enum",
        ),
    ],
)
def test_an_image_payload_is_checked_at_the_edge(
    edge: Client, payload: dict[str, Any], field: str, rule: str
) -> None:
    response = edge.http.post(
        "/images", headers={**ALICE, "Content-Type": "application/json"}, body=json.dumps(payload)
    )

    assert response.status_code == 422
    assert (error_of(response)["field"], error_of(response)["rule"]) == (field, rule)


def test_a_path_that_is_no_shortcut_is_404_in_the_apis_shape(edge: Client) -> None:
    response = edge.http.post(
        "/nothing-here", headers={**ALICE, "Content-Type": "application/json"}, body="{}"
    )
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_call_sets_its_options_within_limits_and_the_answer_states_them(edge: Client) -> None:
    response = submit(
        edge,
        {
            "type": "demo.sleep",
            "payload": {"seconds": 1},
            "max_attempts": 4,
            "timeout_s": 90,
            "priority": "high",
        },
    )

    assert response.status_code == 202
    task = json.loads(response.body)["task"]
    assert (task["max_attempts"], task["timeout_s"], task["priority"], task["queue"]) == (
        4,
        90,
        "high",
        "default",
    )
    assert task["payload"] == {"seconds": 1, "fail_rate": 0.1, "steps": 5}


def test_an_edge_without_a_catalogue_fails_naming_the_setting(
    edge: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import services

    monkeypatch.delenv("TASKCAST_CATALOGUE")
    services.reset()
    with pytest.raises(ConfigError, match="TASKCAST_CATALOGUE"):
        services.current()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=50),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["demo.sleep", "demo.noop", "x"]) | json_values},
        optional={
            "payload": st.dictionaries(
                st.sampled_from(["seconds", "fail_rate", "steps", "z"]), json_values, max_size=3
            )
            | json_values,
            "priority": json_values,
        },
    ).map(json.dumps),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
def test_nothing_a_client_sends_produces_a_500(edge: Client, body: str | bytes) -> None:
    response = submit(edge, body)
    assert response.status_code in (202, 400, 413, 422), response.body
    if response.status_code != 202:
        assert error_of(response)["message"]


async def test_cancel_publishes_a_request_for_the_owners_live_task(
    edge: Client, aws: Any, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    task_id = json.loads(submit(edge, {"type": "demo.noop"}).body)["task"]["task_id"]

    assert edge.http.post(f"/tasks/{task_id}/cancel", headers=BOB).status_code == 404
    response = edge.http.post(f"/tasks/{task_id}/cancel", headers=ALICE)

    assert response.status_code == 202
    assert json.loads(response.body)["cancel"] == "requested"
    (message,) = await drain(await amqp.get_queue(config.names.control_queue))
    assert CancelRequested.decode(message.body) == CancelRequested(task_id)


async def test_cancelling_an_ended_task_changes_nothing(
    edge: Client, aws: Any, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    task_id = json.loads(submit(edge, {"type": "demo.noop"}).body)["task"]["task_id"]
    store = TaskStore(aws, config.names.tasks_table)
    task = store.get(task_id)
    assert task is not None
    store.transition(
        store.transition(store.transition(task, Status.QUEUED), Status.RUNNING), Status.SUCCEEDED
    )

    response = edge.http.post(f"/tasks/{task_id}/cancel", headers=ALICE)

    assert response.status_code == 200
    body = json.loads(response.body)
    assert (body["cancel"], body["task"]["status"]) == ("ended", "succeeded")
    assert await drain(await amqp.get_queue(config.names.control_queue), timeout_s=0.2) == []


async def test_a_dead_broker_connection_is_replaced_and_the_task_accepted(
    edge: Client, aws: Any, amqp: aio_pika.abc.AbstractChannel, config: Config
) -> None:
    from chalicelib import services

    assert submit(edge, {"type": "demo.noop"}).status_code == 202
    # What a frozen Lambda instance finds after a long idle: its connection is gone.
    publisher = services.current().publisher
    connection = publisher._connection
    assert connection is not None
    asyncio.run_coroutine_threadsafe(connection.close(), publisher._loop).result(5)

    assert submit(edge, {"type": "demo.noop"}).status_code == 202
    assert len(await drain(await amqp.get_queue(config.names.tasks_queue))) == 2


def test_a_method_the_path_does_not_have_is_405_with_allow_in_the_apis_shape(edge: Client) -> None:
    response = edge.http.put("/tasks", headers=ALICE, body="{}")

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, GET, OPTIONS"
    assert error_of(response)["code"] == "method_not_allowed"


def test_a_body_that_is_not_json_by_content_type_is_415_in_the_apis_shape(edge: Client) -> None:
    response = edge.http.post(
        "/tasks", headers={**ALICE, "Content-Type": "text/plain"}, body='{"type": "demo.noop"}'
    )

    assert response.status_code == 415
    assert error_of(response) == {
        "code": "unsupported_media_type",
        "message": "the Content-Type must be application/json",
    }


@pytest.mark.parametrize("limit", ["\u0663", "1" * 5000, "+5", " 5"])
def test_a_limit_not_in_ascii_digits_is_422(edge: Client, limit: str) -> None:
    response = edge.http.get(f"/tasks?limit={limit}", headers=ALICE)
    assert response.status_code == 422
    assert error_of(response)["field"] == "limit"
