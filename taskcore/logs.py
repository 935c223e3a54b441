"""One log format for every taskcast process, so `taskcast up` can interleave them readably."""

from __future__ import annotations

import logging
import os

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup(level: str | None = None) -> None:
    """Configure the root logger once, at a process's start (``TASKCAST_LOG_LEVEL``, default INFO)."""
    logging.basicConfig(
        level=(level or os.environ.get("TASKCAST_LOG_LEVEL") or "INFO").upper(),
        format=FORMAT,
    )
