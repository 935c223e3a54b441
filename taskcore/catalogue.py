"""The catalogue of task types: what each accepts, and its defaults.

A task type names a handler the workers know, the payload it accepts (a flat schema of typed,
bounded fields) and its defaults: timeout, attempts and priority. The edge validates every
submission against it before anything is stored, so a worker never sees a payload its handler
was not written for.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import PayloadTooLarge, UnknownTaskType, ValidationError

MAX_PAYLOAD_BYTES = 64 * 1024
"""The largest payload accepted inline, as compact JSON; larger inputs belong in the bucket."""


class Priority(StrEnum):
    """Which worker queue a task waits in; workers serve them in this order."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class Field:
    """One payload field: its JSON type, whether it is required, and its bounds."""

    name: str
    kind: str  # one of "integer", "number", "string", "boolean"
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    description: str = ""

    def check(self, value: Any) -> Any:
        """Return ``value`` if it fits this field, else raise :class:`ValidationError`."""
        where = f"payload.{self.name}"
        # bool is a subclass of int in Python but not a number in JSON.
        is_bool = isinstance(value, bool)
        if not isinstance(value, _PYTHON_TYPES[self.kind]) or (is_bool and self.kind != "boolean"):
            raise ValidationError(f"{where} must be a {self.kind}", field=where)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"{where} must be a finite number", field=where)
        if isinstance(value, (int, float)) and not is_bool:
            if self.minimum is not None and value < self.minimum:
                raise ValidationError(f"{where} must be at least {self.minimum}", field=where)
            if self.maximum is not None and value > self.maximum:
                raise ValidationError(f"{where} must be at most {self.maximum}", field=where)
        if isinstance(value, str) and self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(
                f"{where} must be at most {self.max_length} characters", field=where
            )
        return value


@dataclass(frozen=True)
class TaskType:
    """A kind of task the workers can run, with its payload schema and defaults."""

    name: str
    description: str
    fields: tuple[Field, ...] = ()
    timeout_s: int = 300
    max_attempts: int = 1
    retry_base_s: int = 2
    """The first retry waits about this long; each later one twice as long (see taskcore.backoff)."""
    retry_cap_s: int = 300
    priority: Priority = Priority.NORMAL
    _by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def validate(self, payload: Any) -> dict[str, Any]:
        """Check ``payload`` against the schema; return it with defaults filled in.

        Unknown fields are refused rather than ignored: a typo in a field name should be an
        error the client sees, not a default it did not ask for.
        """
        if not isinstance(payload, dict):
            raise ValidationError("payload must be a JSON object", field="payload")
        size = len(json.dumps(payload, separators=(",", ":")).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(
                f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}", field="payload"
            )
        unknown = sorted(set(payload) - set(self._by_name))
        if unknown:
            fields = ", ".join(f"payload.{name}" for name in unknown)
            raise ValidationError(
                f"{fields}: not a field of {self.name}; its fields: {', '.join(self._by_name) or 'none'}",
                field=f"payload.{unknown[0]}",
            )
        clean: dict[str, Any] = {}
        for spec in self.fields:
            if spec.name in payload:
                clean[spec.name] = spec.check(payload[spec.name])
            elif spec.required:
                where = f"payload.{spec.name}"
                raise ValidationError(f"{where} is required", field=where)
            elif spec.default is not None:
                clean[spec.name] = spec.default
        return clean

    def describe(self) -> dict[str, Any]:
        """The type as JSON for clients: name, defaults and fields."""
        return {
            "name": self.name,
            "description": self.description,
            "timeout_s": self.timeout_s,
            "max_attempts": self.max_attempts,
            "retry_base_s": self.retry_base_s,
            "priority": str(self.priority),
            "fields": [
                {
                    key: value
                    for key, value in (
                        ("name", f.name),
                        ("type", f.kind),
                        ("required", f.required),
                        ("default", f.default),
                        ("minimum", f.minimum),
                        ("maximum", f.maximum),
                        ("max_length", f.max_length),
                        ("description", f.description),
                    )
                    if value is not None
                }
                for f in self.fields
            ],
        }


CATALOGUE: Mapping[str, TaskType] = {
    t.name: t
    for t in (
        TaskType(
            name="demo.sleep",
            description=(
                "Sleeps a given or random 1-10 s, reporting progress in steps, and fails with "
                "probability fail_rate so the error path is exercised."
            ),
            fields=(
                Field(
                    "seconds",
                    "number",
                    minimum=0,
                    maximum=600,
                    description="how long to run; random 1-10 s when absent",
                ),
                Field(
                    "fail_rate",
                    "number",
                    default=0.1,
                    minimum=0,
                    maximum=1,
                    description="probability that the task fails at the end",
                ),
                Field(
                    "steps",
                    "integer",
                    default=5,
                    minimum=1,
                    maximum=100,
                    description="how many progress reports to make",
                ),
                Field(
                    "cooperative",
                    "boolean",
                    description="stop between steps when cancelled (default true); "
                    "false exercises the forced stop",
                ),
            ),
            timeout_s=660,
        ),
        TaskType(
            name="demo.flaky",
            description=(
                "Fails its first `failures` attempts, then succeeds: retries with backoff, shown."
            ),
            fields=(
                Field(
                    "failures",
                    "integer",
                    default=1,
                    minimum=0,
                    maximum=10,
                    description="how many attempts fail before one succeeds",
                ),
                Field(
                    "seconds",
                    "number",
                    default=0.2,
                    minimum=0,
                    maximum=60,
                    description="how long each attempt runs",
                ),
            ),
            timeout_s=120,
            max_attempts=3,
            retry_base_s=1,
        ),
        TaskType(
            name="demo.noop",
            description="Does nothing and succeeds: the shortest possible task, for benchmarks.",
            timeout_s=30,
        ),
    )
}


def lookup(name: Any) -> TaskType:
    """The task type called ``name``, or :class:`UnknownTaskType` naming the known ones."""
    if not isinstance(name, str):
        raise ValidationError("type must be a string naming a task type", field="type")
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        raise UnknownTaskType(
            f"unknown task type {name!r}; known types: {known}", field="type"
        ) from None
