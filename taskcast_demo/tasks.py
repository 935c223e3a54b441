"""The demo task types: ``demo.sleep``, ``demo.flaky``, ``demo.noop``, ``demo.stream``, ``demo.gpu``."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any

from taskcast import TaskContext, TaskFailed, task

LEDGER = os.environ.get("TASKCAST_DEMO_LEDGER")
"""A file to which the demo tasks append ``task_id attempt`` when an attempt succeeds: the side
effect that the chaos tests count to prove no task ran twice (read once, at import)."""


def _record(ctx: TaskContext) -> None:
    if LEDGER:
        # One short write with O_APPEND: whole lines, however many workers append at once.
        with open(LEDGER, "a") as ledger:
            ledger.write(f"{ctx.task_id} {ctx.attempt}\n")


SLEEP_PAYLOAD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": 600,
            "description": "how long to run; random 1-10 s when absent",
        },
        "fail_rate": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.1,
            "description": "probability that the task fails at the end",
        },
        "steps": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 5,
            "description": "how many progress reports to make",
        },
        "cooperative": {
            "type": "boolean",
            "description": "stop between steps when cancelled (default true); false exercises "
            "the forced stop",
        },
    },
}


@task("demo.sleep", payload=SLEEP_PAYLOAD, timeout_s=660)
def sleep(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Sleeps a given or random 1-10 s, reporting progress in steps, and fails with probability
    fail_rate so the error path is exercised.

    Between steps it stops if cancelled, unless ``cooperative`` is false: then only the forced
    stop after the grace period ends it.
    """
    seconds = payload.get("seconds")
    if seconds is None:
        seconds = random.uniform(1, 10)
    steps = int(payload["steps"])
    for step in range(1, steps + 1):
        if payload.get("cooperative", True):
            ctx.raise_if_cancelled()
        time.sleep(seconds / steps)
        ctx.progress(100 * step / steps, f"step {step} of {steps}")
    if random.random() < float(payload["fail_rate"]):
        raise TaskFailed(f"simulated failure after {seconds:.2f} s", code="simulated")
    _record(ctx)
    return {"slept_s": round(seconds, 3)}


FLAKY_PAYLOAD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "failures": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "default": 1,
            "description": "how many attempts fail before one succeeds",
        },
        "seconds": {
            "type": "number",
            "minimum": 0,
            "maximum": 60,
            "default": 0.2,
            "description": "how long each attempt runs",
        },
    },
}


@task("demo.flaky", payload=FLAKY_PAYLOAD, max_attempts=3, retry_base_s=1, timeout_s=120)
def flaky(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Fails its first `failures` attempts, then succeeds: retries with backoff, shown."""
    time.sleep(float(payload["seconds"]))
    failures = int(payload["failures"])
    if ctx.attempt <= failures:
        raise TaskFailed(
            f"attempt {ctx.attempt} fails on purpose ({failures} will)", retry=True, code="flaky"
        )
    _record(ctx)
    return {"attempts": ctx.attempt}


@task(
    "demo.noop",
    payload={"type": "object", "additionalProperties": False},
    timeout_s=30,
)
def noop(ctx: TaskContext, payload: dict[str, Any]) -> None:
    """Does nothing and succeeds: the shortest possible task, for benchmarks."""
    _record(ctx)


@task(
    "demo.gpu",
    payload={"type": "object", "additionalProperties": False},
    queue="gpu",
    queue_timeout_s=20,
    timeout_s=30,
)
def gpu(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Runs on the ``gpu`` queue, which ``taskcast demo`` starts no worker for.

    There it waits for a worker, fails ``no_worker`` after 20 s and is dead-lettered: the dead
    letter the console's Operations tab replays. Where a worker serves ``gpu`` it just succeeds.
    """
    _record(ctx)
    return {"ran_on": "gpu"}


STREAM_PAYLOAD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "text": {
            "type": "string",
            "maxLength": 2000,
            "default": "taskcast streams each word of this text to the task's watchers",
            "description": "the text to stream, one word per event",
        },
        "interval_s": {
            "type": "number",
            "minimum": 0,
            "maximum": 2,
            "default": 0.05,
            "description": "the pause between words",
        },
    },
}


@task("demo.stream", payload=STREAM_PAYLOAD, timeout_s=600)
async def stream(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Streams a text word by word as custom ``token`` events: an async task with its own
    events, the way a model's output would be streamed."""
    words = str(payload["text"]).split()
    for n, word in enumerate(words, 1):
        ctx.raise_if_cancelled()
        ctx.emit("token", {"text": word, "index": n - 1})
        ctx.progress(100 * n / len(words), f"{n} of {len(words)} words")
        await asyncio.sleep(float(payload["interval_s"]))
    _record(ctx)
    return {"words": len(words)}
