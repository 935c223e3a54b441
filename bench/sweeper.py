"""The sweeper's pass and the status listing against a task table holding N finished tasks.

For each N, a fresh table on a moto server (the bench's emulator, as the stack runs it) gets N
finished tasks (``succeeded``, ``failed``, ``cancelled``, over four owners and four types) and 50
unfinished ones (``pending``, ``queued``, ``running``, ``retrying``). Then, through the public
API only: :meth:`Sweeper.sweep` (a pass that finds nothing to repair, as nearly every pass
does) and ``TaskStore.list_by_owner(owner, status=running)`` (what ``GET /tasks?status=running``
asks), each timed as the median of a few runs, with the items DynamoDB read for it (the
``ScannedCount`` of its queries) and its calls.

The items read are the figure that carries over to DynamoDB, whose ``Query`` costs what it
reads. The times are moto's: moto answers every ``Query`` by going through every item of the
table, so even a query that reads nothing grows with the table (``emulator_query_ms``: a query
for a task id that no task has).

The records are written with ``BatchWriteItem``, 25 at a time from a few threads, each the
``Task.to_item`` of a task as it would be after its run; a task first taken through the real
lifecycle (``create``, ``claim``, ``transition``) checks that this is the shape the code
writes, so the bench keeps measuring what the code does when the records change.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from infra import dynamodb
from taskcore.clock import iso
from taskcore.config import Config
from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Progress, Task, TaskError, new_task_id
from taskcore.tasktype import Priority
from worker_container.services import Services
from worker_container.sweeper import Sweeper

OWNERS = ("alice", "bob", "carol", "dave")
TYPES = ("demo.noop", "demo.sleep", "demo.flaky", "demo.stream")
FINISHED = (Status.SUCCEEDED,) * 16 + (Status.FAILED,) * 3 + (Status.CANCELLED,)
"""The finished statuses in proportion: 80 % succeeded, 15 % failed, 5 % cancelled."""
UNFINISHED = (Status.PENDING, Status.QUEUED, Status.RUNNING, Status.RETRYING)
UNFINISHED_COUNT = 50
BATCH = 25
"""The most items one ``BatchWriteItem`` takes."""
FILL_THREADS = 4
BUDGET_S = 120.0
"""How long one timed run may take before it is given up (see :class:`OverBudget`)."""


class OverBudget(Exception):
    """A timed run took longer than its budget: moto makes each query of a large table slow,
    and a listing that pages through a long history makes many."""


@dataclass
class Figures:
    """One table size's figures."""

    size: int
    fill_s: float
    sweep_ms: float | None
    sweep_items_read: int
    sweep_calls: int
    status_list_ms: float | None
    """``None``: the listing was given up after :data:`BUDGET_S`, its reads and calls so far
    below are a lower bound."""
    status_list_items_read: int
    status_list_calls: int
    emulator_query_ms: float | None


class Reads:
    """The DynamoDB calls and items read by the clients built after it, counted by botocore's
    ``after-call`` event on boto3's default session (where ``Services.build`` makes its client).

    The session takes its credentials from ``env``: the bench's own environment is not the
    process's.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.calls = 0
        self.items = 0
        self.deadline: float | None = None
        """A run that calls DynamoDB after this (``time.monotonic()``) gets :class:`OverBudget`."""
        self._lock = threading.Lock()
        boto3.setup_default_session(
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        )
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("after-call.dynamodb", self._count)
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb", self._check_budget)

    def _check_budget(self, **_: Any) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OverBudget

    def _count(self, parsed: Mapping[str, Any], **_: Any) -> None:
        with self._lock:
            self.calls += 1
            self.items += int(parsed.get("ScannedCount", 0))

    @contextmanager
    def counting(self) -> Iterator[list[int]]:
        """Yields ``[calls, items]``, filled in with what was read inside the block."""
        delta = [0, 0]
        calls, items = self.calls, self.items
        try:
            yield delta
        finally:
            delta[:] = [self.calls - calls, self.items - items]


def measure(
    env: Mapping[str, str], sizes: list[int], passes: int = 3, budget_s: float = BUDGET_S
) -> list[Figures]:
    """The figures at each table size, on the moto server that ``AWS_ENDPOINT_URL`` names.

    ``env`` is the bench's environment (Redis, region, credentials); each size gets a namespace
    of its own, its tables deleted afterwards.
    """
    reads = Reads(env)
    return [_measure_one(env, size, passes, budget_s, reads) for size in sizes]


def _measure_one(
    env: Mapping[str, str], size: int, passes: int, budget_s: float, reads: Reads
) -> Figures:
    namespace = f"sweep-{uuid.uuid4().hex[:8]}"
    config = Config.from_env({**env, "TASKCAST_NAMESPACE": namespace}, need=["redis"])
    # Nothing is stale: the pass reads every live task and finds nothing to repair, as
    # nearly every pass does (a repair's cost belongs to the fault, not to the pass).
    config = dataclasses.replace(config, stale_after_s=86400, heartbeat_ttl_s=86400)
    client = boto3.client(  # type: ignore[call-overload]
        "dynamodb",
        config=BotoConfig(max_pool_connections=FILL_THREADS),
        **config.aws_client_kwargs(),
    )
    names = config.names
    dynamodb.ensure_tables(client, names.tasks_table, names.idempotency_table)
    try:
        store = TaskStore(client, names.tasks_table)
        _check_shape(store, client, names.tasks_table)
        began = time.perf_counter()
        _fill(client, names.tasks_table, (_finished(i) for i in range(size)))
        fill_s = time.perf_counter() - began
        # Written last and just now, so that none is stale however long the fill took.
        for i in range(UNFINISHED_COUNT):
            store.create(_unfinished(i))
        svc = Services.build(config)
        sweeper = Sweeper(svc, lambda _: None)
        sweep_ms, (sweep_calls, sweep_items) = _timed(sweeper.sweep, passes, reads, budget_s)
        list_ms, (list_calls, list_items) = _timed(
            lambda: svc.store.list_by_owner(OWNERS[0], status=Status.RUNNING),
            passes,
            reads,
            budget_s,
        )
        empty_ms, _ = _timed(
            lambda: _query_nothing(client, names.tasks_table), passes, reads, budget_s
        )
        svc.redis.close()
    finally:
        dynamodb.delete_tables(client, names.tasks_table, names.idempotency_table)
    return Figures(
        size=size,
        fill_s=fill_s,
        sweep_ms=sweep_ms,
        sweep_items_read=sweep_items,
        sweep_calls=sweep_calls,
        status_list_ms=list_ms,
        status_list_items_read=list_items,
        status_list_calls=list_calls,
        emulator_query_ms=empty_ms,
    )


def _timed(
    run: Callable[[], object], passes: int, reads: Reads, budget_s: float
) -> tuple[float | None, list[int]]:
    """The median milliseconds of ``passes`` runs, and the calls and items read by the last.

    A run over ``budget_s`` is given up, and the rest with it: ``None``, and what it read so far.
    """
    times = []
    counted = [0, 0]
    for _ in range(passes):
        reads.deadline = time.monotonic() + budget_s
        try:
            with reads.counting() as counted:
                began = time.perf_counter()
                run()
                times.append(1000 * (time.perf_counter() - began))
        except OverBudget:
            return None, counted
        finally:
            reads.deadline = None
    return statistics.median(times), counted


def _query_nothing(client: Any, table: str) -> None:
    """A ``Query`` on the table's own key that matches no item: DynamoDB reads nothing for it,
    moto goes through the whole table."""
    client.query(
        TableName=table,
        KeyConditionExpression="task_id = :id",
        ExpressionAttributeValues={":id": {"S": "no-such-task"}},
    )


def _fill(client: Any, table: str, tasks: Iterator[Task]) -> None:
    """Write ``tasks`` with ``BatchWriteItem``, 25 at a time, from a few threads."""

    def write(batch: list[Task]) -> None:
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": t.to_item()}} for t in batch]
        while requests:  # DynamoDB may hand some back unprocessed, to be sent again
            response = client.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])

    def batches() -> Iterator[list[Task]]:
        batch: list[Task] = []
        for task in tasks:
            batch.append(task)
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        for _ in pool.map(write, batches()):
            pass


def _check_shape(store: TaskStore, client: Any, table: str) -> None:
    """Fail unless a task taken through the lifecycle is stored as ``to_item`` writes it."""
    task = _task(0, Status.PENDING, time.time())
    store.create(task)
    store.claim(task.task_id, frozenset({Status.PENDING}), Status.QUEUED)
    running = store.claim(
        task.task_id, frozenset({Status.QUEUED}), Status.RUNNING, start_attempt=True
    )
    store.transition(running, Status.SUCCEEDED, finished_at=iso(time.time()), result={})
    stored = client.get_item(TableName=table, Key={"task_id": {"S": task.task_id}})["Item"]
    client.delete_item(TableName=table, Key={"task_id": {"S": task.task_id}})
    # The attributes are what decides which indexes hold a record; their values are the task's.
    written = Task.from_item(stored).to_item()
    if stored.keys() != written.keys():
        differ = sorted(stored.keys() ^ written.keys())
        raise RuntimeError(
            f"a finished task is not stored with the attributes Task.to_item writes ({differ}): "
            "bench/sweeper.py must write its records another way"
        )


def _finished(i: int) -> Task:
    """The ``i``-th finished task: one a second into the past, as a busy day's history."""
    status = FINISHED[i % len(FINISHED)]
    task = _task(i, status, time.time() - 60 - i)
    done = iso(time.time() - 59 - i)
    if status is Status.SUCCEEDED:
        return dataclasses.replace(
            task, progress=Progress(100.0), result={"ok": True}, finished_at=done
        )
    if status is Status.FAILED:
        return dataclasses.replace(
            task, error=TaskError("failed", "simulated failure"), finished_at=done
        )
    return dataclasses.replace(task, cancel_requested_at=done, finished_at=done)


def _unfinished(i: int) -> Task:
    status = UNFINISHED[i % len(UNFINISHED)]
    task = _task(i, status, time.time())
    if status is Status.PENDING:
        return dataclasses.replace(task, attempt=0, started_at=None)
    if status is Status.QUEUED:
        return dataclasses.replace(task, attempt=0, started_at=None, waiting=None)
    if status is Status.RETRYING:
        return dataclasses.replace(task, retry_at=iso(time.time() + 3600))
    return task


def _task(i: int, status: Status, at: float) -> Task:
    moment = iso(at)
    return Task(
        task_id=new_task_id(),
        owner=OWNERS[i % len(OWNERS)],
        type=TYPES[(i // len(OWNERS)) % len(TYPES)],
        payload={"n": i},
        status=status,
        priority=Priority.NORMAL,
        max_attempts=3,
        timeout_s=300,
        created_at=moment,
        updated_at=moment,
        expires_at=int(at) + 30 * 86400,
        trace_id=uuid.uuid4().hex,
        attempt=1,
        started_at=moment,
    )
