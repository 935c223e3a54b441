"""The README's HTTP, CLI and Python examples, run as written against a running stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taskcast.local.stack import Stack

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"


def examples(language: str) -> list[str]:
    """The README's fenced blocks in ``language`` that talk to the documented stack with the
    demo tasks (the walkthroughs, which bring their own tasks, are test_walkthroughs')."""
    text = README.read_text()
    for walkthrough in ("## Your first task\n", "## The image task\n"):
        before, _, rest = text.partition(walkthrough)
        text = before + "\n## " + rest.split("\n## ", 1)[1]
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)
    return [b for b in blocks if DOCUMENTED_URL in b or b.startswith("taskcast ")]


def run(argv: list[str], stack: Stack) -> str:
    env = {
        **os.environ,
        "TASKCAST_URL": stack.edge_url,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_readme_has_the_examples_this_test_runs() -> None:
    assert len(examples("sh")) == 2
    assert len(examples("python")) == 2
    assert len(re.findall(r"```js\n", README.read_text())) == 1


@pytest.mark.parametrize("index", [0, 1])
def test_the_shell_examples_work_as_written(shared_stack: Stack, index: int) -> None:
    block = examples("sh")[index].replace(DOCUMENTED_URL, shared_stack.edge_url)
    output = run(["bash", "-euo", "pipefail", "-c", block], shared_stack)
    assert '"task_id"' in output or "succeeded" in output, output


@pytest.mark.parametrize("index", [0, 1])
def test_the_python_examples_work_as_written(shared_stack: Stack, index: int) -> None:
    source = examples("python")[index].replace(DOCUMENTED_URL, shared_stack.edge_url)
    output = run([sys.executable, "-c", source], shared_stack)
    lines = output.splitlines()
    assert any(line.startswith("end succeeded") for line in lines), output


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_browser_example_works_as_written(shared_stack: Stack) -> None:
    # Node's WebSocket and fetch are the browser's APIs; the example's code is run unchanged.
    (block,) = re.findall(r"```js\n(.*?)```", README.read_text(), re.DOTALL)
    script = block + (
        f"submitAndWatch({json.dumps(shared_stack.edge_url)}, 'dev-key', 'demo.sleep', "
        "{seconds: 1, steps: 2, fail_rate: 0}, (m) => console.log(m.op, (m.event || m.task || m).status))"
        ".then((id) => console.log('done', id), (e) => { console.error(e); process.exit(1); });"
    )
    output = run(["node", "--experimental-websocket", "--no-warnings", "-e", script], shared_stack)
    lines = output.splitlines()
    assert lines[0].startswith("snapshot")
    assert "end succeeded" in lines
    assert lines[-1].startswith("done ")
