"""The broker messages the edge and the sweeper publish and the relay reads: the AMQP wire format.

``Submitted`` says "this task was accepted"; ``CancelRequested`` says "its owner wants it stopped".
An :class:`Envelope` is a whole message as it goes on the wire: body, routing key and AMQP
properties (message id, content type, type, persistence, headers). Everything about that format
is here; aio-pika is not (this package is standard library only): a publisher sends
``aio_pika.Message(envelope.body, **envelope.properties)``, and :meth:`Envelope.received` reads
any message that has AMQP's properties as attributes, as aio-pika's incoming messages do.

The body carries the task's id, type and trace id, and (from the edge and the sweeper) the
record as it was when the message was published, under ``task`` in the record's item form: the
relay queues the task from it without reading DynamoDB. The record in DynamoDB stays the source
of truth: a worker starts an attempt by a conditional write on it, never on the message's copy.
The task's W3C ``traceparent`` travels in the ``traceparent`` header, as HTTP carries it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from . import trace
from .errors import ValidationError
from .names import Names
from .task import Task

MESSAGE_VERSION = 1
CONTENT_TYPE = "application/json"
PERSISTENT = 2
"""AMQP's delivery mode of a message the broker keeps on disk: every taskcast message is."""
SUBMITTED_TYPE = "task.submitted"
CANCEL_TYPE = "task.cancel"
"""The AMQP ``type`` property of each kind of message, for operators' eyes: the body decides."""
TRACEPARENT_HEADER = "traceparent"
REASON_HEADER = "x-taskcast-reason"
"""Why the relay dead-lettered a message, in the header of its copy on the dead queue."""


class MessageError(ValidationError):
    """A message is not one this version of taskcast wrote; the text says what is wrong."""


class Received(Protocol):
    """A message as a broker client hands it over (aio-pika's ``IncomingMessage`` is one)."""

    @property
    def body(self) -> bytes: ...
    @property
    def routing_key(self) -> str | None: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, Any]: ...
    @property
    def content_type(self) -> str | None: ...
    @property
    def delivery_mode(self) -> int | None: ...


@dataclass(frozen=True)
class Envelope:
    """One message as it goes on the wire, standard library types only."""

    body: bytes
    routing_key: str
    message_id: str | None = None
    type: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    content_type: str | None = CONTENT_TYPE
    delivery_mode: int | None = PERSISTENT

    @property
    def properties(self) -> dict[str, Any]:
        """The AMQP basic properties, by the names ``aio_pika.Message`` takes them."""
        return {
            "message_id": self.message_id,
            "type": self.type,
            "headers": dict(self.headers),
            "content_type": self.content_type,
            "delivery_mode": self.delivery_mode,
        }

    @classmethod
    def received(cls, message: Received) -> Envelope:
        """A received message as taskcore describes it, properties and headers whole."""
        return cls(
            message.body,
            message.routing_key or "",
            message_id=message.message_id,
            type=message.type,
            headers=dict(message.headers or {}),
            content_type=message.content_type,
            delivery_mode=None if message.delivery_mode is None else int(message.delivery_mode),
        )

    def dead(self, reason: str) -> Envelope:
        """This message as it goes to the dead-letter exchange: kept whole, with ``reason``.

        Persistent whatever it was, and under its own routing key, so a replay sends it back
        where it came from.
        """
        return replace(
            self,
            routing_key=self.routing_key or "unknown",
            headers={**self.headers, REASON_HEADER: reason},
            delivery_mode=PERSISTENT,
        )


@dataclass(frozen=True)
class Submitted:
    task_id: str
    type: str
    trace_id: str
    traceparent: str | None = None
    """The task's W3C ``traceparent``, in the message's headers; ``None`` if it had none."""
    record: Task | None = field(default=None, compare=False)
    """The record as it was published; ``None`` in a message of an earlier version."""

    @classmethod
    def of(cls, task: Task) -> Submitted:
        """The message that announces ``task``, its record included."""
        return cls(task.task_id, task.type, task.trace_id, task.traceparent, task)

    def encode(self) -> bytes:
        """The body (the ``traceparent`` goes in the headers: see :meth:`envelope`)."""
        body: dict[str, Any] = {
            "v": MESSAGE_VERSION,
            "task_id": self.task_id,
            "type": self.type,
            "trace_id": self.trace_id,
        }
        if self.record is not None:
            body["task"] = self.record.to_item()
        return json.dumps(body, separators=(",", ":")).encode()

    def envelope(self) -> Envelope:
        headers = {} if self.traceparent is None else {TRACEPARENT_HEADER: self.traceparent}
        return Envelope(
            self.encode(),
            Names.submitted_key(self.type),
            message_id=self.task_id,
            type=SUBMITTED_TYPE,
            headers=headers,
        )

    @classmethod
    def decode(cls, body: bytes, headers: Mapping[str, Any] | None = None) -> Submitted:
        """Parse a message; :class:`MessageError` says what is wrong with it.

        A ``traceparent`` header that is not a valid one is ignored, as HTTP's would be.
        """
        data = _json_object(body)
        if data.get("v") != MESSAGE_VERSION or "op" in data:
            raise MessageError(f"body is not a version {MESSAGE_VERSION} submitted message")
        fields = {name: data.get(name) for name in ("task_id", "type", "trace_id")}
        for name, value in fields.items():
            if not isinstance(value, str) or not value:
                raise MessageError(f"{name} is missing or not a string", field=name)
        parent = trace.parse(_text((headers or {}).get(TRACEPARENT_HEADER)))
        record = None if "task" not in data else _record(data["task"], fields)
        return cls(
            **fields,  # type: ignore[arg-type]
            traceparent=None if parent is None else parent.format(),
            record=record,
        )


def _record(item: Any, fields: Mapping[str, Any]) -> Task:
    """The message's copy of the record; it must be a record of the task the message names."""
    try:
        record = Task.from_item(item)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MessageError(f"task is not a task record: {exc!r}", field="task") from None
    if record.task_id != fields["task_id"] or record.type != fields["type"]:
        raise MessageError("task is the record of another task", field="task")
    return record


@dataclass(frozen=True)
class CancelRequested:
    """A request to cancel a task, on the control queue."""

    task_id: str

    def encode(self) -> bytes:
        return json.dumps({"v": MESSAGE_VERSION, "op": "cancel", "task_id": self.task_id}).encode()

    def envelope(self) -> Envelope:
        return Envelope(self.encode(), Names.CANCEL_KEY, message_id=self.task_id, type=CANCEL_TYPE)

    @classmethod
    def decode(cls, body: bytes, headers: Mapping[str, Any] | None = None) -> CancelRequested:
        """Parse a message; :class:`MessageError` says what is wrong with it."""
        data = _json_object(body)
        if data.get("v") != MESSAGE_VERSION or data.get("op") != "cancel":
            raise MessageError("body is not a cancel request")
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise MessageError("task_id is missing or not a string", field="task_id")
        return cls(task_id)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MessageError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("body is not a JSON object")
    return data


def _text(value: object) -> str | None:
    """A header value as text: AMQP may hand over a long string as bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
