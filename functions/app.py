"""taskcast's HTTP edge: thin Lambda handlers that parse, validate, authorise, store, publish."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from chalice.app import Response
from chalicelib import services
from chalicelib.errors import (
    NotFound,
    Unauthorized,
    Unavailable,
    Unprocessable,
    json_errors,
    one_of,
)
from chalicelib.publisher import PublishError
from chalicelib.submission import new_task, parse_body
from chalicelib.threadsafe import ThreadSafeChalice

from taskcore import token
from taskcore.errors import ConditionLost
from taskcore.idempotency import IdempotencyKey
from taskcore.message import CancelRequested, Submitted
from taskcore.status import Status
from taskcore.task import Task

app = ThreadSafeChalice(app_name="taskcast")
app.log.setLevel(logging.INFO)
log = app.log

MAX_LIST_LIMIT = 100


def _owner() -> str:
    """The owner the request's ``X-Api-Key`` belongs to, or 401."""
    key = app.current_request.headers.get("x-api-key")
    if not key:
        raise Unauthorized("send your API key in the X-Api-Key header")
    owner = services.current().config.owner_of(key)
    if owner is None:
        raise Unauthorized("the API key is not valid")
    return owner


def _own_task(task_id: str, owner: str) -> Task:
    """The task if it exists and is the owner's; 404 alike otherwise, so ids reveal nothing."""
    try:
        uuid.UUID(task_id)
    except ValueError:
        raise NotFound(f"no task {task_id}") from None
    task = services.current().store.get(task_id)
    if task is None or task.owner != owner:
        raise NotFound(f"no task {task_id}")
    return task


def _watch(task: Task) -> dict[str, Any]:
    config = services.current().config
    watch_token, expires_at = token.issue(
        config.secret, task.task_id, task.owner, config.watch_token_ttl_s
    )
    return {"url": config.realtime_url, "token": watch_token, "expires_at": expires_at}


@app.route("/health", methods=["GET"])
def health() -> dict[str, Any]:
    return {"ok": True}


@app.route("/task-types", methods=["GET"])
@json_errors
def list_task_types() -> dict[str, Any]:
    """The task types this deployment accepts: payload JSON Schema, defaults, limits."""
    catalogue = services.current().catalogue
    return {"task_types": [catalogue[name].to_json() for name in sorted(catalogue)]}


@app.route("/tasks", methods=["POST"], content_types=["application/json"])
@json_errors
def submit() -> Response:
    """Accept a task: ``202`` with its record, ``Location`` and a watch token.

    With an ``Idempotency-Key`` header, a request that repeats an earlier one (same owner, key
    and body) answers with the earlier task and ``Idempotent-Replayed: true``, creating and
    publishing nothing; the same key with another body is ``422``.
    """
    owner = _owner()
    return _accept(parse_body(app.current_request.raw_body), owner)


@app.route("/{shortcut}", methods=["POST"], content_types=["application/json"])
@json_errors
def submit_shortcut(shortcut: str) -> Response:
    """``POST /<shortcut>``: submit the task type that declares it, the body as its payload.

    ``POST /images {"url", "filter"}`` answers as ``POST /tasks`` would with
    ``{"type": "image.filter", "payload": {"url", "filter"}}``.
    """
    task_type = services.current().catalogue.by_shortcut(shortcut)
    if task_type is None:
        raise NotFound(f"no route POST /{shortcut}")
    owner = _owner()
    payload = parse_body(app.current_request.raw_body)
    return _accept({"type": task_type.name, "payload": payload}, owner)


def _accept(body: dict[str, Any], owner: str) -> Response:
    """Validate, record and publish a submission; the ``202`` (or the idempotent replay)."""
    svc = services.current()
    task = new_task(body, owner, svc.config.task_ttl_s, svc.catalogue, svc.payloads)
    key = app.current_request.headers.get("idempotency-key")
    if key is None:
        svc.store.create(task)
    else:
        idempotency = IdempotencyKey.parse(owner, key, body, svc.config.idempotency_ttl_s)
        task, created = svc.store.create_once(task, idempotency)
        if not created:
            log.info("task %s: idempotent replay of key %r for %s", task.task_id, key, owner)
            return _accepted(task, {"Idempotent-Replayed": "true"})
    try:
        svc.publisher.submitted(Submitted(task.task_id, task.type, task.trace_id))
    except PublishError:
        # The record is written, so the task is accepted: the sweeper publishes pending tasks
        # that nobody has picked up. Refusing here would make a retrying client submit twice.
        log.warning(
            "task %s: not published; the sweeper will publish it", task.task_id, exc_info=True
        )
    log.info(
        "task %s (%s) accepted for %s [trace %s]", task.task_id, task.type, owner, task.trace_id
    )
    return _accepted(task)


def _accepted(task: Task, headers: dict[str, str] | None = None) -> Response:
    return Response(
        {"task": task.to_public(), "watch": _watch(task)},
        status_code=202,
        headers={"Location": f"/tasks/{task.task_id}", **(headers or {})},
    )


@app.route("/tasks/{task_id}", methods=["GET"])
@json_errors
def get_task(task_id: str) -> dict[str, Any]:
    return {"task": _own_task(task_id, _owner()).to_public()}


@app.route("/tasks/{task_id}/watch", methods=["POST"])
@json_errors
def new_watch_token(task_id: str) -> dict[str, Any]:
    """A fresh watch token for one of the owner's tasks (the one from submit has expired)."""
    return {"watch": _watch(_own_task(task_id, _owner()))}


@app.route("/tasks/{task_id}/cancel", methods=["POST"])
@json_errors
def cancel_task(task_id: str) -> Response:
    """Ask for the owner's task to be cancelled; idempotent, and a no-op once it has ended.

    ``202``: the request is on its way; the task's watchers see ``cancelled`` when it is done.
    ``200``: the task had ended already, and stays as it ended.
    """
    task = _own_task(task_id, _owner())
    store = services.current().store
    try:
        # Recorded first: from now on no attempt starts, whatever the messages' order.
        task = store.request_cancel(task.task_id)
    except ConditionLost:
        ended = store.get(task.task_id)
        assert ended is not None  # records are never deleted, only expired after days
        return Response({"task": ended.to_public(), "cancel": "ended"}, status_code=200)
    try:
        services.current().publisher.cancel(CancelRequested(task.task_id))
    except PublishError:
        log.exception("task %s: cancel request not published", task.task_id)
        raise Unavailable(
            "the task queue is unavailable; try again", headers={"Retry-After": "5"}
        ) from None
    log.info("task %s: cancel requested", task.task_id)
    return Response({"task": task.to_public(), "cancel": "requested"}, status_code=202)


@app.route("/tasks", methods=["GET"])
@json_errors
def list_tasks() -> dict[str, Any]:
    owner = _owner()
    params = app.current_request.query_params or {}
    status = one_of(Status, params["status"], "status") if "status" in params else None
    task_type = params.get("type")
    if task_type is not None:
        services.current().catalogue.lookup(task_type)
    limit_text = params.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIST_LIMIT:
        raise Unprocessable(
            f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}", field="limit"
        )
    page = services.current().store.list_by_owner(
        owner,
        status=status,
        task_type=task_type,
        limit=int(limit_text),
        cursor=params.get("cursor"),
    )
    return {"tasks": [t.to_public() for t in page.tasks], "next_cursor": page.next_cursor}
