"""The SDK's watch against a scripted websocket server: it resumes after what a real one does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from taskcast.client import Client, Watch, WatchError

TASK_ID = "0b5e6f5e-6d5e-4c1f-9a43-2a9a8f0c5d10"
FAR = int(time.time()) + 3600
"""An expiry this machine's clock thinks far off: the server's clock may disagree."""

Script = Callable[[ServerConnection, dict[str, Any]], Awaitable[None]]


def snapshot(seq: int) -> str:
    task = {"task_id": TASK_ID, "status": "running", "progress": {}, "attempt": 1}
    cursor = {"epoch": "e1", "seq": seq}
    return json.dumps(
        {"op": "snapshot", "task_id": TASK_ID, "task": task, "cursor": cursor, "resumed": seq > 0}
    )


def event(seq: int, status: str = "running") -> str:
    data = {"task_id": TASK_ID, "epoch": "e1", "seq": seq, "status": status, "kind": "status"}
    return json.dumps({"op": "event", "event": data})


END = json.dumps({"op": "end", "task_id": TASK_ID, "status": "succeeded", "result": None})


@contextlib.asynccontextmanager
async def scripted(*scripts: Script) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A websocket server whose n-th connection runs ``scripts[n]``; yields its URL and the
    subscribe message of each connection."""
    subscribes: list[dict[str, Any]] = []

    async def handle(ws: ServerConnection) -> None:
        subscribe = json.loads(await ws.recv())
        subscribes.append(subscribe)
        await scripts[len(subscribes) - 1](ws, subscribe)

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", subscribes


@contextlib.asynccontextmanager
async def dropping_first_handshake(target: str) -> AsyncIterator[str]:
    """A TCP relay to ``target`` that hangs up on its first connection before any answer, as
    a server does that restarts behind a load balancer."""
    host, port = target.removeprefix("ws://").split(":")
    connections = 0

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await reader.read(1)  # the client has started its handshake
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def updates(client: Client, watch: Watch) -> list[str]:
    seen = []
    async with asyncio.timeout(20):
        async for update in client.watch(TASK_ID, watch, max_backoff_s=0.5):
            seen.append(update.op if update.seq is None else f"{update.op} {update.seq}")
    return seen


async def test_an_expired_token_is_refreshed_when_the_server_says_so_whatever_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def expired(ws: ServerConnection, _: dict[str, Any]) -> None:
        await ws.send(
            json.dumps({"op": "error", "code": "token_expired", "message": "watch token expired"})
        )
        await ws.close(4002, "token_expired")

    async def serves(ws: ServerConnection, _: dict[str, Any]) -> None:
        for message in (snapshot(0), event(1), event(2, "succeeded"), END):
            await ws.send(message)

    async with scripted(expired, serves) as (url, subscribes):
        fresh = Watch(url, "fresh-token", FAR)
        monkeypatch.setattr(Client, "watch_token", lambda self, task_id: fresh)
        with Client("http://127.0.0.1:9", "key") as client:
            seen = await updates(client, Watch(url, "old-token", FAR))
    assert [s["token"] for s in subscribes] == ["old-token", "fresh-token"]
    assert seen == ["snapshot", "event 1", "event 2", "end"]


async def test_a_watch_resumes_from_its_cursor_after_a_handshake_cut_short() -> None:
    async def serves(ws: ServerConnection, subscribe: dict[str, Any]) -> None:
        for message in (snapshot(0), event(1), event(2, "succeeded"), END):
            await ws.send(message)

    async with scripted(serves) as (url, subscribes), dropping_first_handshake(url) as flaky:
        with Client("http://127.0.0.1:9", "key") as client:
            seen = await updates(client, Watch(flaky, "token", FAR))
    assert seen == ["snapshot", "event 1", "event 2", "end"]
    assert len(subscribes) == 1


async def test_a_dropped_watch_resumes_from_the_last_event_it_got() -> None:
    async def drops(ws: ServerConnection, _: dict[str, Any]) -> None:
        await ws.send(snapshot(0))
        await ws.send(event(1))
        await ws.transport.close()  # no close frame: a dropped network

    async def resumes(ws: ServerConnection, subscribe: dict[str, Any]) -> None:
        for message in (snapshot(1), event(2, "succeeded"), END):
            await ws.send(message)

    async with scripted(drops, resumes) as (url, subscribes):
        with Client("http://127.0.0.1:9", "key") as client:
            seen = await updates(client, Watch(url, "token", FAR))
    assert subscribes[1]["cursor"] == {"epoch": "e1", "seq": 1}
    assert seen == ["snapshot", "event 1", "snapshot", "event 2", "end"]


async def test_a_refusal_ends_the_watch_with_its_code() -> None:
    async def refuses(ws: ServerConnection, _: dict[str, Any]) -> None:
        await ws.send(json.dumps({"op": "error", "code": "not_found", "message": "no task"}))
        await ws.close(4004, "not_found")

    async with scripted(refuses) as (url, _):
        with Client("http://127.0.0.1:9", "key") as client, pytest.raises(WatchError) as refused:
            await updates(client, Watch(url, "token", FAR))
    assert refused.value.code == "not_found"
