"""The chaos harness: run a batch of tasks through a real stack, break something, count the damage.

Every task is watched from the moment it is accepted, by the SDK's resuming watcher. The demo
handlers append ``task_id attempt`` to a ledger file when an attempt succeeds: their side effect.
Once every watcher has its ``end`` (or the deadline passes) the harness counts

- lost: accepted (202) but not in a final status;
- doubled: a side effect recorded more than once for one task;
- undelivered: a watcher that never received an ``end`` carrying the record's final status;

and prints them, so that the test log shows them whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskcast import Client, Submission, Update
from taskcast.local.stack import Ports, Stack

from .conftest import free_port

FINAL = ("succeeded", "failed", "cancelled")

CHAOS_ENV = {
    # Short periods, so that repairs happen within a test: a silent worker is presumed gone after
    # 2 s, the sweeper looks every second, and a task unattended for 4 s is repaired.
    "TASKCAST_HEARTBEAT_TTL": "2",
    "TASKCAST_SWEEP_INTERVAL": "1",
    "TASKCAST_SWEEP_AFTER": "4",
    "TASKCAST_CANCEL_GRACE": "1",
}
API_KEY = "alice-key"


@dataclass
class Counts:
    accepted: int = 0
    lost: int = 0
    doubled: int = 0
    undelivered: int = 0
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"accepted {self.accepted}: lost {self.lost}, doubled {self.doubled}, "
            f"undelivered {self.undelivered}"
        )


@dataclass
class Watched:
    submission: Submission
    updates: list[Update] = field(default_factory=list)


@contextlib.contextmanager
def chaos_stack(
    tmp_path: Path, workers: int = 3, extra_env: Mapping[str, str] | None = None
) -> Iterator[tuple[Stack, Path]]:
    """A stack of this test's namespace with the chaos periods and a ledger; its log on failure."""
    ledger = tmp_path / "ledger"
    ledger.touch()
    env = {**os.environ, **CHAOS_ENV, "TASKCAST_DEMO_LEDGER": str(ledger), **(extra_env or {})}
    log_path = tmp_path / "stack.log"
    with log_path.open("w") as log:
        stack = Stack(
            env, ports=Ports(free_port(), free_port(), free_port()), workers=workers, output=log
        )
        try:
            with stack:
                yield stack, log_path
        except BaseException:
            print(log_path.read_text()[-8000:])
            raise


class Chaos:
    """Submits and watches a batch while a fault is injected; then counts."""

    def __init__(self, stack: Stack, ledger: Path) -> None:
        self.stack = stack
        self.ledger = ledger
        self.client = Client(stack.edge_url, API_KEY, timeout_s=30)
        self.watched: list[Watched] = []
        self._watchers: list[asyncio.Task[None]] = []

    async def submit(self, task_type: str, payload: dict[str, Any], **options: Any) -> Watched:
        """Submit one task and start watching it."""
        submission = await asyncio.to_thread(self.client.submit, task_type, payload, **options)
        watched = Watched(submission)
        self.watched.append(watched)
        self._watchers.append(asyncio.create_task(self._watch(watched)))
        return watched

    async def submit_many(
        self, count: int, task_type: str, payload: dict[str, Any], *, spacing_s: float = 0.0
    ) -> None:
        for _ in range(count):
            await self.submit(task_type, payload)
            await asyncio.sleep(spacing_s)

    async def _watch(self, watched: Watched) -> None:
        task_id = watched.submission.task_id
        async for update in self.client.watch(task_id, watched.submission.watch, max_backoff_s=2):
            watched.updates.append(update)

    async def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 60, what: str = "condition"
    ) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    async def run(
        self, load: Awaitable[None], fault: Awaitable[None], *, timeout_s: float = 120
    ) -> Counts:
        """Run ``load`` and ``fault`` together, wait for every watcher to end, and count."""
        await asyncio.gather(load, fault)
        if self._watchers:
            await asyncio.wait(self._watchers, timeout=timeout_s)
        for watcher in self._watchers:
            watcher.cancel()
        return await asyncio.to_thread(self.count)

    def count(self) -> Counts:
        side_effects = Counter(line.split()[0] for line in self.ledger.read_text().splitlines())
        counts = Counts(accepted=len(self.watched))
        for watched in self.watched:
            task_id = watched.submission.task_id
            record = self.client.get(task_id)
            if record["status"] not in FINAL:
                counts.lost += 1
                counts.details.append(f"lost {task_id}: {record['status']}")
            if side_effects[task_id] > 1:
                counts.doubled += 1
                counts.details.append(f"doubled {task_id}: {side_effects[task_id]} side effects")
            if record["status"] == "succeeded" and side_effects[task_id] == 0:
                counts.details.append(f"succeeded without its side effect: {task_id}")
            ends = [u for u in watched.updates if u.op == "end"]
            if not ends or ends[-1].status != record["status"]:
                counts.undelivered += 1
                seen = [u.status for u in watched.updates]
                counts.details.append(f"undelivered {task_id}: {record['status']}, saw {seen}")
        return counts

    def close(self) -> None:
        self.client.close()


def report(scenario: str, counts: Counts) -> None:
    """Print the counts where ``pytest -s`` and the test log show them, then insist on zero."""
    print(f"\nchaos {scenario}: {counts}")
    for line in counts.details[:20]:
        print(f"  {line}")
    assert (counts.lost, counts.doubled, counts.undelivered) == (0, 0, 0), counts.details[:20]
    assert not counts.details, counts.details[:20]
