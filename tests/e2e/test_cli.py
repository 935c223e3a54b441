"""The taskcast command against a running stack: submit, status, watch, list, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskcast.local.stack import Stack

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
    ("args", "key", "message", "code"),
    [
        (["submit", "demo.nope"], "dev-key", "unknown task type", 4),
        (["submit", "demo.sleep", "--payload", "{oops"], "dev-key", "--payload is not JSON", 2),
        (["status", "9f0c3a1e-0000-4000-8000-000000000001"], "dev-key", "no task", 4),
        (["list"], "wrong-key", "API key is not valid", 4),
    ],
)
def test_errors_are_one_clear_line_and_a_nonzero_exit(
    shared_stack: Stack, args: list[str], key: str, message: str, code: int
) -> None:
    done = taskcast(shared_stack, *args, key=key)
    assert done.returncode == code
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_types_lists_the_task_types_the_api_accepts(shared_stack: Stack) -> None:
    listed = taskcast(shared_stack, "types")
    assert listed.returncode == 0, listed.stderr
    assert "demo.sleep" in listed.stdout
    assert "demo.stream" in listed.stdout
    as_json = json.loads(taskcast(shared_stack, "types", "--json").stdout)
    assert {"name", "payload_schema", "defaults", "limits"} <= set(as_json[0])


def _plain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("taskcast")
    return subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_tasks_export_writes_the_catalogue_and_names_a_module_it_cannot_import(
    tmp_path: Path,
) -> None:
    out = tmp_path / "catalogue.json"
    written = _plain("tasks", "export", "taskcast_demo.tasks", "-o", str(out))
    assert written.returncode == 0, written.stderr
    names = [t["name"] for t in json.loads(out.read_text())["task_types"]]
    assert names == ["demo.flaky", "demo.gpu", "demo.noop", "demo.sleep", "demo.stream"]

    missing = _plain("tasks", "export", "no_such_package.tasks")
    assert missing.returncode == 2
    assert "task module 'no_such_package.tasks' cannot be imported" in missing.stderr


def test_up_without_task_modules_says_how_to_name_them() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TASKCAST_TASKS"}
    refused = _plain("up", env=env)
    assert refused.returncode == 2
    assert "--tasks myapp.tasks" in refused.stderr
