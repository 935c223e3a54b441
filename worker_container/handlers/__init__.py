"""Task handlers by type name. Every type in the catalogue has exactly one handler here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import TaskContext

Handler = Callable[[TaskContext], Any]
"""A handler runs one attempt and returns its JSON-serialisable result, or raises."""

HANDLERS: dict[str, Handler] = {}


class HandlerError(Exception):
    """A handler's way to fail a task with a message meant for the task's owner."""


def handler(task_type: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        if task_type in HANDLERS:
            raise ValueError(f"two handlers for {task_type}")
        HANDLERS[task_type] = function
        return function

    return register


from . import demo  # noqa: E402,F401 - registers the demo handlers
