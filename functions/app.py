"""taskcast's HTTP edge: thin Lambda handlers that parse, validate, authorise, store, publish."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalice.app import Request, Response
from chalicelib import cors, deadletters, openapi, services
from chalicelib.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    Unavailable,
    Unprocessable,
    in_api_shape,
    json_errors,
    one_of,
)
from chalicelib.publisher import PublishError
from chalicelib.submission import new_task, parse_body, resubmission
from chalicelib.threadsafe import ThreadSafeChalice

from taskcore import limits, token
from taskcore.clock import iso
from taskcore.errors import ConditionLost, ConfigError
from taskcore.idempotency import IdempotencyKey
from taskcore.message import CancelRequested, Submitted
from taskcore.status import Status
from taskcore.store import MAX_LIST_LIMIT
from taskcore.task import Task

app = ThreadSafeChalice(app_name="taskcast")
app.log.setLevel(logging.INFO)
log = app.log

BROKER_OPERATION_TIMEOUT_S = 25.0
"""Under API Gateway's 29 s, so a slow dead-letter operation still answers in our own words."""


@app.middleware("http")
def cors_headers(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """CORS headers on every answer, errors included, for the allowed origins only."""
    response = get_response(request)
    try:
        allowed = services.current().config.allowed_origins
    except ConfigError:
        allowed = ()  # the view has answered the misconfiguration already, and logged it
    response.headers.update(cors.headers(request.headers.get("origin"), allowed))
    return response


# Inside the CORS middleware, so the answers it rewrites get CORS headers too.
app.register_middleware(in_api_shape, "http")


def _owner() -> str:
    """The owner the request's ``X-Api-Key`` belongs to, or 401."""
    key = app.current_request.headers.get("x-api-key")
    if not key:
        raise Unauthorized("send your API key in the X-Api-Key header")
    owner = services.current().config.owner_of(key)
    if owner is None:
        raise Unauthorized("the API key is not valid")
    return owner


def _operator() -> str:
    """The owner of the request's key if it is an operator's (``TASKCAST_OPERATORS``), or 403."""
    owner = _owner()
    if owner not in services.current().config.operators:
        raise Forbidden("this API key is not an operator's")
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
    key = app.current_request.headers.get("idempotency-key")
    traceparent = app.current_request.headers.get("traceparent")
    return _accept(parse_body(app.current_request.raw_body), owner, key, traceparent)


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
    key = app.current_request.headers.get("idempotency-key")
    traceparent = app.current_request.headers.get("traceparent")
    return _accept({"type": task_type.name, "payload": payload}, owner, key, traceparent)


def _accept(
    body: dict[str, Any], owner: str, key: str | None, traceparent: str | None = None
) -> Response:
    """Validate, record and publish a submission; the ``202`` (or the idempotent replay)."""
    svc = services.current()
    task = new_task(body, owner, svc.config.task_ttl_s, svc.catalogue, svc.payloads, traceparent)
    if key is None:
        svc.store.create(task)
    else:
        idempotency = IdempotencyKey.parse(owner, key, body, svc.config.idempotency_ttl_s)
        task, created = svc.store.create_once(task, idempotency)
        if not created:
            log.info(
                "task %s: idempotent replay of key %r for %s [trace %s]",
                task.task_id,
                key,
                owner,
                task.trace_id,
            )
            return _accepted(task, {"Idempotent-Replayed": "true"})
    try:
        svc.publisher.submitted(Submitted.of(task))
    except PublishError:
        # The record is written, so the task is accepted: the sweeper publishes pending tasks
        # that nobody has picked up. Refusing here would make a retrying client submit twice.
        log.warning(
            "task %s: not published; the sweeper will publish it [trace %s]",
            task.task_id,
            task.trace_id,
            exc_info=True,
        )
    log.info(
        "task %s (%s) accepted for %s [trace %s]", task.task_id, task.type, owner, task.trace_id
    )
    return _accepted(task)


def _accepted(task: Task, headers: dict[str, str] | None = None) -> Response:
    trace = {} if task.traceparent is None else {"traceparent": task.traceparent}
    return Response(
        {"task": task.to_public(), "watch": _watch(task)},
        status_code=202,
        headers={"Location": f"/tasks/{task.task_id}", **trace, **(headers or {})},
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


@app.route("/tasks/{task_id}/resubmit", methods=["POST"])
@json_errors
def resubmit_task(task_id: str) -> Response:
    """Submit the owner's failed or cancelled task again, as a new task with its options.

    Idempotent for ``TASKCAST_IDEMPOTENCY_TTL``: the same task resubmitted twice makes one new
    task (the second answer is the first's, with ``Idempotent-Replayed: true``).
    """
    return _resubmit(_own_task(task_id, _owner()))


def _resubmit(task: Task) -> Response:
    if task.status not in (Status.FAILED, Status.CANCELLED):
        raise Conflict(
            f"task {task.task_id} is {task.status}; only failed or cancelled tasks are "
            "submitted again",
            field="status",
        )
    return _accept(resubmission(task), task.owner, f"resubmit-{task.task_id}")


@app.route("/tasks", methods=["GET"])
@json_errors
def list_tasks() -> dict[str, Any]:
    """The key's tasks, newest first, by status, type and ``created_at`` range, in pages."""
    owner = _owner()
    params = app.current_request.query_params or {}
    status = one_of(Status, params["status"], "status") if "status" in params else None
    task_type = params.get("type")
    if task_type is not None:
        services.current().catalogue.lookup(task_type)
    page = services.current().store.list_by_owner(
        owner,
        status=status,
        task_type=task_type,
        limit=limits.whole_number(params.get("limit", "20"), "limit", 1, MAX_LIST_LIMIT),
        cursor=params.get("cursor"),
        since=_moment(params, "since"),
        until=_moment(params, "until"),
    )
    return {"tasks": [t.to_public() for t in page.tasks], "next_cursor": page.next_cursor}


def _moment(params: dict[str, str], name: str) -> str | None:
    """An ISO 8601 query parameter as the store's timestamp form; 422 naming it if malformed."""
    text = params.get(name)
    if text is None:
        return None
    try:
        if not text.isascii() or len(text) > 40:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # times without an offset are UTC, like the API's
        # Converting can leave the years the store's form has (0001-9999) at the far ends.
        return iso(moment.timestamp())
    except (ValueError, OverflowError):
        raise Unprocessable(
            f"{name} must be an ISO 8601 time like 2026-12-01T10:00:00Z", field=name
        ) from None


@app.route("/ops/overview", methods=["GET"])
@json_errors
def ops_overview() -> dict[str, Any]:
    """Queue depths, workers and tasks in flight, as last reported by the sweeper process."""
    _operator()
    overview = services.current().overview.get()
    if overview is None:
        raise Unavailable(
            "no overview has been reported yet: is the sweeper running?",
            headers={"Retry-After": "5"},
        )
    return {"overview": overview.to_json()}


@app.route("/ops/dead-letters", methods=["GET"])
@json_errors
def list_dead_letters() -> dict[str, Any]:
    """The dead messages, oldest first (at most 500), each taken and put back on the queue."""
    _operator()
    dead = _on_broker(lambda conn, names: deadletters.list_dead(conn, names))
    return {"dead_letters": [message.to_json() for message in dead]}


@app.route("/ops/dead-letters/replay", methods=["POST"], content_types=["application/json"])
@json_errors
def replay_dead_letters() -> dict[str, Any]:
    """Replay the dead messages ``{"ids": [...]}`` or ``{"all": true}``.

    A message whose task failed is resubmitted as a new task instead (the relay would ignore
    it): ``resubmitted`` lists each such task with its new one. A message that cannot be
    replayed stays dead and is listed in ``skipped`` with the reason; the others go on.
    """
    _operator()
    body = parse_body(app.current_request.raw_body)
    ids = body.get("ids")
    replay_all = body.get("all") is True and ids is None
    # No annotated locals in this module: `chalice package`'s policy analyzer fails on them.
    if not replay_all and not (
        isinstance(ids, list)
        and ids
        and len(ids) <= deadletters.MAX_LISTED
        and all(isinstance(i, str) for i in ids)
    ):
        raise Unprocessable(
            'the body must be {"ids": [message ids]} (1 to 500) or {"all": true}', field="ids"
        )
    wanted = None if replay_all else set(ids or ())
    done = _on_broker(lambda conn, names: deadletters.replay(conn, names, wanted, _resubmit_dead))
    return {
        "replayed": done.replayed,
        "resubmitted": [{"task_id": k, "new_task_id": v} for k, v in done.resubmitted.items()],
        "skipped": [{"message_id": k, "error": v} for k, v in done.skipped.items()],
    }


def _resubmit_dead(message: deadletters.DeadMessage) -> str | None:
    """The new task's id if the dead message's task failed, else ``None`` (republish it).

    A cancelled task is left alone: its owner cancelled it, and may resubmit it themselves.
    """
    if message.task_id is None:
        return None
    try:
        uuid.UUID(message.task_id)
    except ValueError:
        return None
    task = services.current().store.get(message.task_id)
    if task is None or task.status is not Status.FAILED:
        return None
    response = _resubmit(task)
    return str(response.body["task"]["task_id"])


@app.route("/ops/dead-letters/purge", methods=["POST"])
@json_errors
def purge_dead_letters() -> dict[str, Any]:
    """Drop every dead message."""
    operator = _operator()
    purged = _on_broker(lambda conn, names: deadletters.purge(conn, names))
    log.warning("%d dead messages purged by %s", purged, operator)
    return {"purged": purged}


def _on_broker(operation: Callable[..., Any]) -> Any:
    """Run a dead-letter operation on the edge's broker connection; 503 if it is unavailable."""
    svc = services.current()
    try:
        return svc.publisher.run(
            lambda connection: operation(connection, svc.config.names),
            BROKER_OPERATION_TIMEOUT_S,
        )
    except PublishError:
        log.warning("dead-letter operation failed", exc_info=True)
        raise Unavailable(
            "the task queue is unavailable; try again", headers={"Retry-After": "5"}
        ) from None


@app.route("/openapi.json", methods=["GET"])
@json_errors
def openapi_document() -> dict[str, Any]:
    """This API's OpenAPI 3.1 document (no key needed)."""
    return openapi.document(services.current().catalogue)


def _preflight(**_path_params: str) -> Response:
    """``OPTIONS``: the CORS preflight of every path (the middleware adds the origin).

    The answer is the same for every path, so its parameters (a task id, say) are ignored.
    """
    allowed = services.current().config.allowed_origins
    return Response(
        body="",
        status_code=204,
        headers=cors.preflight_headers(app.current_request.headers, allowed),
    )


def _register_preflights() -> None:
    """One preflight route per path: called after every other route is made, to miss none."""
    for number, path in enumerate(sorted(app.routes)):
        app.route(path, methods=["OPTIONS"], name=f"preflight_{number}")(json_errors(_preflight))


_register_preflights()
