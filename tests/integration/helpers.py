"""Building blocks for integration tests: records, messages and the event log as written."""

from __future__ import annotations

import time
from typing import Any

import redis

from taskcore.catalogue import Priority, lookup
from taskcore.clock import now_iso
from taskcore.event import Event
from taskcore.names import Names
from taskcore.status import Status
from taskcore.task import Task, new_task_id, new_trace_id


def make_task(
    task_type: str = "demo.sleep",
    payload: dict[str, Any] | None = None,
    owner: str = "alice",
    **changes: Any,
) -> Task:
    kind = lookup(task_type)
    now = now_iso()
    fields: dict[str, Any] = dict(
        task_id=new_task_id(),
        owner=owner,
        type=task_type,
        payload=kind.validate(payload or {}),
        status=Status.PENDING,
        priority=Priority.NORMAL,
        max_attempts=kind.max_attempts,
        timeout_s=kind.timeout_s,
        created_at=now,
        updated_at=now,
        expires_at=int(time.time()) + 3600,
        trace_id=new_trace_id(),
    )
    fields.update(changes)
    return Task(**fields)


def logged_events(client: redis.Redis, names: Names, task_id: str) -> list[Event]:
    """Every event in the task's stream, in order."""
    return [Event.decode(fields[b"e"]) for _, fields in client.xrange(names.event_stream(task_id))]
