"""The broker messages the edge publishes and the relay reads.

``Submitted`` says "this task was accepted"; ``CancelRequested`` says "its owner wants it stopped".

It carries only the task's id, type and trace id; the record in DynamoDB is the source of truth
for everything else, so a message can never disagree with the record about the payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import ValidationError

MESSAGE_VERSION = 1
CONTENT_TYPE = "application/json"
REASON_HEADER = "x-taskcast-reason"
"""Why the relay dead-lettered a message, in the header of its copy on the dead queue."""


@dataclass(frozen=True)
class Submitted:
    task_id: str
    type: str
    trace_id: str

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": MESSAGE_VERSION,
                "task_id": self.task_id,
                "type": self.type,
                "trace_id": self.trace_id,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, body: bytes) -> Submitted:
        """Parse a message body; :class:`ValidationError` says what is wrong with it."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("v") != MESSAGE_VERSION:
            raise ValidationError(f"body is not a version {MESSAGE_VERSION} submitted message")
        fields = {name: data.get(name) for name in ("task_id", "type", "trace_id")}
        for name, value in fields.items():
            if not isinstance(value, str) or not value:
                raise ValidationError(f"{name} is missing or not a string", field=name)
        return cls(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CancelRequested:
    """A request to cancel a task, on the control queue."""

    task_id: str

    def encode(self) -> bytes:
        return json.dumps({"v": MESSAGE_VERSION, "op": "cancel", "task_id": self.task_id}).encode()

    @classmethod
    def decode(cls, body: bytes) -> CancelRequested:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"body is not JSON: {exc}") from None
        if (
            not isinstance(data, dict)
            or data.get("v") != MESSAGE_VERSION
            or data.get("op") != "cancel"
        ):
            raise ValidationError("body is not a cancel request")
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise ValidationError("task_id is missing or not a string", field="task_id")
        return cls(task_id)
