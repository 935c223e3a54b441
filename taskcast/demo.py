"""``taskcast demo`` (``make demo``): start the stack, run demo tasks, watch them live, stop.

The stack's own logs go to a file so the live board stays readable; its path is printed.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

from rich.console import Console

from .board import Board, summary
from .client import Client
from .stack import Stack, StackError

DEMO_TASKS = "taskcast_demo.tasks"
"""The demo's task module, loaded like any user's (``TASKCAST_TASKS``)."""


def demo_payloads(count: int, rng: random.Random) -> list[dict[str, float | int]]:
    """``count`` demo.sleep payloads of 2-6 s; the first always fails, so the error path shows."""
    payloads: list[dict[str, float | int]] = [{"seconds": 3.0, "fail_rate": 1.0, "steps": 6}]
    for _ in range(count - 1):
        payloads.append(
            {"seconds": round(rng.uniform(2, 6), 1), "fail_rate": 0.1, "steps": rng.randint(4, 10)}
        )
    return payloads


def run_demo(tasks: int = 6, workers: int = 3) -> int:
    console = Console()
    log_path = Path(".taskcast/demo.log")
    log_path.parent.mkdir(exist_ok=True)
    with log_path.open("w") as log_file:
        try:
            stack = Stack(
                os.environ,
                workers=workers,
                tasks=DEMO_TASKS,
                output=log_file,
            )
        except Exception as exc:
            console.print(f"[red]cannot start the demo:[/red] {exc}")
            return 2
        console.print(f"starting the stack (logs: {log_path}) ...")
        try:
            with stack:
                key = stack.env["TASKCAST_API_KEYS"].split(",")[0].split("=")[0]
                with Client(stack.edge_url, key) as client:
                    subs = [
                        client.submit("demo.sleep", p)
                        for p in demo_payloads(tasks, random.Random())
                    ]
                    console.print(f"submitted {len(subs)} demo.sleep tasks; watching them live:\n")
                    with Board(console) as board:
                        final = asyncio.run(board.follow(client, subs))
                    console.print(summary(final.values()))
                console.print("stopping the stack ...")
        except StackError as exc:
            console.print(f"[red]the stack failed:[/red] {exc}\n(see {log_path})")
            return 1
    return 0
