"""The websocket protocol between the realtime service and its clients, defined once for both.

Client -> server::

    {"op": "subscribe", "task_id": "...", "token": "...", "cursor": {"epoch": "...", "seq": 7} | null}
    {"op": "unsubscribe", "task_id": "..."}

Server -> client::

    {"op": "snapshot", "task_id", "task": {...}, "cursor": {"epoch", "seq"}, "resumed": bool}
    {"op": "event", "event": {...}}          # seq = the cursor's seq + 1, always
    {"op": "end", "task_id", "status", "result"?, "error"?}
    {"op": "error", "code", "message", "task_id"?}   # then a close with the code's close code

A snapshot with ``resumed: false`` is a reset: the client replaces what it knew of the task
with the snapshot and continues from its cursor. The server parses client messages with
:func:`parse_client` and builds its own with the functions below; the SDK builds client
messages with :meth:`Subscribe.encode` and reads the server's with :func:`parse_server`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from . import limits
from .errors import BadJSON, EventDecodeError, TaskcastError, TooLarge
from .event import Cursor, Event
from .status import Status
from .task import Task

MAX_MESSAGE_BYTES = 4096
"""The largest client message (a subscribe is ~300 bytes); a bigger one is closed with 1009."""


class ErrorCode(StrEnum):
    """Why the server refused a message or a watch; each closes the connection with its code."""

    UNSUPPORTED_DATA = "unsupported_data"
    """A binary frame: the protocol is text (JSON)."""
    INVALID_JSON = "invalid_json"
    """Not JSON, or JSON beyond a limit of :mod:`taskcore.limits` (nesting, numbers, strings)."""
    BAD_REQUEST = "bad_request"
    """JSON, but not a message of the protocol."""
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_WRONG_TASK = "token_wrong_task"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


CLOSE_CODES: dict[str, int] = {
    # RFC 6455's own codes where one fits the fault...
    ErrorCode.UNSUPPORTED_DATA: 1003,
    ErrorCode.INVALID_JSON: 1007,
    ErrorCode.BAD_REQUEST: 1008,
    # ...and taskcast's (4000-4999: private use) for refusals a client may act on.
    ErrorCode.INVALID_TOKEN: 4001,
    ErrorCode.TOKEN_EXPIRED: 4002,
    ErrorCode.TOKEN_WRONG_TASK: 4003,
    ErrorCode.FORBIDDEN: 4003,
    ErrorCode.NOT_FOUND: 4004,
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: 4008,
    ErrorCode.RATE_LIMITED: 4029,
    ErrorCode.UNAVAILABLE: 4013,
}

TOO_SLOW = 1013
"""Close code for a client that stopped reading: "try again later", from its cursor."""

RESUMABLE_ERRORS = frozenset({ErrorCode.TOKEN_EXPIRED, ErrorCode.UNAVAILABLE})
"""Refusals after which a client reconnects (with a fresh token if it expired) and resumes."""


def is_refusal(close_code: int) -> bool:
    """Whether a close means "do not come back with the same request": a client's own fault.

    Every other close (going away, server restart, too slow, a dropped network) is one to
    reconnect after, resuming from the cursor.
    """
    resumable = {CLOSE_CODES[code] for code in RESUMABLE_ERRORS}
    refused = {1002, 1003, 1007, 1008, 1009, 1010} | set(CLOSE_CODES.values())
    return close_code in refused - resumable


class ProtocolError(TaskcastError):
    """A message broke the protocol, or a watch was refused; ``code`` says which."""

    def __init__(self, code: str, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.task_id = task_id

    @property
    def close_code(self) -> int:
        return CLOSE_CODES.get(self.code, CLOSE_CODES[ErrorCode.BAD_REQUEST])


@dataclass(frozen=True)
class Subscribe:
    task_id: str
    token: str
    cursor: Cursor | None = None

    def encode(self) -> str:
        cursor = None if self.cursor is None else self.cursor.to_json()
        return _dump(
            {"op": "subscribe", "task_id": self.task_id, "token": self.token, "cursor": cursor}
        )


@dataclass(frozen=True)
class Unsubscribe:
    task_id: str

    def encode(self) -> str:
        return _dump({"op": "unsubscribe", "task_id": self.task_id})


def _loads(raw: str | bytes) -> Any:
    """JSON within :mod:`taskcore.limits`' limits, else :class:`ProtocolError`."""
    if isinstance(raw, bytes):
        raise ProtocolError(ErrorCode.UNSUPPORTED_DATA, "messages are text frames of JSON")
    try:
        return limits.loads(raw, what="the message", max_bytes=MAX_MESSAGE_BYTES)
    except (BadJSON, TooLarge) as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, str(exc)) from None


def parse_client(raw: str | bytes) -> Subscribe | Unsubscribe:
    """Parse one client message or raise :class:`ProtocolError` saying what is wrong."""
    data = _loads(raw)
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "messages must be JSON objects")
    op = data.get("op")
    task_id = data.get("task_id")
    if op not in ("subscribe", "unsubscribe"):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "op must be subscribe or unsubscribe")
    if not isinstance(task_id, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "task_id must be a string")
    try:
        uuid.UUID(task_id)
    except ValueError:
        shown = task_id[:64]
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no task {shown!r}", shown) from None
    if op == "unsubscribe":
        return Unsubscribe(task_id)
    token = data.get("token")
    if not isinstance(token, str):
        raise ProtocolError(
            ErrorCode.INVALID_TOKEN, "subscribe needs the task's watch token", task_id
        )
    raw_cursor = data.get("cursor")
    try:
        cursor = None if raw_cursor is None else Cursor.from_json(raw_cursor)
    except EventDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc), task_id) from None
    return Subscribe(task_id, token, cursor)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def snapshot(task: Task, cursor: Cursor, resumed: bool) -> str:
    return _dump(
        {
            "op": "snapshot",
            "task_id": task.task_id,
            "task": task.to_public(),
            "cursor": cursor.to_json(),
            "resumed": resumed,
        }
    )


def event(e: Event) -> str:
    return _dump({"op": "event", "event": e.to_json()})


def end(source: Task | Event) -> str:
    """The last message of a watch: the final status, with the result or the error.

    Built from the terminal event, or from the record when that event never reached the log.
    """
    data: dict[str, Any] = {"op": "end", "task_id": source.task_id, "status": str(source.status)}
    if source.status is Status.SUCCEEDED:
        data["result"] = source.result
    if source.error is not None:
        data["error"] = source.error.to_json()
    return _dump(data)


def error(exc: ProtocolError) -> str:
    data: dict[str, Any] = {"op": "error", "code": exc.code, "message": exc.message}
    if exc.task_id:
        data["task_id"] = exc.task_id
    return _dump(data)


@dataclass(frozen=True)
class ServerMessage:
    """One message from the server, as a client reads it; ``data`` is the whole message."""

    op: str
    task_id: str | None
    data: dict[str, Any]

    @property
    def cursor(self) -> Cursor | None:
        """Where a client resumes from after this message: a snapshot's cursor, an event's place."""
        if self.op == "snapshot":
            return Cursor.from_json(self.data["cursor"])
        if self.op == "event":
            return Cursor(self.data["event"]["epoch"], self.data["event"]["seq"])
        return None


_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "snapshot": {"task_id": str, "task": dict, "cursor": dict, "resumed": bool},
    "event": {"event": dict},
    "end": {"task_id": str, "status": str},
    "error": {"code": str, "message": str},
}


def parse_server(raw: str | bytes) -> ServerMessage:
    """Parse one server message, refusing with :class:`ProtocolError` what is not one."""
    if isinstance(raw, bytes):
        raise ProtocolError(ErrorCode.UNSUPPORTED_DATA, "the server sent a binary frame")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError(
            ErrorCode.INVALID_JSON, "the server sent a message that is not JSON"
        ) from None
    op = data.get("op") if isinstance(data, dict) else None
    if op not in _REQUIRED:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"the server sent an unknown message: {op!r}")
    for key, kind in _REQUIRED[op].items():
        if not isinstance(data.get(key), kind):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"the server's {op} has no valid {key}")
    if op == "event":
        event_data = data["event"]
        seq, epoch = event_data.get("seq"), event_data.get("epoch")
        if not isinstance(seq, int) or not isinstance(epoch, str | None):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "the server's event has no valid place")
        task_id = event_data.get("task_id")
    else:
        task_id = data.get("task_id")
    if op == "snapshot":
        try:
            Cursor.from_json(data["cursor"])
        except EventDecodeError as exc:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"the server's snapshot: {exc}") from None
    return ServerMessage(op, task_id if isinstance(task_id, str) else None, data)
