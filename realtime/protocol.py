"""The websocket protocol: client messages, server messages, error codes and close codes.

Client -> server::

    {"op": "subscribe", "task_id": "...", "token": "...", "cursor": {"epoch": "...", "seq": 7} | null}
    {"op": "unsubscribe", "task_id": "..."}

Server -> client::

    {"op": "snapshot", "task_id", "task": {...}, "cursor": {"epoch", "seq"}, "resumed": bool}
    {"op": "event", "event": {...}}          # seq = previous seq + 1, always
    {"op": "end", "task_id", "status", "result"?, "error"?}
    {"op": "error", "code", "message", "task_id"?}   # then a close with the code's 4xxx
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from taskcore.errors import EventDecodeError
from taskcore.event import Cursor, Event
from taskcore.status import Status
from taskcore.task import Task


class ProtocolError(Exception):
    """A client broke the protocol or was refused; sent as an error, then the connection closes."""

    def __init__(self, code: str, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.task_id = task_id

    @property
    def close_code(self) -> int:
        return CLOSE_CODES.get(self.code, 4000)


CLOSE_CODES: dict[str, int] = {
    "bad_request": 4000,
    "invalid_token": 4001,
    "token_expired": 4002,
    "token_wrong_task": 4003,
    "forbidden": 4003,
    "not_found": 4004,
    "too_many_subscriptions": 4008,
    "rate_limited": 4029,
    "unavailable": 4013,
}


@dataclass(frozen=True)
class Subscribe:
    task_id: str
    token: str
    cursor: Cursor | None


@dataclass(frozen=True)
class Unsubscribe:
    task_id: str


def parse(raw: str | bytes) -> Subscribe | Unsubscribe:
    """Parse one client message or raise :class:`ProtocolError` saying what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("bad_request", "messages must be JSON objects") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "messages must be JSON objects")
    op = data.get("op")
    task_id = data.get("task_id")
    if op not in ("subscribe", "unsubscribe"):
        raise ProtocolError("bad_request", "op must be subscribe or unsubscribe")
    if not isinstance(task_id, str):
        raise ProtocolError("bad_request", "task_id must be a string")
    try:
        uuid.UUID(task_id)
    except ValueError:
        raise ProtocolError("not_found", f"no task {task_id[:64]}", task_id[:64]) from None
    if op == "unsubscribe":
        return Unsubscribe(task_id)
    token = data.get("token")
    if not isinstance(token, str):
        raise ProtocolError("invalid_token", "subscribe needs the task's watch token", task_id)
    raw_cursor = data.get("cursor")
    try:
        cursor = None if raw_cursor is None else Cursor.from_json(raw_cursor)
    except EventDecodeError as exc:
        raise ProtocolError("bad_request", str(exc), task_id) from None
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
