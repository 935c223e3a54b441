"""Parsing ``POST /tasks`` bodies into a new, validated, pending task."""

from __future__ import annotations

import time
from typing import Any

from taskcore import limits, trace
from taskcore.catalogue import Catalogue
from taskcore.clock import iso
from taskcore.errors import BadJSON
from taskcore.errors import TooLarge as InputTooLarge
from taskcore.status import Status
from taskcore.task import Task, new_task_id
from taskcore.tasktype import OPTION_FIELDS

from .errors import BadRequest, TooLarge, Unprocessable
from .payloads import Payloads

FIELDS = frozenset({"type", "payload", *OPTION_FIELDS})


def parse_body(raw: bytes | None) -> dict[str, Any]:
    """The request body as a JSON object within :mod:`taskcore.limits`, or a 400/413 naming
    what is wrong (the limit, if it is one)."""
    if not raw:
        raise BadRequest("the body must be a JSON object with at least a type")
    try:
        body = limits.loads(raw, what="the body", max_bytes=limits.MAX_BODY_BYTES)
    except BadJSON as exc:
        raise BadRequest(exc.message) from None
    except InputTooLarge as exc:
        raise TooLarge(exc.message) from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def new_task(
    body: dict[str, Any],
    owner: str,
    task_ttl_s: int,
    catalogue: Catalogue,
    payloads: Payloads,
    traceparent: str | None = None,
) -> Task:
    """A pending task for ``owner`` from a parsed body; 422 if the body does not fit its type.

    The options in force are the type's defaults, changed by the body's option fields within
    the type's limits. The task continues the trace of the request's ``traceparent`` header,
    if it is a valid one, and starts a new trace otherwise (:func:`taskcore.trace.continued`).
    """
    task_trace = trace.continued(traceparent)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise Unprocessable(
            f"unknown field(s) {', '.join(unknown)}; a task has {', '.join(sorted(FIELDS))}",
            field=unknown[0],
        )
    task_type = catalogue.lookup(body.get("type"))
    options = task_type.options(body)
    payload = payloads.validate(task_type, body.get("payload"))
    now = time.time()
    created = iso(now)
    return Task(
        task_id=new_task_id(),
        owner=owner,
        type=task_type.name,
        payload=payload,
        status=Status.PENDING,
        priority=options.priority,
        max_attempts=options.max_attempts,
        timeout_s=options.timeout_s,
        created_at=created,
        updated_at=created,
        expires_at=int(now) + task_ttl_s,
        trace_id=task_trace.trace_id,
        traceparent=task_trace.format(),
        run_at=iso(now + options.delay_s) if options.delay_s else None,
        queue=task_type.queue,
        retry_base_s=task_type.retry_base_s,
        retry_cap_s=task_type.retry_cap_s,
        queue_timeout_s=task_type.queue_timeout_s,
    )


def resubmission(task: Task) -> dict[str, Any]:
    """The body that submits ``task`` again: its type, payload and the options it ran with."""
    return {
        "type": task.type,
        "payload": task.payload,
        "priority": str(task.priority),
        "max_attempts": task.max_attempts,
        "timeout_s": task.timeout_s,
    }
