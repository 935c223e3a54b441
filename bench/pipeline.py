"""taskcast measured end to end: HTTP submit, relay, RQ worker, websocket watcher."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import connect

from taskcast.local.stack import Stack

from . import cpu
from .baseline import Measured

LIVE = ("running", "succeeded", "failed")


@dataclass
class Watched:
    running_at: float | None = None
    ended_at: float | None = None
    events: int = 0


async def _watch(watch: dict[str, Any], task_id: str, result: Watched) -> None:
    async with connect(watch["url"]) as ws:
        await ws.send(
            json.dumps(
                {"op": "subscribe", "task_id": task_id, "token": watch["token"], "cursor": None}
            )
        )
        async for raw in ws:
            message = json.loads(raw)
            status = (message.get("task") or message.get("event") or {}).get("status")
            if result.running_at is None and status in LIVE:
                result.running_at = time.time()
            if message["op"] == "event":
                result.events += 1
            if message["op"] in ("end", "error"):
                result.ended_at = time.time()
                return


async def _submit_and_watch(http: httpx.AsyncClient) -> tuple[float, Watched]:
    response = await http.post("/tasks", json={"type": "demo.noop"})
    returned = time.time()
    response.raise_for_status()
    body = response.json()
    watched = Watched()
    await _watch(body["watch"], body["task"]["task_id"], watched)
    return returned, watched


async def _measure(
    stack: Stack, api_key: str, samples: int, batch: int, concurrency: int
) -> Measured:
    async with httpx.AsyncClient(
        base_url=stack.edge_url, headers={"X-Api-Key": api_key}, timeout=60
    ) as http:
        await _submit_and_watch(http)  # warm the edge's clients: a cold start is not steady state
        latencies = []
        for _ in range(samples):
            returned, watched = await _submit_and_watch(http)
            assert watched.running_at is not None
            latencies.append(watched.running_at - returned)
        gate = asyncio.Semaphore(concurrency)

        async def one() -> Watched:
            async with gate:
                return (await _submit_and_watch(http))[1]

        began = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(batch)))
        elapsed = time.perf_counter() - began
    undelivered = sum(r.ended_at is None for r in results)
    if undelivered:
        raise RuntimeError(f"{undelivered} watchers never received the end of their task")
    return Measured(latencies, batch / elapsed)


def measure(
    stack: Stack, api_key: str, samples: int, batch: int, concurrency: int
) -> tuple[Measured, dict[str, float]]:
    """The figures, and the CPU milliseconds per task each part of the stack spent on them."""
    pids = stack.pids()
    before = cpu.snapshot(pids)
    measured = asyncio.run(_measure(stack, api_key, samples, batch, concurrency))
    after = cpu.snapshot(pids)
    tasks = samples + batch + 1
    return measured, {name: 1000 * (after[name] - before[name]) / tasks for name in pids}
