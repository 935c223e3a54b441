"""The realtime service's Prometheus metrics, scraped over HTTP while clients watch tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from websockets.asyncio.client import connect

from realtime import metrics
from taskcore.config import Config
from taskcore.status import Status
from tests.scrape import Scrape, scrape

from .test_realtime import World, free_port, receive, running_world

pytestmark = pytest.mark.integration

LAG = "taskcast_ws_delivery_lag_seconds"


@pytest.fixture
def served() -> Iterator[int]:
    port = free_port()
    server = metrics.serve("127.0.0.1", port)
    yield port
    server.shutdown()
    server.server_close()


@pytest.fixture
async def world(aws: Any, redis_client: redis.Redis, config: Config) -> AsyncIterator[World]:
    async with running_world(aws, redis_client, config) as running:
        yield running


async def scraped(port: int, until: Callable[[Scrape], bool] = lambda _: True) -> Scrape:
    """A scrape (off the event loop, which serves the connections) once ``until`` holds."""
    deadline = asyncio.get_running_loop().time() + 10
    while not until(found := await asyncio.to_thread(scrape, port)):
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.02)
    return found


def connections(found: Scrape) -> float | None:
    return found.value("taskcast_ws_connections")


async def test_each_open_websocket_is_counted_until_it_closes(world: World, served: int) -> None:
    before = await scraped(served)
    assert before.types["taskcast_ws_connections"] == "gauge"
    opened = before.value("taskcast_ws_connections")
    assert opened is not None

    first, second = await connect(world.url), await connect(world.url)
    await scraped(served, lambda s: connections(s) == opened + 2)
    await first.close()
    await scraped(served, lambda s: connections(s) == opened + 1)
    await second.close()
    await scraped(served, lambda s: connections(s) == opened)


async def test_an_event_sent_live_is_observed_in_the_delivery_lag_and_a_replayed_one_is_not(
    world: World, served: int, redis_client: redis.Redis
) -> None:
    task = world.move(world.create(), Status.QUEUED)  # in the log before anyone watches
    epoch = redis_client.hget(world.config.names.event_meta(task.task_id), "epoch")
    assert isinstance(epoch, bytes)
    before = await scraped(served)
    assert before.types[LAG] == "histogram"
    count, total = before.value(f"{LAG}_count"), before.value(f"{LAG}_sum")
    assert count is not None
    assert total is not None

    ws = await world.subscribe(task, {"epoch": epoch.decode(), "seq": 0})
    assert (await receive(ws))["op"] == "snapshot"
    replayed = await receive(ws)
    assert (replayed["op"], replayed["event"]["seq"]) == ("event", 1)
    world.move(task, Status.RUNNING, attempt=1)
    live = await receive(ws)
    assert (live["op"], live["event"]["seq"]) == ("event", 2)

    after = await scraped(served, lambda s: s.value(f"{LAG}_count") != count)
    await ws.close()
    assert after.value(f"{LAG}_count") == count + 1  # the live event only
    lag = after.value(f"{LAG}_sum")
    assert lag is not None
    assert lag >= total
