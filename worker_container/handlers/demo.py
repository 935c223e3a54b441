"""The demo handlers: ``demo.sleep`` (seeds 000 and 002) and ``demo.noop``."""

from __future__ import annotations

import os
import random
import time
from typing import Any

from ..context import TaskContext
from . import HandlerError, handler

LEDGER = os.environ.get("TASKCAST_DEMO_LEDGER")
"""A file to which the demo handlers append ``task_id attempt`` when an attempt succeeds: the
side effect that the chaos tests count to prove no task ran twice (read once, at start-up)."""


def _record(ctx: TaskContext) -> None:
    if LEDGER:
        # One short write with O_APPEND: whole lines, however many workers append at once.
        with open(LEDGER, "a") as ledger:
            ledger.write(f"{ctx.task_id} {ctx.attempt}\n")


@handler("demo.sleep")
def sleep(ctx: TaskContext) -> dict[str, Any]:
    """Work for ``seconds`` (random 1-10 s if absent) in ``steps``, then fail with ``fail_rate``.

    Between steps it stops if cancelled, unless ``cooperative`` is false: then only the forced
    stop after the grace period ends it.
    """
    seconds = ctx.payload.get("seconds")
    if seconds is None:
        seconds = random.uniform(1, 10)
    steps = int(ctx.payload.get("steps", 5))
    cooperative = bool(ctx.payload.get("cooperative", True))
    for step in range(1, steps + 1):
        if cooperative:
            ctx.raise_if_cancelled()
        time.sleep(seconds / steps)
        ctx.progress(100 * step / steps, f"step {step} of {steps}")
    if random.random() < float(ctx.payload.get("fail_rate", 0.1)):
        raise HandlerError(f"simulated failure after {seconds:.2f} s")
    _record(ctx)
    return {"slept_s": round(seconds, 3)}


@handler("demo.flaky")
def flaky(ctx: TaskContext) -> dict[str, Any]:
    """Fail the first ``failures`` attempts, then succeed: the retry path, on demand."""
    time.sleep(float(ctx.payload.get("seconds", 0.2)))
    failures = int(ctx.payload.get("failures", 1))
    if ctx.attempt <= failures:
        raise HandlerError(f"attempt {ctx.attempt} fails on purpose ({failures} will)")
    _record(ctx)
    return {"attempts": ctx.attempt}


@handler("demo.noop")
def noop(ctx: TaskContext) -> None:
    _record(ctx)
