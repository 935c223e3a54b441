"""Task types that misbehave on purpose, for the tests of how workers run jobs.

Each appends ``task_id attempt`` to ``TASKCAST_DEMO_LEDGER`` when an attempt succeeds, as the
demo tasks do, so the chaos harness counts their side effects too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from taskcast import TaskContext, task
from taskcast_demo.tasks import _record

CRASHES = ("exit", "kill", "segfault")


def _crash(how: str) -> None:
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    raise AssertionError(f"unknown crash {how!r}")


CRASH_PAYLOAD = {
    "type": "object",
    "properties": {"how": {"enum": list(CRASHES)}},
    "required": ["how"],
    "additionalProperties": False,
}


@task("faulty.crash", payload=CRASH_PAYLOAD, max_attempts=2, retry_base_s=1)
def crash(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Crashes its process on the first attempt, ``how`` it is told; succeeds on the second."""
    if ctx.attempt == 1:
        _crash(payload["how"])
    _record(ctx)


@task("faulty.crash_isolated", payload=CRASH_PAYLOAD, max_attempts=2, retry_base_s=1, isolated=True)
def crash_isolated(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """``faulty.crash``, declared isolated: its attempts run in a process of their own."""
    crash(ctx, payload)


STUBBORN_PAYLOAD = {
    "type": "object",
    "properties": {
        "seconds": {"type": "number", "minimum": 0, "maximum": 600},
        "resists": {"enum": ["nothing", "exceptions", "signals", "gil"]},
    },
    "required": ["seconds", "resists"],
    "additionalProperties": False,
}


@task("faulty.stubborn", payload=STUBBORN_PAYLOAD, timeout_s=600)
def stubborn(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Runs ``seconds`` without ever looking at its cancel flag, resisting being stopped:

    - ``nothing``: plain sleeps;
    - ``exceptions``: catches every ``Exception`` and sleeps on (so a timeout does not end it);
    - ``signals``: blocks, in its thread, the signals a job is stopped with: a stop cannot be
      raised in it, as in C code that never returns to the interpreter;
    - ``gil``: sleeps in C holding the GIL, with those signals blocked: no other thread of its
      process runs meanwhile.
    """
    deadline = time.monotonic() + payload["seconds"]
    resists = payload["resists"]
    if resists in ("signals", "gil"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGUSR1})
    if resists == "gil":
        # A PyDLL call keeps the GIL; with the signals blocked, sleep(3) is not cut short.
        # (SIGALRM, sent to the process, may reach another thread, whose Python handler waits
        # for the main thread to return to the interpreter.)
        ctypes.PyDLL(None).sleep(int(payload["seconds"]))
    while (left := deadline - time.monotonic()) > 0:
        try:
            time.sleep(min(left, 0.1))
        except Exception:
            if resists != "exceptions":
                raise
    _record(ctx)
