"""The edge's OpenAPI 3.1 document, built from the catalogue it serves (``GET /openapi.json``).

The document follows the catalogue: ``type`` is an enum of its type names, and each type with a
shortcut gets its own ``POST /<shortcut>`` path whose request body is that type's payload schema
(copied under ``components/schemas/payload.<type>``, its local references rewritten to match).
``POST /tasks`` keeps ``payload`` a plain object: ``GET /task-types`` gives each type's schema.

It names no server: the same document serves every host and stage, and paths are relative to the
URL it was fetched from, less ``/openapi.json``. Error statuses are the ones the views raise, each
with its fixed ``code``; ``415`` is Chalice's own answer to a ``Content-Type`` other than JSON,
put in the edge's error body like every other (``errors.in_api_shape``). ``OPTIONS`` (the CORS
preflight every path answers with ``204``) is left out.

:func:`document` builds once per catalogue object and hands back that same dict on every later
call: callers must not change it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from taskcore.catalogue import Catalogue
from taskcore.idempotency import KEY_PATTERN
from taskcore.limits import (
    MAX_BODY_BYTES,
    MAX_CURSOR_CHARS,
    MAX_JSON_DEPTH,
    MAX_JSON_NUMBER_CHARS,
    MAX_JSON_STRING_CHARS,
)
from taskcore.status import Status
from taskcore.store import MAX_LIST_LIMIT
from taskcore.tasktype import MAX_DELAY_S, Priority, TaskType
from taskcore.trace import WRITTEN

from .deadletters import MAX_LISTED
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HttpError,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
"""The version of the API this document describes (``info.version``)."""

Schema = dict[str, Any]

_ERRORS: dict[str, tuple[type[HttpError], str]] = {
    # response name: the error the views raise, what it means
    "BadRequest": (
        BadRequest,
        "The body is empty, not a JSON object, or JSON beyond a limit: nested over "
        f"{MAX_JSON_DEPTH} levels, a number over {MAX_JSON_NUMBER_CHARS} characters.",
    ),
    "Unauthorized": (Unauthorized, "No `X-Api-Key` header, or not a valid key."),
    "Forbidden": (Forbidden, "The key is valid but not an operator's."),
    "NotFound": (NotFound, "No such task for this key (another owner's task alike)."),
    "Conflict": (Conflict, "The task is not failed or cancelled."),
    "TooLarge": (
        TooLarge,
        f"The body is over {MAX_BODY_BYTES} bytes, a string in it over "
        f"{MAX_JSON_STRING_CHARS} characters, or the payload over its limit.",
    ),
    "UnsupportedMediaType": (
        UnsupportedMediaType,
        "The `Content-Type` is not `application/json`.",
    ),
    "Unprocessable": (
        Unprocessable,
        "The request is well-formed but breaks a rule: `field` says where, `rule` which rule "
        "of the payload's JSON Schema.",
    ),
    "Unavailable": (
        Unavailable,
        "A backend (task store or queue) is unavailable, or no overview has been reported "
        "yet; try again after `Retry-After` seconds.",
    ),
}

_cache_lock = threading.Lock()
_cached: tuple[Catalogue, dict[str, Any]] | None = None


def document(catalogue: Catalogue) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the edge serving ``catalogue`` (built once per catalogue)."""
    global _cached
    with _cache_lock:
        if _cached is None or _cached[0] is not catalogue:
            _cached = (catalogue, _build(catalogue))
        return _cached[1]


def _build(catalogue: Catalogue) -> dict[str, Any]:
    types = [catalogue[name] for name in sorted(catalogue)]
    schemas = _schemas(types)
    paths: dict[str, Any] = {
        "/health": {"get": _health()},
        "/openapi.json": {"get": _openapi()},
        "/task-types": {"get": _task_types()},
        "/tasks": {"get": _list_tasks(types), "post": _submit()},
        "/tasks/{task_id}": {"get": _get_task()},
        "/tasks/{task_id}/watch": {"post": _watch()},
        "/tasks/{task_id}/cancel": {"post": _cancel()},
        "/tasks/{task_id}/resubmit": {"post": _resubmit()},
        "/ops/overview": {"get": _ops_overview()},
        "/ops/dead-letters": {"get": _ops_dead_letters()},
        "/ops/dead-letters/replay": {"post": _ops_replay()},
        "/ops/dead-letters/purge": {"post": _ops_purge()},
    }
    for task_type in types:
        if task_type.shortcut is not None:
            name = f"payload.{task_type.name}"
            schemas[name] = _embedded(task_type.payload_schema, f"#/components/schemas/{name}")
            paths[f"/{task_type.shortcut}"] = {"post": _shortcut(task_type, name)}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "taskcast",
            "version": API_VERSION,
            "summary": "Long background tasks with live status.",
            "description": (
                "Submit tasks, read their state and get watch tokens for the realtime service. "
                "Send your API key in the `X-Api-Key` header; `/health`, `/openapi.json` and "
                '`/task-types` need none. Errors are `{"error": {"code", "message", '
                '"field"?, "rule"?}}`.'
            ),
        },
        "tags": [
            {"name": "tasks", "description": "Submitting, reading and cancelling tasks."},
            {"name": "ops", "description": "Operations: for operators' keys only."},
            {"name": "meta", "description": "The API itself: health, task types, this document."},
        ],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "An API key from `TASKCAST_API_KEYS`; it names its owner.",
                }
            },
            "schemas": schemas,
            "parameters": _parameters(),
            "headers": _headers(),
            "responses": _error_responses(),
        },
    }


# --- operations ----------------------------------------------------------------------------------


def _health() -> Schema:
    return {
        "operationId": "health",
        "tags": ["meta"],
        "summary": "Whether the edge is up.",
        "security": [],
        "responses": {"200": _json("It is.", _object({"ok": {"const": True}}))},
    }


def _openapi() -> Schema:
    return {
        "operationId": "openapi",
        "tags": ["meta"],
        "summary": "This document.",
        "security": [],
        "responses": {"200": _json("The OpenAPI 3.1 document of this API.", {"type": "object"})},
    }


def _task_types() -> Schema:
    return {
        "operationId": "listTaskTypes",
        "tags": ["meta"],
        "summary": "The task types this deployment accepts: payload JSON Schema, defaults, limits.",
        "security": [],
        "responses": {
            "200": _json(
                "Every type, by name.",
                _object({"task_types": {"type": "array", "items": _ref("TaskType")}}),
            )
        },
    }


def _submit() -> Schema:
    return {
        "operationId": "submitTask",
        "tags": ["tasks"],
        "summary": "Submit a task.",
        "description": (
            "With an `Idempotency-Key`, a request that repeats an earlier one (same key, key "
            "owner and body) answers with the earlier task and `Idempotent-Replayed: true`, "
            "creating nothing; the same key with another body is `422`."
        ),
        "parameters": [_param_ref("IdempotencyKey"), _param_ref("Traceparent")],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("Submission")}},
        },
        "responses": _accepted_responses("The task is accepted (or replayed)."),
    }


def _shortcut(task_type: TaskType, payload: str) -> Schema:
    return {
        "operationId": f"submit_{task_type.shortcut}",
        "tags": ["tasks"],
        "summary": f"Submit a `{task_type.name}` task, the body as its payload.",
        "description": (
            f'Answers as `POST /tasks` with `{{"type": "{task_type.name}", "payload": '
            "<body>}` would, the type's default options in force."
            + (f"\n\n{task_type.description}" if task_type.description else "")
        ),
        "parameters": [_param_ref("IdempotencyKey"), _param_ref("Traceparent")],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(payload)}},
        },
        "responses": _accepted_responses("The task is accepted (or replayed)."),
    }


def _list_tasks(types: list[TaskType]) -> Schema:
    return {
        "operationId": "listTasks",
        "tags": ["tasks"],
        "summary": "The key's tasks, newest first, filtered, a page at a time.",
        "parameters": [
            _query("status", "Only tasks in this status.", _enum([str(s) for s in Status])),
            _query("type", "Only tasks of this type.", _type_names(types)),
            _query(
                "since",
                "Only tasks created at or after this time (ISO 8601; without an offset, UTC).",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "until",
                "Only tasks created before this time (ISO 8601; without an offset, UTC).",
                {"type": "string", "format": "date-time"},
            ),
            _query(
                "limit",
                "The most tasks to give, in ASCII digits.",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 20},
            ),
            _query(
                "cursor",
                "Where to go on from: the `next_cursor` of the previous page.",
                {"type": "string", "maxLength": MAX_CURSOR_CHARS},
            ),
        ],
        "responses": {
            "200": _json(
                "A page of tasks; `next_cursor` is `null` on the last.",
                _object(
                    {
                        "tasks": {"type": "array", "items": _ref("Task")},
                        "next_cursor": {"type": ["string", "null"]},
                    }
                ),
            ),
            **_errors("Unauthorized", "Unprocessable", "Unavailable"),
        },
    }


def _get_task() -> Schema:
    return {
        "operationId": "getTask",
        "tags": ["tasks"],
        "summary": "One of the key's tasks.",
        "parameters": [_param_ref("TaskId")],
        "responses": {
            "200": _json("The task.", _object({"task": _ref("Task")})),
            **_errors("Unauthorized", "NotFound", "Unavailable"),
        },
    }


def _watch() -> Schema:
    return {
        "operationId": "newWatchToken",
        "tags": ["tasks"],
        "summary": "A fresh watch token for one of the key's tasks.",
        "parameters": [_param_ref("TaskId")],
        "responses": {
            "200": _json("A token for the realtime service.", _object({"watch": _ref("Watch")})),
            **_errors("Unauthorized", "NotFound", "Unavailable"),
        },
    }


def _cancel() -> Schema:
    return {
        "operationId": "cancelTask",
        "tags": ["tasks"],
        "summary": "Ask for one of the key's tasks to be cancelled (idempotent).",
        "parameters": [_param_ref("TaskId")],
        "responses": {
            "202": _json(
                "The request is on its way: the task's watchers see `cancelled` when it is done.",
                _object({"task": _ref("Task"), "cancel": {"const": "requested"}}),
            ),
            "200": _json(
                "The task had ended already, and stays as it ended.",
                _object({"task": _ref("Task"), "cancel": {"const": "ended"}}),
            ),
            **_errors("Unauthorized", "NotFound", "Unavailable"),
        },
    }


def _resubmit() -> Schema:
    return {
        "operationId": "resubmitTask",
        "tags": ["tasks"],
        "summary": "Submit a failed or cancelled task again, as a new task.",
        "description": (
            "The new task has the old one's type, payload and options. Idempotent: the same task "
            "resubmitted again answers with the same new task and `Idempotent-Replayed: true`. "
            "`422` if the type or payload is no longer accepted."
        ),
        "parameters": [_param_ref("TaskId")],
        "responses": {
            "202": _accepted_response("The new task is accepted (or replayed)."),
            **_errors("Unauthorized", "NotFound", "Conflict", "Unprocessable", "Unavailable"),
        },
    }


def _ops_overview() -> Schema:
    queue = _object(
        {
            "name": {"type": "string"},
            "queued": {"type": "integer", "minimum": 0},
            "started": {"type": "integer", "minimum": 0},
            "scheduled": {"type": "integer", "minimum": 0},
        }
    )
    worker = _object(
        {
            "name": {"type": "string"},
            "state": {"type": "string", "description": "RQ's: `idle`, `busy`, `suspended`, ..."},
            "queues": {"type": "array", "items": {"type": "string"}},
            "task_id": {"type": ["string", "null"]},
        }
    )
    depth = {"type": ["integer", "null"], "minimum": 0}
    overview = _object(
        {
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "queues": {"type": "array", "items": queue},
            "broker": _object(
                {"tasks": depth, "dead": depth},
                description="Messages on the broker's queues (`null`: unknown).",
            ),
            "workers": {"type": "array", "items": worker},
            "in_flight": {"type": "integer", "minimum": 0},
        }
    )
    return {
        "operationId": "opsOverview",
        "tags": ["ops"],
        "summary": "Queue depths, workers and tasks in flight, as last reported.",
        "responses": {
            "200": _json("The last report.", _object({"overview": overview})),
            **_errors("Unauthorized", "Forbidden", "Unavailable"),
        },
    }


def _ops_dead_letters() -> Schema:
    dead = _object(
        {
            "message_id": {"type": ["string", "null"]},
            "routing_key": {"type": "string"},
            "reason": {"type": "string"},
            "task_id": {"type": ["string", "null"]},
            "type": {"type": ["string", "null"]},
        }
    )
    return {
        "operationId": "listDeadLetters",
        "tags": ["ops"],
        "summary": f"The dead messages, oldest first (at most {MAX_LISTED}).",
        "responses": {
            "200": _json(
                "The dead messages, each taken from the queue and put back.",
                _object({"dead_letters": {"type": "array", "items": dead}}),
            ),
            **_errors("Unauthorized", "Forbidden", "Unavailable"),
        },
    }


def _ops_replay() -> Schema:
    body = {
        "oneOf": [
            _object(
                {
                    "ids": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": MAX_LISTED,
                    }
                },
                description="Replay the dead messages with these message ids.",
            ),
            _object({"all": {"const": True}}, description="Replay every dead message."),
        ]
    }
    result = _object(
        {
            "replayed": {"type": "array", "items": {"type": "string"}},
            "resubmitted": {
                "type": "array",
                "items": _object(
                    {"task_id": {"type": "string"}, "new_task_id": {"type": "string"}}
                ),
            },
            "skipped": {
                "type": "array",
                "items": _object({"message_id": {"type": "string"}, "error": {"type": "string"}}),
            },
        }
    )
    return {
        "operationId": "replayDeadLetters",
        "tags": ["ops"],
        "summary": "Replay dead messages.",
        "description": (
            "A message whose task failed is resubmitted as a new task instead: `resubmitted` "
            "maps each such task to its new one. A message that cannot be replayed stays on the "
            "dead queue and is listed in `skipped` with the reason."
        ),
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": _json("What was replayed and resubmitted.", result),
            **_errors(
                "BadRequest",
                "Unauthorized",
                "Forbidden",
                "TooLarge",
                "UnsupportedMediaType",
                "Unprocessable",
                "Unavailable",
            ),
        },
    }


def _ops_purge() -> Schema:
    return {
        "operationId": "purgeDeadLetters",
        "tags": ["ops"],
        "summary": "Drop every dead message.",
        "responses": {
            "200": _json(
                "How many were dropped.",
                _object({"purged": {"type": "integer", "minimum": 0}}),
            ),
            **_errors("Unauthorized", "Forbidden", "Unavailable"),
        },
    }


def _accepted_responses(description: str) -> Schema:
    return {
        "202": _accepted_response(description),
        **_errors(
            "BadRequest",
            "Unauthorized",
            "TooLarge",
            "UnsupportedMediaType",
            "Unprocessable",
            "Unavailable",
        ),
    }


def _accepted_response(description: str) -> Schema:
    return {
        "description": description,
        "headers": {
            "Location": {"$ref": "#/components/headers/Location"},
            "Idempotent-Replayed": {"$ref": "#/components/headers/IdempotentReplayed"},
            "traceparent": {"$ref": "#/components/headers/Traceparent"},
        },
        "content": {"application/json": {"schema": _ref("Accepted")}},
    }


# --- components ----------------------------------------------------------------------------------


def _schemas(types: list[TaskType]) -> dict[str, Schema]:
    timestamp = {"type": "string", "format": "date-time"}
    nullable_timestamp = {"type": ["string", "null"], "format": "date-time"}
    priority = _enum([str(p) for p in Priority])
    limits = [t.limits() for t in types]
    return {
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {"type": "string", "description": "Machine-readable."},
                        "message": {"type": "string", "description": "For humans."},
                        "field": {"type": "string", "description": "Where the request is wrong."},
                        "rule": {
                            "type": "string",
                            "description": "The payload schema's keyword it breaks.",
                        },
                    },
                    optional=("field", "rule"),
                )
            }
        ),
        "Submission": _object(
            {
                "type": {**_type_names(types), "description": "The task type's name."},
                "payload": {
                    "type": "object",
                    "description": (
                        "The task's input: it must match its type's `payload_schema`, which "
                        "`GET /task-types` gives. Absent means `{}`."
                    ),
                },
                "priority": {**priority, "description": "Defaults to the type's."},
                "delay_seconds": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": max((lim["delay_seconds"] for lim in limits), default=MAX_DELAY_S),
                    "description": "Start no sooner than this; up to the type's limit.",
                },
                "max_attempts": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": max((lim["max_attempts"] for lim in limits), default=1),
                    "description": "Defaults to the type's; up to the type's limit.",
                },
                "timeout_s": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": max((lim["timeout_s"] for lim in limits), default=1),
                    "description": "Each attempt's time limit; up to the type's limit.",
                },
            },
            optional=("payload", "priority", "delay_seconds", "max_attempts", "timeout_s"),
        ),
        "Accepted": _object({"task": _ref("Task"), "watch": _ref("Watch")}),
        "Watch": _object(
            {
                "url": {"type": "string", "description": "The realtime service's websocket URL."},
                "token": {"type": "string", "description": "Lets its holder watch this task."},
                "expires_at": {"type": "integer", "description": "Unix time, in seconds."},
            },
            description="How to watch a task live.",
        ),
        "Progress": _object(
            {"percent": {"type": "number"}, "message": {"type": "string"}},
        ),
        "TaskError": _object(
            {"type": {"type": "string"}, "message": {"type": "string"}},
            description="Why the task failed (or its last attempt did).",
        ),
        "Task": _object(
            {
                "task_id": {"type": "string", "format": "uuid"},
                "type": {"type": "string"},
                "status": _enum([str(s) for s in Status]),
                "priority": priority,
                "attempt": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Attempts started: 0 until the first runs.",
                },
                "max_attempts": {"type": "integer", "minimum": 1},
                "timeout_s": {"type": "integer", "minimum": 1},
                "queue": {"type": "string"},
                "payload": {"type": "object"},
                "progress": _ref("Progress"),
                "created_at": timestamp,
                "updated_at": timestamp,
                "started_at": nullable_timestamp,
                "finished_at": nullable_timestamp,
                "result": {"description": "What the task returned: only once `succeeded`."},
                "error": _ref("TaskError"),
                "retry_at": {**timestamp, "description": "When a `retrying` task runs again."},
                "run_at": {**timestamp, "description": "When a delayed task is to start."},
                "cancel_requested_at": {
                    **timestamp,
                    "description": "When its owner asked for it to be cancelled.",
                },
                "waiting": {
                    "type": "string",
                    "description": "Why a `queued` task is not running yet.",
                },
                "traceparent": {
                    "type": "string",
                    "pattern": WRITTEN.pattern,
                    "description": "Its W3C trace context: the trace it continues, its own span.",
                },
                "queued_at": {
                    **timestamp,
                    "description": "When its current attempt was put in its queue (recorded "
                    "when the attempt starts).",
                },
            },
            optional=(
                "result",
                "error",
                "retry_at",
                "run_at",
                "cancel_requested_at",
                "waiting",
                "traceparent",
                "queued_at",
            ),
        ),
        "TaskType": _object(
            {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "payload_schema": {
                    "type": "object",
                    "description": "The payload's JSON Schema (draft 2020-12).",
                },
                "defaults": _object(
                    {
                        "queue": {"type": "string"},
                        "priority": priority,
                        "max_attempts": {"type": "integer"},
                        "timeout_s": {"type": "integer"},
                        "retry_base_s": {"type": "integer"},
                        "retry_cap_s": {"type": "integer"},
                        "queue_timeout_s": {"type": "integer"},
                    }
                ),
                "limits": _object(
                    {
                        "max_attempts": {"type": "integer"},
                        "timeout_s": {"type": "integer"},
                        "delay_seconds": {"type": "integer"},
                    }
                ),
                "shortcut": {
                    "type": "string",
                    "pattern": "^/",
                    "description": "`POST <shortcut>` submits this type, the body as payload.",
                },
            },
            optional=("shortcut",),
        ),
    }


def _parameters() -> dict[str, Schema]:
    return {
        "TaskId": {
            "name": "task_id",
            "in": "path",
            "required": True,
            "description": "The task's id, as submitting it gave.",
            "schema": {"type": "string", "format": "uuid"},
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Makes a retried submission create one task, however often it is sent.",
            "schema": {"type": "string", "pattern": KEY_PATTERN.pattern},
        },
        "Traceparent": {
            "name": "traceparent",
            "in": "header",
            "required": False,
            "description": (
                "A W3C trace context the task continues (with a span id of its own); "
                "without one, or with an invalid one, the task starts a new trace."
            ),
            "schema": {"type": "string"},
        },
    }


def _headers() -> dict[str, Schema]:
    return {
        "Location": {
            "description": "The task's path: `/tasks/{task_id}`.",
            "required": True,
            "schema": {"type": "string"},
        },
        "IdempotentReplayed": {
            "description": "Present when this answers an earlier identical request.",
            "schema": {"type": "string", "enum": ["true"]},
        },
        "Traceparent": {
            "description": "The task's W3C trace context, as its record keeps it.",
            "schema": {"type": "string", "pattern": WRITTEN.pattern},
        },
        "RetryAfter": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        },
    }


def _error_responses() -> dict[str, Schema]:
    responses: dict[str, Schema] = {}
    for name, (error, description) in _ERRORS.items():
        schema = {
            "allOf": [
                _ref("Error"),
                {"properties": {"error": {"properties": {"code": {"const": error.code}}}}},
            ]
        }
        responses[name] = _json(description, schema)
    responses["Unavailable"]["headers"] = {
        "Retry-After": {"$ref": "#/components/headers/RetryAfter"}
    }
    return responses


# --- helpers -------------------------------------------------------------------------------------


def _errors(*names: str) -> dict[str, Schema]:
    """The responses ``names`` by reference, under their status codes."""
    statuses = {name: str(error.status) for name, (error, _) in _ERRORS.items()}
    return {statuses[name]: {"$ref": f"#/components/responses/{name}"} for name in names}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(
    properties: dict[str, Schema], *, optional: tuple[str, ...] = (), description: str = ""
) -> Schema:
    """A closed object: every property required unless named ``optional``."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _param_ref(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _enum(values: list[str]) -> Schema:
    return {"type": "string", "enum": values}


def _type_names(types: list[TaskType]) -> Schema:
    return _enum([t.name for t in types]) if types else {"type": "string"}


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _embedded(schema: Mapping[str, Any], pointer: str) -> Schema:
    """A payload schema fit to live at ``pointer`` in this document.

    Its own ``$schema`` goes (the edge validates every payload as draft 2020-12 whatever it
    says), and, unless it has an ``$id`` of its own, its local references (``#/$defs/x``) are
    rewritten to start at ``pointer``, since inside this document ``#`` is the document's root.
    """
    copied = copy.deepcopy(dict(schema))
    copied.pop("$schema", None)
    if "$id" in copied:
        return copied

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    pointer + value[1:]
                    if key == "$ref" and isinstance(value, str) and value.startswith("#")
                    else rewrite(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    result: Schema = rewrite(copied)
    return result
