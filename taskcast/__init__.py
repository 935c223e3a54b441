"""taskcast: start long tasks, watch them live.

For task code: :func:`task` declares a task type and the function that runs it,
:class:`TaskContext` is what that function is given, :class:`TaskFailed` fails a task with a
message for its owner. For clients: :class:`Client`, the SDK, whose errors are
:class:`TaskcastError` and its subclasses. The client classes are imported on
first use, so a worker that loads task modules does not import the HTTP and websocket clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskcore.definition import TaskContext, TaskDefinition, TaskFailed, task

if TYPE_CHECKING:
    from .client import (
        ApiError,
        Client,
        ClientError,
        ConnectError,
        Page,
        ProtocolError,
        RequestTimeout,
        ServerError,
        Submission,
        TaskcastError,
        TransportError,
        Update,
        WatchError,
    )

__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "ConnectError",
    "Page",
    "ProtocolError",
    "RequestTimeout",
    "ServerError",
    "Submission",
    "TaskContext",
    "TaskDefinition",
    "TaskFailed",
    "TaskcastError",
    "TransportError",
    "Update",
    "WatchError",
    "task",
]

_TASK_CODE = frozenset({"TaskContext", "TaskDefinition", "TaskFailed", "task"})
_CLIENT = frozenset(__all__) - _TASK_CODE
"""The names imported from :mod:`taskcast.client` on first use."""


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'taskcast' has no attribute {name!r}")
