"""A live terminal board of tasks: one row each, with status, progress bar and last message.

The events a task emits itself (``ctx.emit``) are printed above the board as they come, one
line each: ``<task> <name>: <data as JSON>``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from .client import Client, Submission, Update

STATUS_STYLE = {
    "pending": "dim",
    "queued": "cyan",
    "running": "yellow",
    "retrying": "magenta",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "bright_black",
}


class Board:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.final: dict[str, dict[str, Any]] = {}
        self._progress = Progress(
            TextColumn("{task.fields[short]}"),
            TextColumn("{task.fields[kind]:<11}"),
            TextColumn("[{task.fields[style]}]{task.fields[status]:<9}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("[dim]{task.fields[message]}"),
            console=self.console,
        )
        self._rows: dict[str, TaskID] = {}
        self._tasks: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Board:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def add(self, task: dict[str, Any]) -> None:
        self._tasks[task["task_id"]] = dict(task)
        self._rows[task["task_id"]] = self._progress.add_task(
            "",
            total=100,
            short=task["task_id"][:8],
            kind=task["type"],
            status=task["status"],
            style=STATUS_STYLE.get(task["status"], ""),
            message="",
        )

    def apply(self, update: Update) -> None:
        row = self._rows[update.task_id]
        style = STATUS_STYLE.get(update.status, "")
        task = self._tasks[update.task_id]
        if update.kind == "custom":
            data = json.dumps(update.event_data, separators=(", ", ": "))
            line = Text.assemble((update.task_id[:8], "dim"), f" {update.name}: {data[:200]}")
            self.console.print(line, highlight=False)
        if update.op != "end":
            task["attempt"] = update.attempt
            self._progress.update(
                row,
                completed=float(update.progress.get("percent", 0)),
                status=update.status,
                style=style,
                message=str(update.progress.get("message", ""))[:40],
            )
            return
        self.final[update.task_id] = {**task, **update.data}
        self._progress.update(row, status=update.status, style=style)
        error = update.data.get("error")
        if error:
            self._progress.update(row, message=f"{error['type']}: {error['message']}"[:60])

    async def follow(
        self, client: Client, submissions: Iterable[Submission]
    ) -> dict[str, dict[str, Any]]:
        """Watch every submission until it ends; return the final task records."""
        subs = list(submissions)
        for sub in subs:
            self.add(sub.task)

        async def one(sub: Submission) -> None:
            async for update in client.watch(sub.task_id, sub.watch):
                self.apply(update)

        await asyncio.gather(*(one(s) for s in subs))
        return {task_id: self.final[task_id] for task_id in self._tasks if task_id in self.final}


def summary(tasks: Iterable[dict[str, Any]]) -> Table:
    """The final table: one row per task, with its attempts and its result or error."""
    table = Table(title="taskcast: summary")
    for column in ("task", "type", "status", "attempts", "result / error"):
        table.add_column(column)
    for task in tasks:
        outcome = task.get("result") if task["status"] == "succeeded" else task.get("error")
        style = STATUS_STYLE.get(task["status"], "")
        table.add_row(
            task["task_id"][:8],
            task["type"],
            f"[{style}]{task['status']}",
            str(task["attempt"]),
            str(outcome),
        )
    return table
