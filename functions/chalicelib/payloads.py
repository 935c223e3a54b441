"""Payload validation at the edge: each task type's JSON Schema, checked with ``jsonschema``.

The schemas come from the catalogue the edge loads at start-up; each is checked for being a
valid schema then, and compiled once. A payload that breaks one gets a 422 whose ``field`` is the
path to the offending value (``payload.steps``) and whose ``rule`` is the schema keyword it
breaks (``maximum``), with jsonschema's own words for the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from taskcore.catalogue import Catalogue
from taskcore.errors import ValidationError
from taskcore.tasktype import TaskType


class Payloads:
    """Validates payloads against the catalogue's schemas."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._validators: Mapping[str, Draft202012Validator] = {
            name: _compile(task_type) for name, task_type in catalogue.items()
        }

    def validate(self, task_type: TaskType, payload: Any) -> dict[str, Any]:
        """``payload`` with its schema's defaults filled in, or a :class:`ValidationError`."""
        if payload is None:
            payload = {}
        filled = task_type.with_defaults(payload)
        error = best_match(self._validators[task_type.name].iter_errors(filled))
        if error is None:
            return filled
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        field = f"payload{where}"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            # Name the unexpected field itself, not the object that holds it.
            declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            extra = sorted(k for k in error.instance if k not in declared)
            if extra:
                field += f".{extra[0]}"
        said = error.message if len(error.message) <= 300 else error.message[:300] + "..."
        raise ValidationError(
            f"{field}: {said} (rule: {error.validator})",
            field=field,
            rule=str(error.validator),
        )


def _compile(task_type: TaskType) -> Draft202012Validator:
    try:
        Draft202012Validator.check_schema(task_type.payload_schema)
    except SchemaError as exc:
        raise ValueError(
            f"task type {task_type.name!r}: its payload schema is not valid JSON Schema: "
            f"{exc.message}"
        ) from None
    return Draft202012Validator(task_type.payload_schema)
