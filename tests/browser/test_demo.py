"""``make demo`` as a newcomer meets it: the board, then the stack stays up for the console."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from taskcore.names import Names
from tests.conftest import RABBITMQ_URL, WATCH_SECRET, free_ports_in_a_row

from .conftest import REDIS_URL, drop_topology, free_port

pytestmark = pytest.mark.e2e


def test_the_demo_stays_up_for_the_console_it_prints_until_ctrl_c(
    page: Page, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("edge", "realtime", "moto", "console")}
    env = {
        **os.environ,
        "TASKCAST_NAMESPACE": (namespace := f"demo{os.getpid()}"),
        "TASKCAST_RABBITMQ_URL": RABBITMQ_URL,
        "TASKCAST_REDIS_URL": REDIS_URL,  # flushed with the browser package's stack
        "TASKCAST_WATCH_SECRET": WATCH_SECRET,
    }
    env.pop("AWS_ENDPOINT_URL", None)
    argv = [sys.executable, "-m", "taskcast.cli", "demo"]
    argv += [f"--{name}-port={port}" for name, port in ports.items()]
    argv += [f"--metrics-port={free_ports_in_a_row(6)}"]  # the demo's three workers and the rest
    output = tmp_path / "demo.out"
    with output.open("w") as out:
        demo = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 120
            while not (found := re.search(r"Open the console: (\S+)", output.read_text())):
                assert demo.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.5)
            console_url = found.group(1)
            assert console_url == f"http://127.0.0.1:{ports['console']}/"
            assert "API key: dev-key" in output.read_text()

            page.goto(console_url)
            page.fill("#api-key", "dev-key")
            page.click("#key-use")
            page.click("#nav a[data-view=tasks]")
            # The six tasks the board showed, ended, listed in the browser.
            expect(page.locator("#tasks-body tr")).to_have_count(6)
            expect(page.locator("#nav-ops")).to_be_visible()  # dev is an operator here
        finally:
            demo.send_signal(signal.SIGINT)
            code = demo.wait(timeout=60)
            drop_topology(Names(namespace))
    assert code == 0, output.read_text()
