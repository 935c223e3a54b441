"""The servers under test, each in its own process.

``taskcast``: the realtime service, its task records in moto inside this process (so the
benchmark measures fan-out, not DynamoDB emulation over HTTP). ``bare``: a websockets server
that sends each of a fixed rate of messages to one connection, keyed like tasks, with
``broadcast()``: the least a websocket fan-out can do (uncompressed, as the service is).

Both print ``ready`` once they accept connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import boto3
from moto import mock_aws
from websockets.asyncio.server import ServerConnection, broadcast, serve

from infra import dynamodb
from realtime.server import RealtimeService
from realtime.session import Limits
from taskcore.config import Config
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Task
from taskcore.tasktype import Priority

OWNER = "bench"


def task_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taskcast-bench-{index}"))


def bench_task(index: int) -> Task:
    """The running task the benchmark's watchers of ``index`` watch."""
    return Task(
        task_id=task_id(index),
        owner=OWNER,
        type="demo.noop",
        payload={},
        status=Status.RUNNING,
        priority=Priority.NORMAL,
        max_attempts=1,
        timeout_s=3600,
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        expires_at=int(time.time()) + 3600,
        trace_id="bench",
        attempt=1,
    )


def _load_tasks(config: Config, count: int) -> None:
    client = boto3.client("dynamodb", region_name=config.region)
    dynamodb.ensure_tables(client, config.names.tasks_table, config.names.idempotency_table)
    store = TaskStore(client, config.names.tasks_table)
    for index in range(count):
        store.create(bench_task(index))


async def _taskcast(port: int, count: int) -> None:
    config = Config.from_env(need=["redis", "watch_secret"])
    with mock_aws():
        _load_tasks(config, count)
        # The periodic record check reads DynamoDB, here moto in this very process, whose CPU
        # would swamp what is measured; on AWS it is a network read. Log checks stay as shipped.
        service = RealtimeService(config, limits=Limits(record_check_s=3600))
        ready = asyncio.Event()
        serving = asyncio.create_task(service.serve("127.0.0.1", port, asyncio.Event(), ready))
        await ready.wait()
        print("ready", flush=True)
        await serving


async def _bare(port: int, count: int, rate: float, seconds: float) -> None:
    connections: dict[int, ServerConnection] = {}
    go = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        key = int(json.loads(await ws.recv())["key"])
        connections[key] = ws
        # The client says go once every connection is up and being read, as taskcast's
        # publisher starts only then.
        async for raw in ws:
            if json.loads(raw).get("go"):
                go.set()

    # Uncompressed, as the realtime service is: the same frames on the wire.
    async with serve(handler, "127.0.0.1", port, max_size=4096, ping_interval=20, compression=None):
        print("ready", flush=True)
        await go.wait()
        started = time.perf_counter()
        for sent in range(int(rate * seconds)):
            # Hold the fixed rate: sleep until this message is due.
            delay = started + sent / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            broadcast(
                [connections[sent % count]], json.dumps({"key": sent % count, "t": time.time()})
            )
        broadcast(list(connections.values()), json.dumps({"done": True}))
        await asyncio.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["taskcast", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TASKCAST_LOG_LEVEL", "WARNING")
    if args.mode == "taskcast":
        asyncio.run(_taskcast(args.port, args.count))
    else:
        asyncio.run(_bare(args.port, args.count, args.rate, args.seconds))


if __name__ == "__main__":
    main()
