"""Failpoints: crash this process at a named point in the code, for the chaos tests.

``TASKCAST_FAILPOINT=relay.before_ack:3`` SIGKILLs the process the third time it reaches
``hit("relay.before_ack")``: the only way to kill a process at an exact instruction, such as
between enqueueing a job and acking its message. Unset (always, in production) it costs one
comparison per call.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

_name, _, _count = (os.environ.get("TASKCAST_FAILPOINT") or "").partition(":")
_remaining = int(_count or 1)


def hit(name: str) -> None:
    """SIGKILL this process if ``name`` is the armed failpoint and its count has run down."""
    global _remaining
    if name != _name:
        return
    _remaining -= 1
    if _remaining == 0:
        log.warning("failpoint %s: killing process %d", name, os.getpid())
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)
