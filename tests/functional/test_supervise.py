"""``Stack.supervise``: a part that exits is restarted after a backoff, and never while stopping."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator

import pytest

from taskcast.local.stack import NOT_RESTARTED, RESTART_MAX_S, Stack, StackError

EXITS = [sys.executable, "-c", "import sys; sys.exit(3)"]
LEAVES_A_CHILD = [
    sys.executable,
    "-c",
    "import subprocess, sys; "
    "print(subprocess.Popen(['sleep', '60'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid, flush=True); "
    "sys.exit(3)",
]


@pytest.fixture
def stack() -> Iterator[tuple[Stack, io.StringIO]]:
    """A stack that starts nothing itself: the test spawns its parts."""
    output = io.StringIO()
    stack = Stack({"TASKCAST_TASKS": "taskcast_demo.tasks"}, output=output, restart_stable_s=60)
    try:
        yield stack, output
    finally:
        stack.stop(grace_s=5)


def exited(stack: Stack, name: str) -> None:
    """Wait until the part ``name`` has exited."""
    deadline = time.monotonic() + 10
    while stack.returncode(name) is None:
        assert time.monotonic() < deadline, f"{name} did not exit"
        time.sleep(0.01)


def supervisor_lines(output: io.StringIO) -> list[str]:
    return [
        line.split("| ", 1)[1]
        for line in output.getvalue().splitlines()
        if line.startswith("taskcast ")
    ]


def test_a_part_that_keeps_exiting_is_restarted_after_a_doubling_backoff_up_to_30_s(
    stack: tuple[Stack, io.StringIO],
) -> None:
    running, output = stack
    running._spawn("relay", EXITS)
    now = time.monotonic()
    delays = []
    for restart in range(1, 8):
        exited(running, "relay")
        pid = running.pids()["relay"]
        running.supervise(now)  # notices the exit, schedules the restart
        delay = running._restarts["relay"].delay_s
        delays.append(delay)
        running.supervise(now + delay - 0.01)  # not yet
        assert running.pids()["relay"] == pid
        now += delay
        running.supervise(now)  # due: started again
        assert running.pids()["relay"] != pid
        assert running.restart_count("relay") == restart

    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert delays[-1] == RESTART_MAX_S
    lines = supervisor_lines(output)
    assert lines[0] == "relay exited with code 3; restarting in 1 s (restart 1)"
    assert lines[1].startswith("relay started again (pid ")
    assert lines[2] == "relay exited with code 3; restarting in 2 s (restart 2)"


def test_a_part_that_ran_a_while_before_it_died_is_restarted_after_1_s_again(
    stack: tuple[Stack, io.StringIO],
) -> None:
    running, output = stack
    running._spawn("realtime", EXITS)
    now = time.monotonic()
    for _ in range(3):  # backoff up to 4 s
        exited(running, "realtime")
        running.supervise(now)
        now += running._restarts["realtime"].delay_s
        running.supervise(now)
    exited(running, "realtime")
    running._child("realtime").started_at = now - 61  # as if it had run for a minute

    running.supervise(now)

    assert supervisor_lines(output)[-1] == (
        "realtime exited with code 3; restarting in 1 s (restart 4)"
    )


def test_nothing_is_restarted_once_the_stack_is_stopping(
    stack: tuple[Stack, io.StringIO],
) -> None:
    running, output = stack
    running._spawn("relay", EXITS)
    exited(running, "relay")
    now = time.monotonic()
    running.supervise(now)  # the restart is due in 1 s

    running.stop(grace_s=5)
    running.supervise(now + 10)

    assert running.pids() == {}
    assert not any("started again" in line for line in supervisor_lines(output))


@pytest.mark.parametrize("name", sorted(NOT_RESTARTED))
def test_a_part_whose_state_dies_with_it_stops_the_stack_in_words(
    stack: tuple[Stack, io.StringIO], name: str
) -> None:
    running, _ = stack
    running._spawn(name, EXITS)
    exited(running, name)
    with pytest.raises(StackError, match=f"{name} exited with code 3.*start the stack again"):
        running.supervise()


def test_what_a_dead_part_left_in_its_process_group_is_killed_with_it(
    stack: tuple[Stack, io.StringIO],
) -> None:
    running, output = stack
    running._spawn("worker-1", LEAVES_A_CHILD)
    exited(running, "worker-1")
    running._child("worker-1").pump.join(timeout=5)  # its line is written
    left = int(output.getvalue().split("| ", 1)[1])
    os.kill(left, 0)  # still there: its parent's exit does not end it

    running.supervise()

    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(left, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the part's child outlived it"
        time.sleep(0.05)
