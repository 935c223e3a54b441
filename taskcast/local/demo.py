"""``taskcast demo`` (``make demo``): start the stack, run demo tasks, watch them live, stop.

``taskcast demo --image`` runs the image task instead: the sample image, served on loopback
(and allowed by ``TASKCAST_FETCH_ALLOWLIST``), is filtered and stored in the results bucket; the
result is downloaded from its presigned URL into ``.taskcast/`` before the stack stops.

The stack's own logs go to a file so the live board stays readable; its path is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from taskcore.config import CONSOLE_PORT

from ..board import Board, summary
from ..client import Client
from .stack import Ports, Stack, StackError

DEMO_TASKS = "taskcast_demo.tasks"
"""The demo's task module, loaded like any user's (``TASKCAST_TASKS``)."""
IMAGE_TASKS = "taskcast_images.tasks"
STATE_DIR = Path(".taskcast")
DEFAULT_PORTS = Ports(console=CONSOLE_PORT)


def demo_payloads(count: int, rng: random.Random) -> list[dict[str, float | int]]:
    """``count`` demo.sleep payloads of 2-6 s; the first always fails, so the error path shows."""
    payloads: list[dict[str, float | int]] = [{"seconds": 3.0, "fail_rate": 1.0, "steps": 6}]
    for _ in range(count - 1):
        payloads.append(
            {"seconds": round(rng.uniform(2, 6), 1), "fail_rate": 0.1, "steps": rng.randint(4, 10)}
        )
    return payloads


class DemoFailed(Exception):
    """The demo could not run; the message says why."""


@contextlib.contextmanager
def _demo_stack(
    console: Console,
    env: Mapping[str, str],
    tasks: str,
    workers: int,
    ports: Ports,
    queues: str | None = None,
) -> Iterator[tuple[Stack, Client]]:
    """The stack with ``tasks`` running, its logs in a file: a client of its first API key."""
    log_path = STATE_DIR / "demo.log"
    STATE_DIR.mkdir(exist_ok=True)
    with log_path.open("w") as log_file:
        try:
            stack = Stack(
                env, workers=workers, tasks=tasks, queues=queues, ports=ports, output=log_file
            )
        except Exception as exc:
            raise DemoFailed(f"cannot start the demo: {exc}") from exc
        console.print(f"starting the stack (logs: {log_path}) ...")
        try:
            with stack:
                with Client(stack.edge_url, stack.api_key) as client:
                    yield stack, client
                console.print("stopping the stack ...")
        except StackError as exc:
            raise DemoFailed(f"the stack failed: {exc}\n(see {log_path})") from exc


DEMO_QUEUES = "default"
"""The queues the demo's workers serve: not ``gpu``, so a ``demo.gpu`` task shows what happens to
a task that no worker serves (it waits, then fails ``no_worker`` and is dead-lettered)."""


def run_demo(tasks: int = 6, workers: int = 3, ports: Ports = DEFAULT_PORTS) -> int:
    """Watch demo tasks on a board; then, if the console is served, stay up for it until Ctrl-C."""
    console = Console()
    try:
        with _demo_stack(console, os.environ, DEMO_TASKS, workers, ports, DEMO_QUEUES) as (
            stack,
            client,
        ):
            subs = [client.submit("demo.sleep", p) for p in demo_payloads(tasks, random.Random())]
            console.print(f"submitted {len(subs)} demo.sleep tasks; watching them live:\n")
            with Board(console) as board:
                final = asyncio.run(board.follow(client, subs))
            console.print(summary(final.values()))
            if stack.console_url is not None:
                _stay_up(console, stack)
    except DemoFailed as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    return 0


def _stay_up(console: Console, stack: Stack) -> None:
    """Keep the stack running for the console until Ctrl-C (or SIGTERM)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(
        f"\nThe stack stays up. Open the console: {stack.console_url}  "
        f"(API key: {stack.api_key})\n"
        f"API {stack.edge_url}, reference at {stack.console_url}reference.html. "
        "Ctrl-C stops everything.",
        soft_wrap=True,
    )
    while not stop.wait(0.5):
        stack.supervise()


@contextlib.contextmanager
def serve_sample() -> Iterator[str]:
    """The sample image at an http URL on loopback, for the length of the block."""
    from taskcast_images.sample import sample_png

    body = sample_png()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/sample.png" else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body) if self.path == "/sample.png" else 0))
            self.end_headers()
            if self.path == "/sample.png":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sample.png"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_image_demo(
    image_filter: str = "sepia", workers: int = 1, ports: Ports = DEFAULT_PORTS
) -> int:
    """Filter the sample image through the stack; save the result and say where it is."""
    console = Console()
    try:
        with serve_sample() as url:
            allow = url.split("/")[2]
            env = {**os.environ, "TASKCAST_FETCH_ALLOWLIST": allow}
            with _demo_stack(console, env, IMAGE_TASKS, workers, ports) as (_, client):
                sub = client.submit("image.filter", {"url": url, "filter": image_filter})
                console.print(f"submitted image.filter ({image_filter}) of {url}:\n")
                with Board(console) as board:
                    asyncio.run(board.follow(client, [sub]))
                task = client.get(sub.task_id)
                if task["status"] != "succeeded":
                    console.print(summary([task]))
                    return 1
                result = task["result"]
                saved = (
                    STATE_DIR
                    / f"{image_filter}-{sub.task_id[:8]}.{result['key'].rsplit('.', 1)[1]}"
                )
                saved.write_bytes(httpx.get(result["url"], timeout=10).raise_for_status().content)
                console.print(
                    f"result: s3://{result['bucket']}/{result['key']} "
                    f"({result['width']}x{result['height']}, {result['size']} bytes, "
                    f"{result['content_type']})\n"
                    f"presigned URL (valid {result['url_expires_in_s']} s, while the stack runs):\n"
                    f"  {result['url']}\n"
                    f"saved to {saved}",
                    soft_wrap=True,
                )
    except DemoFailed as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    return 0
