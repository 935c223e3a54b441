"""One log format for every taskcast process, so `taskcast up` can interleave them readably.

Every line logged while a task is being handled ends ``[trace <trace-id>]``: the code that
handles a task says so once (``with logs.traced(task.trace_id):``), and every record made in
that context, by any logger, carries the trace id as its ``trace_id`` attribute (``None``
outside). A context variable, so threads started with ``asyncio.to_thread`` carry it along.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_trace_id: ContextVar[str | None] = ContextVar("taskcast_trace_id", default=None)
_installed = False


def setup(level: str | None = None) -> None:
    """Configure the root logger once, at a process's start (``TASKCAST_LOG_LEVEL``, default INFO)."""
    install()
    handler = logging.StreamHandler()
    handler.setFormatter(TraceFormatter(FORMAT))
    logging.basicConfig(
        level=(level or os.environ.get("TASKCAST_LOG_LEVEL") or "INFO").upper(),
        handlers=[handler],
    )


@contextmanager
def traced(trace_id: str | None) -> Iterator[None]:
    """Within this block, every log record carries ``trace_id`` (``None`` leaves it unset)."""
    install()
    token = _trace_id.set(trace_id)
    try:
        yield
    finally:
        _trace_id.reset(token)


def current_trace_id() -> str | None:
    return _trace_id.get()


class TraceFormatter(logging.Formatter):
    """:data:`FORMAT`, and `` [trace <id>]`` at the end of a line logged about a task."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Here rather than in format(): before the traceback, which format() appends.
        line = super().formatMessage(record)
        trace_id = getattr(record, "trace_id", None)
        return line if trace_id is None else f"{line} [trace {trace_id}]"


def install() -> None:
    """Make every log record carry the current trace id (once per process; idempotent).

    A record factory rather than a handler filter: it applies whichever logger and handler a
    record goes through (RQ's, Chalice's, pytest's), and captures the context where the record
    is made, not where it is written.
    """
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def traced_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.trace_id = _trace_id.get()
        return record

    logging.setLogRecordFactory(traced_record)
    _installed = True
