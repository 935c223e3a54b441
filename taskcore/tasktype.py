"""A task type as the parts share it: name, payload schema, defaults and the limits of a call.

A task type is declared once, in the user's own code (see :mod:`taskcore.definition`), and
exported as JSON into the catalogue that the edge loads (:mod:`taskcore.catalogue`). This
module is that JSON's one codec, and the one place that resolves a call's options (attempts,
timeout, priority, delay) against the type's defaults and limits.

The payload schema is JSON Schema (draft 2020-12), kept here as plain data: the edge validates
with the ``jsonschema`` library, so this package stays standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import PayloadTooLarge, ValidationError
from .limits import MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from .limits import check_json

MAX_DELAY_S = 7 * 86400
"""The longest ``delay_seconds`` any type may allow."""

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
"""Dotted lowercase names (``myapp.report``): safe as AMQP routing keys and Redis key parts."""
QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
SHORTCUT = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
RESERVED_PATHS = frozenset({"tasks", "task-types", "health"})
"""The edge's own first path segments, which no shortcut may take."""
DEFAULT_QUEUE = "default"
ANY_OBJECT: Mapping[str, Any] = {"type": "object"}
"""The schema of a type that declares none: any JSON object."""


class Priority(StrEnum):
    """Which of its queue's three RQ queues a task waits in; workers serve them in this order."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True)
class Options:
    """The options in force for one task: the type's defaults, overridden by the call."""

    max_attempts: int
    timeout_s: int
    priority: Priority
    delay_s: int = 0


OPTION_FIELDS = ("max_attempts", "timeout_s", "priority", "delay_seconds")
"""The fields of a submission that set options; everything else about a call is its payload."""


@dataclass(frozen=True)
class TaskType:
    """A kind of task: its payload schema, its defaults and what a call may change."""

    name: str
    description: str = ""
    payload_schema: Mapping[str, Any] = field(default_factory=lambda: dict(ANY_OBJECT))
    queue: str = DEFAULT_QUEUE
    """Which workers run it: a worker serves the queues it is started for."""
    priority: Priority = Priority.NORMAL
    max_attempts: int = 1
    timeout_s: int = 300
    retry_base_s: int = 2
    """The first retry waits about this long; each later one twice as long (taskcore.backoff)."""
    retry_cap_s: int = 300
    queue_timeout_s: int = 3600
    """How long a task may wait for a worker that knows its type before it is dead-lettered."""
    attempts_limit: int = 10
    """The most attempts a call may ask for."""
    timeout_limit_s: int = 3600
    """The longest timeout a call may ask for."""
    delay_limit_s: int = MAX_DELAY_S
    """The longest ``delay_seconds`` a call may ask for."""
    shortcut: str | None = None
    """``POST /<shortcut>`` submits this type with the body as its payload (``POST /images``)."""

    def __post_init__(self) -> None:
        problems = []
        if not TYPE_NAME.match(self.name) or len(self.name) > 100:
            problems.append("its name must be dotted lowercase words, e.g. 'myapp.report'")
        if not QUEUE_NAME.match(self.queue):
            problems.append("queue must be 1-40 lowercase letters, digits, '_' or '-'")
        if self.shortcut is not None and (
            not isinstance(self.shortcut, str)
            or not SHORTCUT.match(self.shortcut)
            or self.shortcut in RESERVED_PATHS
        ):
            problems.append(
                "shortcut must be 1-40 lowercase letters, digits or '-', and not one of "
                + ", ".join(sorted(RESERVED_PATHS))
            )
        if not isinstance(self.payload_schema, Mapping):
            problems.append("payload_schema must be a JSON Schema object")
        elif self.payload_schema.get("type", "object") != "object":
            problems.append("payload_schema must describe a JSON object")
        for name in (
            "max_attempts",
            "timeout_s",
            "retry_base_s",
            "retry_cap_s",
            "queue_timeout_s",
            "attempts_limit",
            "timeout_limit_s",
        ):
            if not _positive(getattr(self, name)):
                problems.append(f"{name} must be a positive whole number")
        if not (isinstance(self.delay_limit_s, int) and 0 <= self.delay_limit_s <= MAX_DELAY_S):
            problems.append(f"delay_limit_s must be a whole number from 0 to {MAX_DELAY_S}")
        for default, limit in (
            ("max_attempts", "attempts_limit"),
            ("timeout_s", "timeout_limit_s"),
        ):
            low, high = getattr(self, default), getattr(self, limit)
            if _positive(low) and _positive(high) and low > high:
                problems.append(f"{default} must not exceed {limit}")
        if problems:
            raise ValueError(f"task type {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "priority", Priority(self.priority))

    def options(self, call: Mapping[str, Any]) -> Options:
        """The options in force for a call that asks for ``call``'s option fields.

        :class:`ValidationError` names the field and the limit a request exceeds.
        """
        priority = call.get("priority", self.priority)
        if not isinstance(priority, str) or priority not in [str(p) for p in Priority]:
            choices = ", ".join(str(p) for p in Priority)
            raise ValidationError(f"priority must be one of {choices}", field="priority")
        return Options(
            max_attempts=_bounded(call, "max_attempts", self.max_attempts, 1, self.attempts_limit),
            timeout_s=_bounded(call, "timeout_s", self.timeout_s, 1, self.timeout_limit_s),
            priority=Priority(priority),
            delay_s=_bounded(call, "delay_seconds", 0, 0, self.delay_limit_s),
        )

    def with_defaults(self, payload: Any) -> dict[str, Any]:
        """``payload`` (a JSON object within the limits of :mod:`taskcore.limits`) with its
        schema's top-level defaults filled in for the fields it leaves out.

        Validating against the schema is the caller's: the edge does it with ``jsonschema``.
        """
        if not isinstance(payload, dict):
            raise ValidationError("payload must be a JSON object", field="payload")
        # Its depth first: serialising a deeply nested payload would recurse out of stack.
        check_json(payload, "payload", field="payload")
        size = len(json.dumps(payload, separators=(",", ":")).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(
                f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}", field="payload"
            )
        properties = self.payload_schema.get("properties") or {}
        filled = dict(payload)
        for name, spec in properties.items():
            if name not in filled and isinstance(spec, Mapping) and "default" in spec:
                filled[name] = spec["default"]
        return filled

    def defaults(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "priority": str(self.priority),
            "max_attempts": self.max_attempts,
            "timeout_s": self.timeout_s,
            "retry_base_s": self.retry_base_s,
            "retry_cap_s": self.retry_cap_s,
            "queue_timeout_s": self.queue_timeout_s,
        }

    def limits(self) -> dict[str, Any]:
        return {
            "max_attempts": self.attempts_limit,
            "timeout_s": self.timeout_limit_s,
            "delay_seconds": self.delay_limit_s,
        }

    def to_json(self) -> dict[str, Any]:
        """The type as the catalogue and ``GET /task-types`` give it."""
        data = {
            "name": self.name,
            "description": self.description,
            "payload_schema": dict(self.payload_schema),
            "defaults": self.defaults(),
            "limits": self.limits(),
        }
        if self.shortcut is not None:
            data["shortcut"] = f"/{self.shortcut}"
        return data

    @classmethod
    def from_json(cls, data: Any) -> TaskType:
        """Read a type back from :meth:`to_json`; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a task type must be a JSON object")
        try:
            defaults, limits = data.get("defaults", {}), data.get("limits", {})
            return cls(
                name=data["name"],
                description=str(data.get("description", "")),
                payload_schema=data.get("payload_schema", dict(ANY_OBJECT)),
                queue=defaults.get("queue", cls.queue),
                priority=Priority(defaults.get("priority", cls.priority)),
                max_attempts=defaults.get("max_attempts", cls.max_attempts),
                timeout_s=defaults.get("timeout_s", cls.timeout_s),
                retry_base_s=defaults.get("retry_base_s", cls.retry_base_s),
                retry_cap_s=defaults.get("retry_cap_s", cls.retry_cap_s),
                queue_timeout_s=defaults.get("queue_timeout_s", cls.queue_timeout_s),
                attempts_limit=limits.get("max_attempts", cls.attempts_limit),
                timeout_limit_s=limits.get("timeout_s", cls.timeout_limit_s),
                delay_limit_s=limits.get("delay_seconds", cls.delay_limit_s),
                shortcut=_shortcut(data.get("shortcut")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed task type: {exc!r}") from None


def _shortcut(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"shortcut must be a path like /images, not {value!r}")
    return value[1:]


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _bounded(call: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = call.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(
            f"{name} must be a whole number from {low} to {high} for this task type", field=name
        )
    return value
