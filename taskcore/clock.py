"""Timestamps in the one form every part writes: ISO 8601, UTC, milliseconds, ``Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(seconds: float) -> str:
    """Format Unix time ``seconds`` as ``2026-11-23T10:00:00.123Z``.

    Fixed width, so these strings sort in time order: DynamoDB's indexes rely on that.
    """
    moment = datetime.fromtimestamp(seconds, UTC)
    # The year by hand: strftime's %Y gives years before 1000 fewer than four digits (on glibc).
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    """The current time in :func:`iso` form."""
    return iso(time.time())


def parse_iso(text: str) -> float:
    """Unix time from an :func:`iso` string."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
