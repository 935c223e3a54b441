"""W3C Trace Context: the ``traceparent`` a task carries from the edge to every event and log line.

The format is https://www.w3.org/TR/trace-context/#traceparent-header:
``00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>``, lowercase, neither id all zeros.
:func:`parse` follows the spec's parsing rules, including those for versions after ``00`` (read
the first four fields, refuse ``ff``); taskcast itself only writes version ``00``.

taskcast records no spans. The edge continues the caller's trace with one span id of its own
per task (:func:`continued`), and every later hop passes that same ``traceparent`` on: see
docs/decisions.md.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

VERSION = "00"
SAMPLED = 0x01
RANDOM_TRACE_ID = 0x02
"""Level 2's flag: the trace-id is random. Kept for the trace it came with; never set here."""
KNOWN_FLAGS = SAMPLED | RANDOM_TRACE_ID
"""The flags passed on; the spec says to zero the others."""

WRITTEN = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
"""The shape of every ``traceparent`` taskcast writes (for schemas; :func:`parse` reads)."""

_HEX_ID = re.compile(r"[0-9a-f]+")
_LENGTH = 55
"""The length of a version 00 ``traceparent``; later versions may only add fields after it."""
_OWS = " \t"
"""HTTP's optional white space around a header value."""


@dataclass(frozen=True, slots=True)
class Trace:
    """One parsed ``traceparent``: the trace, the span it names as parent, and its flags."""

    trace_id: str
    parent_id: str
    flags: int = 0

    def __post_init__(self) -> None:
        if not (_valid_id(self.trace_id, 32) and _valid_id(self.parent_id, 16)):
            raise ValueError(
                f"not a W3C trace-id and parent-id: {self.trace_id!r}, {self.parent_id!r}"
            )
        if not 0 <= self.flags <= 0xFF:
            raise ValueError(f"trace-flags {self.flags!r} is not one byte")

    @classmethod
    def new(cls) -> Trace:
        """The start of a new trace (not sampled: taskcast records no spans)."""
        return cls(_random_id(32), _random_id(16))

    def child(self) -> Trace:
        """The same trace with a new span id: what a hop that is a span of its own passes on."""
        return Trace(self.trace_id, _random_id(16), self.flags & KNOWN_FLAGS)

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def format(self) -> str:
        """The ``traceparent`` header value (version 00)."""
        return f"{VERSION}-{self.trace_id}-{self.parent_id}-{self.flags:02x}"

    def __str__(self) -> str:
        return self.format()


def parse(value: object) -> Trace | None:
    """The trace of a ``traceparent`` value, or ``None`` if it is not a valid one.

    Never raises: an invalid header is to be ignored, per the spec, not refused.
    """
    if not isinstance(value, str):
        return None
    text = value.strip(_OWS)
    if len(text) < _LENGTH:
        return None
    version = text[:2]
    if not _is_hex(version) or version == "ff":
        return None
    # Version 00 is exactly 55 characters; a later version may add fields after a dash.
    if len(text) > _LENGTH and (version == VERSION or text[_LENGTH] != "-"):
        return None
    if text[2] != "-" or text[35] != "-" or text[52] != "-":
        return None
    trace_id, parent_id, flags = text[3:35], text[36:52], text[53:55]
    if not (_valid_id(trace_id, 32) and _valid_id(parent_id, 16) and _is_hex(flags)):
        return None
    return Trace(trace_id, parent_id, int(flags, 16))


def continued(value: object) -> Trace:
    """The trace context of a task submitted with ``traceparent`` header ``value``.

    A valid header's trace goes on, with a span id of the task's own as parent; no header, or an
    invalid one, starts a new trace (the spec's guidance: an invalid ``traceparent`` is ignored).
    """
    parent = parse(value)
    return Trace.new() if parent is None else parent.child()


def trace_id_of(value: object) -> str | None:
    """The trace-id of a ``traceparent`` value, or ``None`` if it is not a valid one."""
    trace = parse(value)
    return None if trace is None else trace.trace_id


def _is_hex(text: str) -> bool:
    return _HEX_ID.fullmatch(text) is not None


def _valid_id(text: str, length: int) -> bool:
    return len(text) == length and _is_hex(text) and text != "0" * length


def _random_id(length: int) -> str:
    while True:  # all zeros is invalid; one chance in 2**64 or less
        candidate = secrets.token_hex(length // 2)
        if candidate != "0" * length:
            return candidate
