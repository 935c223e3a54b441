"""Parsing ``POST /tasks`` bodies into a new, validated, pending task."""

from __future__ import annotations

import json
import time
from typing import Any

from taskcore import catalogue
from taskcore.catalogue import Priority
from taskcore.clock import iso
from taskcore.status import Status
from taskcore.task import Task, new_task_id, new_trace_id

from .errors import BadRequest, TooLarge, Unprocessable, one_of

MAX_BODY_BYTES = 128 * 1024
MAX_DELAY_S = 7 * 86400
FIELDS = frozenset({"type", "payload", "priority", "delay_seconds"})


def parse_body(raw: bytes | None) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 that says what is wrong."""
    if not raw:
        raise BadRequest("the body must be a JSON object with at least a type")
    if len(raw) > MAX_BODY_BYTES:
        raise TooLarge(f"the body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def new_task(body: dict[str, Any], owner: str, task_ttl_s: int) -> Task:
    """A pending task for ``owner`` from a parsed body; 422 if the body does not fit its type."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise Unprocessable(
            f"unknown field(s) {', '.join(unknown)}; a task has {', '.join(sorted(FIELDS))}",
            field=unknown[0],
        )
    task_type = catalogue.lookup(body.get("type"))
    payload = task_type.validate(body.get("payload", {}))
    priority = (
        one_of(Priority, body["priority"], "priority") if "priority" in body else task_type.priority
    )
    delay_s = body.get("delay_seconds", 0)
    if not isinstance(delay_s, int) or isinstance(delay_s, bool) or not 0 <= delay_s <= MAX_DELAY_S:
        raise Unprocessable(
            f"delay_seconds must be a whole number from 0 to {MAX_DELAY_S}", field="delay_seconds"
        )
    now = time.time()
    created = iso(now)
    return Task(
        task_id=new_task_id(),
        owner=owner,
        type=task_type.name,
        payload=payload,
        status=Status.PENDING,
        priority=priority,
        max_attempts=task_type.max_attempts,
        timeout_s=task_type.timeout_s,
        created_at=created,
        updated_at=created,
        expires_at=int(now) + task_ttl_s,
        trace_id=new_trace_id(),
        run_at=iso(now + delay_s) if delay_s else None,
    )
