"""The operations overview: queue depths, workers and tasks in flight, as of one moment.

The sweeper process measures it every :data:`REPORT_INTERVAL_S` seconds from Redis and RabbitMQ
and writes it as one item of the task table; the edge reads that item for ``GET /ops/overview``.
So the edge stays stateless and needs no Redis, and one read answers the page. The figures are
as of ``updated_at``: one report old while a sweeper runs; if none runs, the last report stays
and ages, and ``updated_at`` says so. The item's key is not a task
id (those are UUIDs) and it has no owner or status, so no task lookup, listing or index meets it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

OVERVIEW_KEY = "ops#overview"
REPORT_INTERVAL_S = 5


@dataclass(frozen=True)
class QueueDepth:
    """One RQ queue: jobs waiting, running and scheduled (retries with backoff, delayed starts)."""

    name: str
    queued: int
    started: int
    scheduled: int


@dataclass(frozen=True)
class WorkerState:
    name: str
    state: str
    """RQ's worker state: ``idle``, ``busy``, ``suspended``, ..."""
    queues: tuple[str, ...]
    task_id: str | None = None


@dataclass(frozen=True)
class Overview:
    updated_at: str
    queues: tuple[QueueDepth, ...] = ()
    workers: tuple[WorkerState, ...] = ()
    broker: dict[str, int | None] = field(default_factory=dict)
    """Messages on the broker's queues: ``tasks`` (not yet relayed) and ``dead``."""

    @property
    def in_flight(self) -> int:
        """Tasks running now, by the queues' started registries."""
        return sum(q.started for q in self.queues)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["in_flight"] = self.in_flight
        for worker in body["workers"]:
            worker["queues"] = list(worker["queues"])
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Overview:
        return cls(
            updated_at=body["updated_at"],
            queues=tuple(QueueDepth(**q) for q in body["queues"]),
            workers=tuple(
                WorkerState(w["name"], w["state"], tuple(w["queues"]), w.get("task_id"))
                for w in body["workers"]
            ),
            broker=dict(body["broker"]),
        )


class OverviewStore:
    """The overview item of the task table: put by the reporter, got by the edge."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def put(self, overview: Overview) -> None:
        body = json.dumps(overview.to_json(), separators=(",", ":"))
        self._client.put_item(
            TableName=self._table,
            Item={"task_id": {"S": OVERVIEW_KEY}, "body": {"S": body}},
        )

    def get(self) -> Overview | None:
        """The last overview reported, or ``None`` before the first report."""
        item = self._client.get_item(
            TableName=self._table, Key={"task_id": {"S": OVERVIEW_KEY}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else Overview.from_json(json.loads(item["body"]["S"]))
