"""CPU time of processes, from /proc: where a benchmark's work was done."""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of ``pid`` and of its children it has reaped (RQ's work horses)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces: the fields start after its closing parenthesis.
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}
