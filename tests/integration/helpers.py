"""Building blocks for integration tests: records, messages and the event log as written."""

from __future__ import annotations

import time
from typing import Any

import redis
from rq import Queue

from taskcore import eventlog, trace
from taskcore.clock import now_iso
from taskcore.definition import catalogue
from taskcore.event import Event
from taskcore.names import Names
from taskcore.status import Status
from taskcore.task import Task, new_task_id
from taskcore.tasktype import DEFAULT_QUEUE, Priority
from worker_container.services import Services

DEMO = catalogue(["taskcast_demo.tasks"])


def make_task(
    task_type: str = "demo.sleep",
    payload: dict[str, Any] | None = None,
    owner: str = "alice",
    **changes: Any,
) -> Task:
    kind = DEMO.lookup(task_type)
    now = now_iso()
    fields: dict[str, Any] = dict(
        task_id=new_task_id(),
        owner=owner,
        type=task_type,
        payload=kind.with_defaults(payload or {}),
        status=Status.PENDING,
        priority=Priority.NORMAL,
        max_attempts=kind.max_attempts,
        timeout_s=kind.timeout_s,
        created_at=now,
        updated_at=now,
        expires_at=int(time.time()) + 3600,
        trace_id=trace.Trace.new().trace_id,
        queue=kind.queue,
        retry_base_s=kind.retry_base_s,
        retry_cap_s=kind.retry_cap_s,
    )
    fields.update(changes)
    return Task(**fields)


def default_queues(svc: Services) -> list[Queue]:
    """The RQ queues of the default queue, in the order a worker serves them."""
    return [svc.queue(p, DEFAULT_QUEUE) for p in Priority]


def logged_events(client: redis.Redis, names: Names, task_id: str) -> list[Event]:
    """Every event in the task's stream, in order."""
    return [
        eventlog.decode_entry(fields) for _, fields in client.xrange(names.event_stream(task_id))
    ]
