"""The edge under load: N ``POST /tasks`` at concurrency C, as ``hey -n N -c C`` sends them.

C clients, each on one keep-alive HTTP/1.1 connection (opened again if the server closes it),
take the next request as soon as their last one is answered, until N have been sent. The client
is a few lines on asyncio's streams rather than httpx, so that on a machine of two cores the
load generator takes little of the CPU the edge needs (as ``hey``, in Go, does).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from taskcast.local.stack import Stack

from . import cpu
from .stats import percentile

TASK = {"type": "demo.noop"}


@dataclass(frozen=True)
class SubmitLoad:
    """What a load run measured: rate, latency percentiles and how each request ended."""

    requests: int
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    accepted: int
    """Requests answered ``202``."""
    errors: int
    """Requests answered otherwise, or not answered at all."""
    statuses: dict[str, int] = field(default_factory=dict)
    """How many requests ended in each status (``"error: ..."`` for no answer), for the report."""

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "requests_per_s": round(self.requests_per_s, 1),
            "p50_ms": round(self.p50_ms, 1),
            "p99_ms": round(self.p99_ms, 1),
            "accepted": self.accepted,
            "errors": self.errors,
        }


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads its whole answer."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        """Send ``raw`` (opening the connection first if need be); the answer's status code."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        try:
            self._writer.write(raw)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines if line)
            }
            await self._reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split(" ", 2)[1])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def post_request(host: str, port: int, path: str, api_key: str, body: bytes) -> bytes:
    """The bytes of a keep-alive ``POST`` of a JSON body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Api-Key: {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


async def load(
    url: str,
    api_key: str,
    requests: int = 1000,
    concurrency: int = 50,
    task: dict[str, Any] = TASK,
    timeout_s: float = 30.0,
) -> SubmitLoad:
    """Send ``requests`` submissions of ``task`` to the edge at ``url``, ``concurrency`` at once."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = post_request(host, port, "/tasks", api_key, json.dumps(task).encode())
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    left = requests

    async def client() -> None:
        nonlocal left
        connection = _Connection(host, port)
        try:
            while left > 0:
                left -= 1
                began = time.perf_counter()
                try:
                    status = str(await asyncio.wait_for(connection.request(raw), timeout_s))
                except (
                    OSError,  # TimeoutError among them
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    ValueError,
                    IndexError,
                ) as exc:  # no answer, or none in HTTP
                    status = f"error: {type(exc).__name__}"
                latencies.append(time.perf_counter() - began)
                statuses[status] += 1
        finally:
            connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    accepted = statuses["202"]
    return SubmitLoad(
        requests=requests,
        concurrency=concurrency,
        requests_per_s=requests / elapsed,
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
        accepted=accepted,
        errors=requests - accepted,
        statuses=dict(statuses),
    )


WARMUP = 50
"""Submissions sent first and not counted: the edge's first requests build its clients and open
its connections, a cold start, not its steady state."""


def measure(
    url: str, api_key: str, requests: int = 1000, concurrency: int = 50, warmup: int = WARMUP
) -> SubmitLoad:
    """:func:`load`, after ``warmup`` submissions at the same concurrency."""
    if warmup:
        asyncio.run(load(url, api_key, warmup, min(concurrency, warmup)))
    return asyncio.run(load(url, api_key, requests, concurrency))


def run(
    stack: Stack, api_key: str, requests: int = 1000, concurrency: int = 50
) -> tuple[SubmitLoad, dict[str, float]]:
    """:func:`measure` against a running stack; and the CPU milliseconds each part of the stack
    spent per request meanwhile (the relay and workers too: they take the tasks as they come)."""
    asyncio.run(load(stack.edge_url, api_key, WARMUP, min(concurrency, WARMUP)))
    pids = stack.pids()
    before = cpu.snapshot(pids)
    measured = measure(stack.edge_url, api_key, requests, concurrency, warmup=0)
    after = cpu.snapshot(pids)
    return measured, {name: 1000 * (after[name] - before[name]) / requests for name in pids}


def table(measured: SubmitLoad, cpu_ms: dict[str, float]) -> str:
    """The load's figures as a table, and the CPU per request of the parts that spent any."""
    rows = [
        ("requests/s", f"{measured.requests_per_s:.1f}"),
        ("p50 (ms)", f"{measured.p50_ms:.1f}"),
        ("p99 (ms)", f"{measured.p99_ms:.1f}"),
        ("accepted (202)", f"{measured.accepted} of {measured.requests}"),
    ]
    others = {s: n for s, n in measured.statuses.items() if s != "202"}
    if others:
        rows.append(("not accepted", ", ".join(f"{n} x {s}" for s, n in sorted(others.items()))))
    rows += [
        (f"CPU per request: {part} (ms)", f"{ms:.2f}")
        for part, ms in sorted(cpu_ms.items(), key=lambda item: -item[1])
        if ms >= 0.01
    ]
    title = f"submit load: {measured.requests} x POST /tasks, {measured.concurrency} at once"
    width = max(len(title), *(len(name) for name, _ in rows))
    lines = [f"| {title:<{width}} | {'':>14} |", f"|{'-' * (width + 2)}|{'-' * 16}|"]
    lines += [f"| {name:<{width}} | {value:>14} |" for name, value in rows]
    return "\n".join(lines)
