"""The taskcast command against a running stack: submit, status, watch, list, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskcast.stack import Stack

pytestmark = pytest.mark.e2e


def taskcast(stack: Stack, *args: str, key: str = "dev-key") -> subprocess.CompletedProcess[str]:
    """Run the command as a user would; the broker's address too, for ``taskcast dlq``."""
    command = Path(sys.executable).with_name("taskcast")
    return subprocess.run(
        [str(command), "--url", stack.edge_url, "--api-key", key, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "COLUMNS": "200",
            "TASKCAST_RABBITMQ_URL": stack.env["TASKCAST_RABBITMQ_URL"],
            "TASKCAST_NAMESPACE": stack.config.namespace,
        },
    )


def test_submit_then_status_and_watch_follow_the_task_to_its_end(shared_stack: Stack) -> None:
    submitted = taskcast(
        shared_stack, "submit", "demo.sleep", "--payload", '{"seconds": 0.5, "fail_rate": 0}'
    )
    assert submitted.returncode == 0, submitted.stderr
    task_id = json.loads(submitted.stdout)["task"]["task_id"]

    watched = taskcast(shared_stack, "watch", task_id)
    assert watched.returncode == 0, watched.stderr
    assert "succeeded" in watched.stdout
    assert task_id[:8] in watched.stdout

    status = taskcast(shared_stack, "status", task_id)
    assert json.loads(status.stdout)["status"] == "succeeded"


def test_a_failed_task_makes_submit_watch_exit_1_and_shows_its_error(shared_stack: Stack) -> None:
    done = taskcast(
        shared_stack,
        "submit",
        "demo.sleep",
        "--payload",
        '{"seconds": 0, "steps": 1, "fail_rate": 1}',
        "--watch",
    )
    assert done.returncode == 1
    assert "simulated" in done.stdout


@pytest.mark.parametrize(
    ("args", "key", "message"),
    [
        (["submit", "demo.nope"], "dev-key", "unknown task type"),
        (["submit", "demo.sleep", "--payload", "{oops"], "dev-key", "--payload is not JSON"),
        (["status", "9f0c3a1e-0000-4000-8000-000000000001"], "dev-key", "no task"),
        (["list"], "wrong-key", "API key is not valid"),
    ],
)
def test_errors_are_one_clear_line_and_a_nonzero_exit(
    shared_stack: Stack, args: list[str], key: str, message: str
) -> None:
    done = taskcast(shared_stack, *args, key=key)
    assert done.returncode in (2, 3)
    assert message in done.stderr
    assert "Traceback" not in done.stderr
