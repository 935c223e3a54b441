"""The fan-out benchmark's figures: the table it prints, and the same figures as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..stats import percentile
from .run import Result


@dataclass(frozen=True)
class Run:
    """One connection count: taskcast and the bare websockets server, measured in one run."""

    watchers: int
    taskcast: Result
    bare: Result


def _ms(samples: list[float], p: float) -> float:
    return 1000 * percentile(samples, p)


def figures(result: Result) -> dict[str, float]:
    """``p50_ms``, ``p99_ms`` (delivery latency), ``events_per_s`` (delivered) and
    ``kib_per_conn`` (the server's RSS growth per connection)."""
    return {
        "p50_ms": _ms(result.latencies_s, 50),
        "p99_ms": _ms(result.latencies_s, 99),
        "events_per_s": result.delivered_per_s,
        "kib_per_conn": result.rss_per_connection_kb,
    }


def to_json(runs: list[Run], rate: float, seconds: float) -> dict[str, Any]:
    """``{"rate", "seconds", "runs": [{"watchers", <figures>, "baseline": <figures>}]}``."""
    return {
        "rate": rate,
        "seconds": seconds,
        "runs": [
            {"watchers": run.watchers, **figures(run.taskcast), "baseline": figures(run.bare)}
            for run in runs
        ],
    }


def table(runs: list[Run]) -> str:
    header = (
        "watchers",
        "p50 ms",
        "p99 ms",
        "events/s",
        "KiB/conn",
        "bare p50",
        "bare p99",
        "bare ev/s",
        "bare KiB",
        "p99 ratio",
    )
    lines = [
        "| " + " | ".join(f"{h:>9}" for h in header) + " |",
        "|" + "|".join("-" * 11 for _ in header) + "|",
    ]
    for run in runs:
        ours, bare = figures(run.taskcast), figures(run.bare)
        cells = (
            run.watchers,
            *ours.values(),
            *bare.values(),
            ours["p99_ms"] / bare["p99_ms"],
        )
        lines.append(
            "| "
            + " | ".join(f"{c:>9.1f}" if isinstance(c, float) else f"{c:>9}" for c in cells)
            + " |"
        )
    lines += [
        "",
        "taskcast: worker-side append (Lua) -> Redis pub/sub -> realtime hub -> watcher's websocket;",
        "bare: websockets' broadcast() to the one connection a message is for (no compression, as",
        "taskcast). KiB/conn: the server's RSS growth per connection, once every watcher is subscribed.",
    ]
    return "\n".join(lines)
