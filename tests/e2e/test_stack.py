"""The whole stack as separate processes: submit over HTTP, run on RQ, watch over websockets."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from taskcast.local.stack import Ports, Stack, StackError, check_reachable
from taskcore.config import Config

from .conftest import free_port

pytestmark = pytest.mark.e2e

TASKS = 50
ALICE = {"X-Api-Key": "alice-key"}


@pytest.fixture
def stack(
    env: dict[str, str],
    redis_client: redis.Redis,
    amqp: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
) -> Iterator[Stack]:
    log_path = tmp_path / "stack.log"
    with log_path.open("w") as log:
        running = Stack(
            os.environ, ports=Ports(free_port(), free_port(), free_port()), workers=3, output=log
        )
        try:
            with running:
                pids = running.pids()
                yield running
        except StackError:
            print(log_path.read_text()[-5000:])
            raise
    assert [name for name, pid in pids.items() if _alive(pid)] == [], "parts left running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def watch(url: str, task_id: str, token: str) -> list[dict[str, Any]]:
    """Every message a watcher receives, up to and including ``end``."""
    messages: list[dict[str, Any]] = []
    async with connect(url) as ws:
        await ws.send(
            json.dumps({"op": "subscribe", "task_id": task_id, "token": token, "cursor": None})
        )
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 60))
            messages.append(message)
            if message["op"] in ("end", "error"):
                return messages


async def test_fifty_tasks_are_each_watched_gap_free_to_their_final_status(stack: Stack) -> None:
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=stack.edge_url, headers=ALICE, timeout=30) as http:

        async def submit_and_watch(n: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            payload = {
                "seconds": round(rng.uniform(0.2, 1.0), 2),
                "steps": rng.randint(1, 4),
                "fail_rate": 0.2,
            }
            if n == 0:
                payload["fail_rate"] = 1.0  # at least one failure, whatever the dice say
            response = await http.post("/tasks", json={"type": "demo.sleep", "payload": payload})
            assert response.status_code == 202, response.text
            body = response.json()
            return body["task"], await watch(
                body["watch"]["url"], body["task"]["task_id"], body["watch"]["token"]
            )

        results = await asyncio.gather(*(submit_and_watch(n) for n in range(TASKS)))
        records = {
            t["task_id"]: (await http.get(f"/tasks/{t['task_id']}")).json()["task"]
            for t, _ in results
        }

    undelivered = lost = doubled = 0
    for submitted, messages in results:
        task_id = submitted["task_id"]
        record = records[task_id]
        snapshot, events, end = messages[0], messages[1:-1], messages[-1]
        assert snapshot["op"] == "snapshot", messages
        assert all(m["op"] == "event" for m in events), messages
        seq = [m["event"]["seq"] for m in events]
        assert seq == list(
            range(snapshot["cursor"]["seq"] + 1, snapshot["cursor"]["seq"] + 1 + len(seq))
        ), seq
        assert (
            len({m["event"]["epoch"] for m in events} | ({snapshot["cursor"]["epoch"]} - {None}))
            <= 1
        )
        if record["status"] not in ("succeeded", "failed"):
            lost += 1
            continue
        if (
            end["op"] != "end"
            or end["status"] != record["status"]
            or not events
            or events[-1]["event"]["status"] != record["status"]
        ):
            undelivered += 1
        if (
            sum(
                1
                for m in events
                if m["event"]["status"] == "running" and m["event"]["kind"] == "status"
            )
            > 1
            or record["attempt"] != 1
        ):
            doubled += 1
        if record["status"] == "failed":
            assert record["error"]["type"] == "simulated"
            assert events[-1]["event"]["error"] == end["error"] == record["error"]
        else:
            assert events[-1]["event"]["result"] == end["result"] == record["result"]
    print(f"\nlost={lost} doubled={doubled} undelivered={undelivered} of {TASKS}")
    assert (lost, doubled, undelivered) == (0, 0, 0)
    assert any(r["status"] == "failed" for r in records.values())


async def test_a_task_s_trace_reaches_its_answer_record_events_and_every_part_s_log_lines(
    stack: Stack, tmp_path: Path
) -> None:
    trace_id = uuid.uuid4().hex
    caller = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with httpx.AsyncClient(base_url=stack.edge_url, headers=ALICE, timeout=30) as http:
        response = await http.post(
            "/tasks",
            json={"type": "demo.sleep", "payload": {"seconds": 0.2, "steps": 2, "fail_rate": 0}},
            headers={"traceparent": caller},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        task_id, traceparent = body["task"]["task_id"], body["task"]["traceparent"]
        messages = await watch(body["watch"]["url"], task_id, body["watch"]["token"])
        record = (await http.get(f"/tasks/{task_id}")).json()["task"]

    assert traceparent.startswith(f"00-{trace_id}-")
    assert response.headers["traceparent"] == record["traceparent"] == traceparent
    events = [m["event"] for m in messages if m["op"] == "event"]
    assert [e["status"] for e in events][-1] == "succeeded"
    assert {e["trace"] for e in events} == {traceparent}
    # The worker side's lines about the task, as its processes wrote them (RQ's own lines,
    # outside the task's code, name the job but are not ours).
    log = tmp_path / "stack.log"
    for _ in range(50):  # the children's output reaches the file a little after the events
        ours = [
            line
            for line in log.read_text().splitlines()
            if task_id in line and " worker_container." in line
        ]
        if any("succeeded" in line for line in ours):
            break
        await asyncio.sleep(0.2)
    parts = {line.split("|", 1)[0].strip().split("-")[0] for line in ours}
    assert parts == {"relay", "worker"}, ours
    assert all(line.endswith(f"[trace {trace_id}]") for line in ours), ours
    accepted = [line for line in log.read_text().splitlines() if f"task {task_id} (" in line]
    assert any(line.startswith("edge") and trace_id in line for line in accepted), accepted


def test_the_stack_says_what_to_do_when_rabbitmq_is_unreachable(env: dict[str, str]) -> None:
    config = Config.from_env(
        {**env, "TASKCAST_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"},
        need=("rabbitmq", "redis"),
    )
    with pytest.raises(StackError) as raised:
        check_reachable(config)
    assert "TASKCAST_RABBITMQ_URL" in str(raised.value)
    assert "rabbitmq-server" in str(raised.value)
