"""The task lifecycle: statuses and the transitions allowed between them.

``pending -> queued -> running -> succeeded | failed | cancelled``, plus
``running -> retrying -> running`` for an attempt that failed and will be tried again.
Terminal statuses never change.

``queued`` is announced as an event but, on the hot path, never written to the task's durable
record (see ``worker_container.lifecycle``): the record goes ``pending -> running`` when a
worker starts the first attempt. Only a task that waits for a worker serving its type is
recorded as ``queued``, with the reason.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import TransitionError


class Status(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# ``failed`` is reachable from every live status because a task can be given up on before it
# runs (no worker served its type in time, or the sweeper finds it lost), not only after an
# attempt.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.QUEUED, Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.RETRYING}),
    Status.RETRYING: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


STAGES: dict[Status, int] = {
    Status.PENDING: 0,
    Status.QUEUED: 1,
    Status.RUNNING: 2,
    Status.RETRYING: 3,
    Status.SUCCEEDED: 4,
    Status.FAILED: 4,
    Status.CANCELLED: 4,
}
"""How far along its attempt a status is. ``(attempt, stage)`` only ever rises through a task's
life (``retrying`` at attempt n comes before ``running`` at n + 1), which is how the event log
refuses a status that would step back (see ``worker_container.eventlog``)."""


def can_transition(source: Status, target: Status) -> bool:
    """Tell whether the lifecycle allows ``source -> target``."""
    return target in TRANSITIONS[source]


def check_transition(source: Status, target: Status) -> None:
    """Raise :class:`TransitionError` unless the lifecycle allows ``source -> target``."""
    if not can_transition(source, target):
        raise TransitionError(f"a task cannot go from {source} to {target}")
