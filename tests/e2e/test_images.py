"""The image task through the whole stack: the shortcut route, the worker on the images queue,
retries of what may pass later, failures of what never will, and ``taskcast demo --image``."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import redis
from PIL import Image

from taskcast import Client
from taskcast.local.demo import run_image_demo
from taskcast.local.stack import Ports, Stack
from taskcore.event import EventKind
from tests.e2e.conftest import free_port
from tests.images import Canary, Origin
from tests.integration.helpers import logged_events

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(
    env: dict[str, str],
    redis_client: redis.Redis,
    amqp: aio_pika.abc.AbstractChannel,
    server: Origin,
    tmp_path: Path,
) -> Iterator[Stack]:
    stack_env = {
        **os.environ,
        "TASKCAST_FETCH_ALLOWLIST": f"127.0.0.1:{server.server_address[1]}",
    }
    with (tmp_path / "stack.log").open("w") as log:
        running = Stack(
            stack_env,
            ports=Ports(free_port(), free_port(), free_port()),
            tasks="taskcast_images.tasks",
            output=log,
        )
        try:
            with running:
                yield running
        except BaseException:
            print((tmp_path / "stack.log").read_text()[-5000:])
            raise


async def _watched(
    client: Client, task_id: str, watch: Any, opens: threading.Event | None = None
) -> list[Any]:
    """Every update of the task; with ``opens``, set once the watcher holds its snapshot."""
    updates = []
    async for update in client.watch(task_id, watch):
        updates.append(update)
        if opens is not None:
            opens.set()
    return updates


async def test_images_are_filtered_retried_or_refused_as_their_origins_deserve(
    stack: Stack, server: Origin, birds: list[Canary], redis_client: redis.Redis
) -> None:
    with Client(stack.edge_url, "alice-key") as client:
        answer = await asyncio.to_thread(
            httpx.post,
            f"{stack.edge_url}/images",
            headers={"X-Api-Key": "alice-key"},
            json={
                "url": f"{server.base}/gated-cat.png",
                "filter": "rotate",
                "params": {"degrees": 90},
            },
        )
        assert answer.status_code == 202, answer.text
        good = answer.json()
        failing = {
            path: client.submit("image.filter", {"url": f"{server.base}{path}", "filter": "blur"})
            for path in ("/broken", "/missing", "/to-canary", "/page.html")
        }
        watched = await asyncio.gather(
            _watched(client, good["task"]["task_id"], _watch(good), opens=server.gate),
            *(_watched(client, sub.task_id, sub.watch) for sub in failing.values()),
        )
        records = {path: client.get(sub.task_id) for path, sub in failing.items()}
        done = client.get(good["task"]["task_id"])

    assert done["status"] == "succeeded"
    logged = logged_events(redis_client, stack.config.names, done["task_id"])
    stages = [e.data["stage"] for e in logged if e.kind is EventKind.CUSTOM]
    assert stages == ["download", "decode", "filter", "upload"]
    # The watcher, in before the download could end (the origin held it), gets the stages from
    # there on, live, in order; it may have missed "download", emitted as the task started.
    seen = [u.event_data["stage"] for u in watched[0] if u.kind == "custom"]
    assert seen in (stages, stages[1:])
    served = await asyncio.to_thread(httpx.get, done["result"]["url"], timeout=10)
    picture = Image.open(io.BytesIO(served.content))
    assert (picture.format, picture.size) == ("PNG", (200, 320))

    outcomes = {
        path: (r["status"], r["attempt"], r["error"]["type"]) for path, r in records.items()
    }
    assert outcomes == {
        "/broken": ("failed", 3, "fetch_unavailable"),  # 5xx: retried with backoff, then failed
        "/missing": ("failed", 1, "fetch_failed"),  # 4xx: failed at once
        "/to-canary": ("failed", 1, "fetch_refused"),  # a redirect to this machine: refused
        "/page.html": ("failed", 1, "not_an_image"),
    }
    broken = logged_events(redis_client, stack.config.names, failing["/broken"].task_id)
    assert [str(e.status) for e in broken if e.kind is EventKind.STATUS].count("retrying") == 2
    assert watched[1][-1].op == "end"
    assert [bird.connections for bird in birds] == [0, 0, 0]


def _watch(answer: dict[str, Any]) -> Any:
    from taskcast.client import Watch

    return Watch.from_json(answer["watch"])


def test_the_image_demo_filters_the_sample_and_saves_the_result(
    env: dict[str, str],
    redis_client: redis.Redis,
    amqp: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)

    code = run_image_demo("sepia", ports=Ports(free_port(), free_port(), free_port()))

    assert code == 0
    (saved,) = (tmp_path / ".taskcast").glob("sepia-*.png")
    with Image.open(saved) as picture:
        assert (picture.format, picture.size) == ("PNG", (480, 320))
