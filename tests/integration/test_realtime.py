"""The websocket service against the real Redis (DynamoDB by moto in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.server import RealtimeService
from realtime.session import Limits
from taskcore import token
from taskcore.config import Config
from taskcore.event import Event
from taskcore.protocol import MAX_MESSAGE_BYTES
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Progress, Task, TaskError
from tests.conftest import WATCH_SECRET
from worker_container.eventlog import EventLog
from worker_container.lifecycle import Lifecycle

from .helpers import make_task

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class World:
    """A realtime instance plus the writers a worker would use."""

    def __init__(
        self, config: Config, store: TaskStore, events: EventLog, service: RealtimeService, url: str
    ) -> None:
        self.config, self.store, self.events, self.service, self.url = (
            config,
            store,
            events,
            service,
            url,
        )
        # Every progress report written to the record too, so the tests can read it there.
        self.lifecycle = Lifecycle(store, events, checkpoint_s=0)

    def create(self, **changes: Any) -> Task:
        task = make_task(**changes)
        self.store.create(task)
        return task

    def move(self, task: Task, status: Status, **changes: Any) -> Task:
        """Transition the record, then append the event, as workers do (their lifecycle)."""
        moved = self.lifecycle.transition(task, status, **changes)
        assert moved is not None
        return moved

    def progress(self, task: Task, percent: float) -> Task:
        return self.lifecycle.progress(task, Progress(percent, f"{percent}%"))

    def token(self, task: Task, ttl_s: int = 60, owner: str | None = None) -> str:
        return token.issue(WATCH_SECRET.encode(), task.task_id, owner or task.owner, ttl_s)[0]

    async def subscribe(
        self, task: Task, cursor: dict[str, Any] | None = None, tok: str | None = None
    ) -> ClientConnection:
        ws = await connect(self.url)
        await ws.send(
            json.dumps(
                {
                    "op": "subscribe",
                    "task_id": task.task_id,
                    "token": tok or self.token(task),
                    "cursor": cursor,
                }
            )
        )
        return ws


@contextlib.asynccontextmanager
async def running_world(
    aws: Any, redis_client: redis.Redis, config: Config, **service_options: Any
) -> AsyncIterator[World]:
    """A realtime instance in this process for the length of the context."""
    port = free_port()
    service = RealtimeService(config, **service_options)
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(service.serve("127.0.0.1", port, stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield World(
        config,
        TaskStore(aws, config.names.tasks_table),
        EventLog(redis_client, config.names, config.event_log_ttl_s),
        service,
        f"ws://127.0.0.1:{port}",
    )
    stop.set()
    await asyncio.wait_for(serving, 10)


@pytest.fixture
async def world(aws: Any, redis_client: redis.Redis, config: Config) -> AsyncIterator[World]:
    async with running_world(aws, redis_client, config) as running:
        yield running


SEND_BUFFER_MAX = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
"""The most the kernel may buffer for one TCP socket's sends (it autotunes up to this)."""


async def receive(ws: ClientConnection, timeout_s: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))


async def receive_until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = await receive(ws)
        messages.append(message)
        if message["op"] in ("end", "error"):
            return messages


async def receive_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes, and the close code it sent."""
    messages = []
    try:
        while True:
            messages.append(dict(json.loads(await asyncio.wait_for(ws.recv(), 10))))
    except ConnectionClosed as closed:
        await ws.wait_closed()  # the TCP close may still be in flight
        return messages, None if closed.rcvd is None else closed.rcvd.code


async def until(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["event"]["seq"] for m in messages if m["op"] == "event"]


async def test_a_watcher_gets_a_snapshot_then_live_events_then_end(world: World) -> None:
    task = world.create()
    ws = await world.subscribe(task)
    snapshot = await receive(ws)
    assert snapshot["op"] == "snapshot"
    assert snapshot["task"]["status"] == "pending"
    # The log is started for the watcher: its first cursor names the epoch events will be in.
    assert snapshot["cursor"]["seq"] == 0
    assert snapshot["cursor"]["epoch"] is not None

    task = world.move(task, Status.QUEUED)
    task = world.move(task, Status.RUNNING, attempt=1)
    task = world.progress(task, 50)
    world.move(task, Status.SUCCEEDED, result={"ok": True})

    messages = await receive_until_end(ws)
    assert seqs(messages) == [1, 2, 3, 4]
    assert [m["event"]["status"] for m in messages[:-1]] == [
        "queued",
        "running",
        "running",
        "succeeded",
    ]
    assert messages[-1] == {
        "op": "end",
        "task_id": task.task_id,
        "status": "succeeded",
        "result": {"ok": True},
    }
    await ws.close()


def forget_record(world: World, task: Task) -> None:
    """Delete the task's DynamoDB record: whatever still answers came from Redis."""
    world.store._client.delete_item(
        TableName=world.config.names.tasks_table, Key={"task_id": {"S": task.task_id}}
    )


async def test_a_snapshot_comes_from_the_current_form_kept_beside_the_log(world: World) -> None:
    task = world.move(world.create(), Status.QUEUED)
    task = world.progress(world.move(task, Status.RUNNING, attempt=1), 40)
    forget_record(world, task)

    ws = await world.subscribe(task)
    snapshot = await receive(ws)

    assert snapshot["op"] == "snapshot"
    assert (snapshot["task"]["status"], snapshot["task"]["progress"]["percent"]) == ("running", 40)
    assert snapshot["cursor"]["seq"] == 3
    await ws.close()


async def test_a_watcher_early_for_a_task_gets_its_snapshot_from_its_first_event(
    world: World,
) -> None:
    """Subscribed before the relay announced the task: no record read, the first event's form."""
    task = world.create()
    forget_record(world, task)
    ws = await world.subscribe(task)
    await asyncio.sleep(0.1)  # the watch is waiting for the first event now

    world.lifecycle.queued(task)  # the relay's announcement: an event, not a write

    snapshot = await receive(ws)
    assert snapshot["op"] == "snapshot"
    assert snapshot["task"]["status"] == "queued"
    assert snapshot["cursor"]["seq"] == 1
    await ws.close()


async def test_a_late_watcher_gets_the_current_state_and_only_what_follows(world: World) -> None:
    task = world.move(world.create(), Status.QUEUED)
    task = world.move(task, Status.RUNNING, attempt=1)
    ws = await world.subscribe(task)

    snapshot = await receive(ws)
    assert snapshot["task"]["status"] == "running"
    assert snapshot["cursor"]["seq"] == 2
    assert snapshot["resumed"] is False
    world.move(task, Status.FAILED, error=None)
    assert seqs(await receive_until_end(ws)) == [3]


async def test_a_reconnecting_watcher_gets_exactly_what_it_missed(world: World) -> None:
    task = world.move(world.create(), Status.QUEUED)
    ws = await world.subscribe(task)
    await receive(ws)
    task = world.move(task, Status.RUNNING, attempt=1)
    first = await receive(ws)
    cursor = {"epoch": first["event"]["epoch"], "seq": first["event"]["seq"]}
    await ws.close()

    for percent in (10, 20, 30):  # missed while disconnected
        task = world.progress(task, percent)
    ws = await world.subscribe(task, cursor)
    snapshot = await receive(ws)
    assert snapshot["resumed"] is True
    assert snapshot["cursor"] == cursor
    world.move(task, Status.SUCCEEDED)
    messages = await receive_until_end(ws)
    assert seqs(messages) == [3, 4, 5, 6]
    assert [m["event"]["progress"]["percent"] for m in messages[:3]] == [10, 20, 30]


async def test_a_cursor_from_a_lost_log_gets_a_fresh_snapshot(
    world: World, redis_client: redis.Redis
) -> None:
    task = world.move(world.create(), Status.QUEUED)
    task = world.move(task, Status.RUNNING, attempt=1)
    old_epoch = redis_client.hget(world.config.names.event_meta(task.task_id), "epoch").decode()  # type: ignore[union-attr]
    redis_client.flushdb()  # Redis lost everything
    task = world.progress(task, 40)

    ws = await world.subscribe(task, {"epoch": old_epoch, "seq": 2})
    snapshot = await receive(ws)
    assert snapshot["resumed"] is False
    assert snapshot["cursor"]["epoch"] != old_epoch
    assert snapshot["cursor"]["seq"] == 1
    assert snapshot["task"]["progress"]["percent"] == 40
    world.move(task, Status.SUCCEEDED)
    assert seqs(await receive_until_end(ws)) == [2]


async def test_watching_a_finished_task_gives_its_snapshot_and_end(world: World) -> None:
    task = world.move(world.create(), Status.QUEUED)
    task = world.move(task, Status.RUNNING, attempt=1)
    world.move(task, Status.SUCCEEDED)
    ws = await world.subscribe(task)
    messages = await receive_until_end(ws)
    assert [m["op"] for m in messages] == ["snapshot", "end"]
    assert messages[-1]["status"] == "succeeded"


async def test_a_finished_task_whose_log_was_lost_still_ends(
    world: World, redis_client: redis.Redis
) -> None:
    task = world.move(world.create(), Status.QUEUED)
    world.store.transition(world.store.transition(task, Status.RUNNING, attempt=1), Status.FAILED)
    redis_client.flushdb()
    ws = await world.subscribe(task)
    messages = await receive_until_end(ws)
    assert [m["op"] for m in messages] == ["snapshot", "end"]
    assert messages[-1]["status"] == "failed"


async def test_one_connection_watches_several_tasks(world: World) -> None:
    one, two = world.create(), world.create()
    ws = await world.subscribe(one)
    await ws.send(
        json.dumps(
            {"op": "subscribe", "task_id": two.task_id, "token": world.token(two), "cursor": None}
        )
    )
    assert {(await receive(ws))["task_id"], (await receive(ws))["task_id"]} == {
        one.task_id,
        two.task_id,
    }
    world.move(two, Status.CANCELLED)
    world.move(one, Status.CANCELLED)
    ends = []
    while len(ends) < 2:
        message = await receive(ws)
        if message["op"] == "end":
            ends.append(message["task_id"])
    assert sorted(ends) == sorted([one.task_id, two.task_id])


async def test_a_task_unsubscribed_then_subscribed_again_is_watched_from_the_new_cursor(
    world: World,
) -> None:
    task = world.move(world.create(), Status.QUEUED)
    task = world.move(task, Status.RUNNING, attempt=1)
    ws = await world.subscribe(task)
    snapshot = await receive(ws)
    assert snapshot["cursor"]["seq"] == 2

    # At once, on the same connection: rewind to the log's start to read its history.
    await ws.send(json.dumps({"op": "unsubscribe", "task_id": task.task_id}))
    cursor = {**snapshot["cursor"], "seq": 0}
    await ws.send(
        json.dumps(
            {
                "op": "subscribe",
                "task_id": task.task_id,
                "token": world.token(task),
                "cursor": cursor,
            }
        )
    )
    again = await receive(ws)
    assert (again["op"], again["resumed"], again["cursor"]) == ("snapshot", True, cursor)
    world.move(task, Status.SUCCEEDED)
    assert seqs(await receive_until_end(ws)) == [1, 2, 3]


@pytest.mark.parametrize(
    ("make_token", "code", "close"),
    [
        (lambda w, t: "forged.token", "invalid_token", 4001),
        (lambda w, t: w.token(t, ttl_s=-1), "token_expired", 4002),
        (lambda w, t: w.token(w.create()), "token_wrong_task", 4003),
        (lambda w, t: w.token(t, owner="mallory"), "not_found", 4004),
    ],
)
async def test_a_bad_token_is_refused_with_its_code(
    world: World, make_token: Any, code: str, close: int
) -> None:
    task = world.create()
    ws = await world.subscribe(task, tok=make_token(world, task))
    error = await receive(ws)
    assert error["op"] == "error"
    assert error["code"] == code
    with pytest.raises(ConnectionClosed) as closed:
        await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == close


@pytest.mark.parametrize(
    ("message", "code", "close"),
    [
        ("not json", "invalid_json", 1007),
        ("[" * 2000 + "]" * 2000, "invalid_json", 1007),
        (
            '{"op": "subscribe", "cursor": {"epoch": ' + "[" * 40 + "]" * 40 + "}}",
            "invalid_json",
            1007,
        ),
        (b'{"op": "unsubscribe"}', "unsupported_data", 1003),
        ('{"op": "dance"}', "bad_request", 1008),
        ("[1, 2]", "bad_request", 1008),
        ('{"op": "subscribe", "task_id": "x", "token": "t"}', "not_found", 4004),
    ],
)
async def test_a_bad_message_is_answered_with_an_error_then_a_close_that_says_why(
    world: World, message: str | bytes, code: str, close: int
) -> None:
    async with connect(world.url) as ws:
        await ws.send(message)
        messages, closed_with = await receive_until_closed(ws)
    assert [(m["op"], m["code"]) for m in messages] == [("error", code)]
    assert closed_with == close


async def test_a_foreign_origin_is_refused_at_the_handshake(world: World) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(world.url, origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    async with connect(world.url, origin=world.config.allowed_origins[0]) as ws:  # type: ignore[arg-type]
        await ws.ping()


async def test_an_oversized_message_closes_with_1009(world: World) -> None:
    async with connect(world.url) as ws:
        await ws.send("x" * (MAX_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_subscriptions_are_released_when_watchers_leave(world: World) -> None:
    tasks = [world.create() for _ in range(3)]
    sockets = [await world.subscribe(t) for t in tasks + tasks[:1]]  # two watchers share a task
    for ws in sockets:
        await receive(ws)
    assert world.service.hub.subscriptions == 3
    for ws in sockets:
        await ws.close()
    await until(lambda: world.service.hub.subscriptions == 0)


async def test_shutdown_closes_watchers_with_1001(world: World, aws: Any, config: Config) -> None:
    task = world.create()
    ws = await world.subscribe(task)
    await receive(ws)
    port = free_port()
    other = RealtimeService(config)
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(other.serve("127.0.0.1", port, stop, ready))
    await ready.wait()
    ws2 = await connect(f"ws://127.0.0.1:{port}")
    await ws2.send(
        json.dumps(
            {"op": "subscribe", "task_id": task.task_id, "token": world.token(task), "cursor": None}
        )
    )
    await receive(ws2)
    stop.set()
    with pytest.raises(ConnectionClosed) as closed:
        await receive(ws2)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    await serving
    await ws.close()


async def test_a_client_that_stops_reading_is_closed_with_1013_and_resumes_while_others_get_everything(
    aws: Any, redis_client: redis.Redis, config: Config
) -> None:
    async with running_world(aws, redis_client, config, max_buffered=20) as world:
        slow_task = world.move(world.create(), Status.QUEUED)
        slow_task = world.move(slow_task, Status.RUNNING, attempt=1)
        busy_task = world.move(world.create(), Status.QUEUED)
        busy_task = world.move(busy_task, Status.RUNNING, attempt=1)
        # max_queue=1: the slow client's library stops reading from the socket almost at once;
        # a small fixed receive buffer (no autotuning, which goes up to 32 MiB on loopback)
        # keeps its kernel from absorbing what the server sends meanwhile; and no compression,
        # which would shrink the repetitive events below anything a buffer could notice.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.setblocking(False)
        host, port = world.url.removeprefix("ws://").split(":")
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        async with connect(world.url, max_queue=1, sock=sock, compression=None) as slow:
            await slow.send(
                json.dumps(
                    {
                        "op": "subscribe",
                        "task_id": slow_task.task_id,
                        "token": world.token(slow_task),
                        "cursor": None,
                    }
                )
            )
            fast = await world.subscribe(busy_task)
            await receive(fast)

            received: list[int] = []

            async def read_fast() -> None:
                while True:
                    message = await receive(fast)
                    if message["op"] == "end":
                        return
                    received.append(message["event"]["seq"])

            reading = asyncio.create_task(read_fast())
            # Fewer events than the log keeps (MAX_EVENTS), so the slow client can resume from its
            # cursor afterwards, but together twice what the kernel may buffer for the server's socket
            # (tcp_wmem's maximum, to which it autotunes): the server's sends must block, whatever
            # the kernel's mood, and its queue for the slow client overflow.
            count = 900
            padding = "x" * (2 * SEND_BUFFER_MAX // count)

            def publish() -> None:  # from a thread, as a worker would from its own process
                for n in range(1, count + 1):
                    slow_progress = replace(slow_task, progress=Progress(n / 10, padding))
                    world.events.append(Event.progress_of(slow_progress), slow_progress)
                    if n % 10 == 0:
                        busy_progress = replace(busy_task, progress=Progress(n / 10, ""))
                        world.events.append(Event.progress_of(busy_progress), busy_progress)
                world.move(busy_task, Status.SUCCEEDED)

            await asyncio.to_thread(publish)
            await asyncio.wait_for(reading, 30)
            assert received == list(
                range(3, 3 + count // 10 + 1)
            )  # every event, in order, none lost

            seen, code = await receive_until_closed(slow)
            assert code == 1013
            events = [m["event"] for m in seen if m["op"] == "event"]
            assert [e["seq"] for e in events] == list(range(3, 3 + len(events)))
            assert len(events) < count

            last = events[-1]
            resumed = await world.subscribe(slow_task, {"epoch": last["epoch"], "seq": last["seq"]})
            assert (await receive(resumed))["resumed"] is True
            world.move(slow_task, Status.SUCCEEDED)
            rest = [
                m["event"]["seq"] for m in await receive_until_end(resumed) if m["op"] == "event"
            ]
            assert rest == list(range(last["seq"] + 1, 3 + count + 1))
            await resumed.close()
            await fast.close()


async def test_a_connection_that_floods_subscribes_is_closed(
    aws: Any, redis_client: redis.Redis, config: Config
) -> None:
    async with running_world(
        aws, redis_client, config, limits=Limits(subscribes_per_window=5)
    ) as world:
        task = world.create()
        async with connect(world.url) as ws:
            for _ in range(6):
                await ws.send(
                    json.dumps(
                        {
                            "op": "subscribe",
                            "task_id": task.task_id,
                            "token": world.token(task),
                            "cursor": None,
                        }
                    )
                )
            messages, code = await receive_until_closed(ws)
        assert messages[-1]["code"] == "rate_limited"
        assert code == 4029


async def test_the_final_status_arrives_even_if_its_event_never_reached_the_channel(
    aws: Any, redis_client: redis.Redis, config: Config
) -> None:
    async with running_world(
        aws, redis_client, config, limits=Limits(idle_check_s=0.5, record_check_s=0.5)
    ) as world:
        task = world.move(world.create(), Status.QUEUED)
        task = world.move(task, Status.RUNNING, attempt=1)
        ws = await world.subscribe(task)
        await receive(ws)
        # The worker wrote the record, then Redis failed before the event was appended.
        world.store.transition(task, Status.FAILED, error=TaskError("HandlerError", "boom"))

        end = (await receive_until_end(ws))[-1]
        assert end == {
            "op": "end",
            "task_id": task.task_id,
            "status": "failed",
            "error": {"type": "HandlerError", "message": "boom"},
        }


async def test_an_idle_watcher_learns_of_a_new_epoch_as_soon_as_the_hub_is_back(
    aws: Any, redis_client: redis.Redis, config: Config
) -> None:
    # Idle checks far off: only the hub's renewed subscription can bring the news in time.
    async with running_world(aws, redis_client, config, limits=Limits(idle_check_s=120)) as world:
        task = world.move(world.create(), Status.QUEUED)
        ws = await world.subscribe(task)
        first = await receive(ws)
        # Redis restarts: the log is lost, the hub's connection dropped, and the worker's next
        # event begins a new epoch while no one is subscribed to hear it.
        redis_client.flushdb()
        redis_client.client_kill_filter(_type="pubsub")
        task = world.move(task, Status.RUNNING, attempt=1)

        reset = await receive(ws, timeout_s=10)
        assert reset["op"] == "snapshot"
        assert reset["resumed"] is False
        assert reset["cursor"]["epoch"] != first["cursor"]["epoch"]
        assert reset["task"]["status"] == "running"
        world.move(task, Status.SUCCEEDED)
        assert seqs(await receive_until_end(ws)) == [2]


TOKEN_KINDS = ("valid", "other_task", "other_owner", "expired", "forged")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    owners=st.integers(1, 3),
    task_owners=st.lists(st.integers(0, 2), min_size=1, max_size=5),
    clients=st.lists(
        st.lists(
            st.tuples(st.integers(0, 4), st.sampled_from(TOKEN_KINDS)), min_size=1, max_size=4
        ),
        min_size=1,
        max_size=4,
    ),
)
async def test_no_client_ever_receives_a_task_it_holds_no_valid_token_for(
    world: World, owners: int, task_owners: list[int], clients: list[list[tuple[int, str]]]
) -> None:
    tasks = [world.create(owner=f"owner{o % owners}") for o in task_owners]

    def token_for(task: Task, kind: str) -> str:
        other = tasks[(tasks.index(task) + 1) % len(tasks)]
        return {
            "valid": lambda: world.token(task),
            "other_task": lambda: world.token(other),
            "other_owner": lambda: world.token(task, owner="mallory"),
            "expired": lambda: world.token(task, ttl_s=-1),
            "forged": lambda: "e30.forged",
        }[kind]()

    sockets = []
    allowed: list[set[str]] = []
    for wants in clients:
        ws = await connect(world.url)
        sockets.append(ws)
        allowed.append(set())
        for index, kind in wants:
            task = tasks[index % len(tasks)]
            if kind == "valid" or (kind == "other_task" and len(tasks) == 1):
                allowed[-1].add(task.task_id)  # a token for "another" task is its own when alone
            await ws.send(
                json.dumps(
                    {
                        "op": "subscribe",
                        "task_id": task.task_id,
                        "token": token_for(task, kind),
                        "cursor": None,
                    }
                )
            )
    for task in tasks:
        moved = world.progress(
            world.move(world.move(task, Status.QUEUED), Status.RUNNING, attempt=1), 50
        )
        world.move(moved, Status.SUCCEEDED)

    for ws, permitted in zip(sockets, allowed, strict=True):
        seen: set[str] = set()
        ended: set[str] = set()
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while not permitted or ended < permitted:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                task_id = message.get("task_id") or message.get("event", {}).get("task_id")
                if message["op"] != "error":
                    seen.add(task_id)
                if message["op"] == "end":
                    ended.add(task_id)
        await ws.close()
        assert seen <= permitted


async def test_a_client_that_stops_answering_pings_is_disconnected(
    aws: Any, redis_client: redis.Redis, config: Config
) -> None:
    limits = Limits(ping_interval_s=0.2, ping_timeout_s=0.2)
    async with running_world(aws, redis_client, config, limits=limits) as world:
        port = int(world.url.rsplit(":", 1)[1])
        # A client that shook hands and then vanished without closing: it never answers a ping.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        received = b""
        while chunk := await asyncio.wait_for(reader.read(1024), 5):  # until the server hangs up
            received += chunk
        writer.close()
        await writer.wait_closed()
    assert received[:1] == b"\x89"  # it was pinged first


async def test_a_client_that_answers_pings_stays_connected(
    aws: Any, redis_client: redis.Redis, config: Config
) -> None:
    # A ping every 50 ms, each answered well within its 2 s: twenty or so in the second below.
    limits = Limits(ping_interval_s=0.05, ping_timeout_s=2)
    async with running_world(aws, redis_client, config, limits=limits) as world:
        task = world.create()
        ws = await world.subscribe(task)
        await receive(ws)
        await asyncio.sleep(1)
        world.move(task, Status.QUEUED)
        assert seqs([await receive(ws)]) == [1]
        await ws.close()


async def test_the_service_does_not_compress_even_for_a_client_that_offers_to(
    world: World,
) -> None:
    task = world.create()
    async with connect(world.url) as ws:  # offers permessage-deflate, as browsers do
        assert ws.request is not None
        assert ws.response is not None
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send(
            json.dumps(
                {
                    "op": "subscribe",
                    "task_id": task.task_id,
                    "token": world.token(task),
                    "cursor": None,
                }
            )
        )
        assert (await receive(ws))["op"] == "snapshot"


async def test_a_watch_waiting_for_events_holds_no_task_and_its_connection_one(
    world: World,
) -> None:
    tasks = [world.create() for _ in range(3)]
    before = len(asyncio.all_tasks())
    sockets = []
    for task in tasks:
        # No keepalive on the client side either: its pings would be a task of its own.
        ws = await connect(world.url, ping_interval=None)
        await ws.send(
            json.dumps(
                {
                    "op": "subscribe",
                    "task_id": task.task_id,
                    "token": world.token(task),
                    "cursor": None,
                }
            )
        )
        sockets.append(ws)
    for ws in sockets:
        assert (await receive(ws))["op"] == "snapshot"

    # The task websockets runs each connection in: none per watch, none for the keepalive.
    await until(lambda: len(asyncio.all_tasks()) - before == len(sockets))
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("watch-")]
    # And the watches still deliver, from the hub's own task.
    for task, ws in zip(tasks, sockets, strict=True):
        world.move(task, Status.QUEUED)
        assert seqs([await receive(ws)]) == [1]
    for ws in sockets:
        await ws.close()
