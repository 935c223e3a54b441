"""Runs the fan-out benchmark at each connection count, for taskcast and for bare websockets."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from taskcore import token

from .server import OWNER, task_id

ROOT = Path(__file__).resolve().parents[2]
CONNECT_CONCURRENCY = 100


@dataclass
class Result:
    latencies_s: list[float] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0
    rss_per_connection_kb: float = 0.0
    connect_s: float = 0.0
    expected: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def delivered_per_s(self) -> float:
        return len(self.latencies_s) / max(self.last - self.first, 1e-9)

    def record(self, sent_at: float) -> None:
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.latencies_s.append(now - sent_at)
        if len(self.latencies_s) == self.expected:
            self.complete.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _connect_all(url: str, count: int, first_message: list[str]) -> list[ClientConnection]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int) -> ClientConnection:
        async with gate:
            ws = await connect(url, open_timeout=60, ping_interval=None, max_size=2**20)
            await ws.send(first_message[index])
            return ws

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def _start(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(argv, env=dict(env), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError(f"{argv} did not start")
    return process


async def _measure(
    mode: str, count: int, rate: float, seconds: float, env: Mapping[str, str]
) -> Result:
    port = _free_port()
    python = sys.executable
    server = _start(
        [
            python,
            "-m",
            "bench.fanout.server",
            mode,
            "--port",
            str(port),
            "--count",
            str(count),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ],
        env,
    )
    result = Result(expected=int(rate * seconds))
    sockets: list[ClientConnection] = []
    try:
        before = _rss_kb(server.pid)
        if mode == "taskcast":
            secret = env["TASKCAST_WATCH_SECRET"].encode()
            hello = [
                json.dumps(
                    {
                        "op": "subscribe",
                        "task_id": task_id(i),
                        "cursor": None,
                        "token": token.issue(secret, task_id(i), OWNER, 3600)[0],
                    }
                )
                for i in range(count)
            ]
        else:
            hello = [json.dumps({"key": i}) for i in range(count)]
        began = time.perf_counter()
        sockets = await _connect_all(f"ws://127.0.0.1:{port}", count, hello)
        if mode == "taskcast":
            await asyncio.gather(*(ws.recv() for ws in sockets))  # every snapshot: all subscribed
        result.rss_per_connection_kb = (_rss_kb(server.pid) - before) / count
        # The client is the measuring instrument: its collector, walking the objects of
        # thousands of connections now and then, would stall its reads and add its own pauses
        # to the latency measured (up to 600 ms of the bare server's p99 at 10,000).
        gc.collect()
        gc.freeze()
        result.connect_s = time.perf_counter() - began

        async def read(ws: ClientConnection) -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message.get("done"):
                    return
                if mode == "taskcast":
                    if message.get("op") != "event":
                        raise RuntimeError(
                            f"unexpected message from the realtime service: {message}"
                        )
                    result.record(float(message["event"]["progress"]["message"]))
                else:
                    result.record(float(message["t"]))

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        if mode == "taskcast":
            publisher = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "bench.fanout.publisher",
                "--count",
                str(count),
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
                env=dict(env),
                cwd=ROOT,
            )
            await publisher.wait()
            try:
                await asyncio.wait_for(result.complete.wait(), 10)
            except TimeoutError:
                got = len(result.latencies_s)
                raise RuntimeError(
                    f"taskcast delivered {got} of {result.expected} events"
                ) from None
        else:
            await sockets[0].send(json.dumps({"go": True}))
            await asyncio.gather(*readers)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        gc.unfreeze()  # the next run's connections are not this one's
        server.terminate()
        server.wait(30)
    return result


def measure(mode: str, count: int, rate: float, seconds: float, env: Mapping[str, str]) -> Result:
    return asyncio.run(_measure(mode, count, rate, seconds, env))
