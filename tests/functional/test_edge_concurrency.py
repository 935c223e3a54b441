"""The running local edge (``taskcast.local.edge``) with many clients at once and connections
kept open, as a load generator (``hey``, ``bench/submit.py``) or a browser uses it."""

from __future__ import annotations

import http.client
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import submit
from tests.functional.conftest import RunningEdge

TASK = json.dumps({"type": "demo.noop"}).encode()
CLIENTS = 50


def _ask(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    key: str,
    body: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"X-Api-Key": key}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_a_kept_alive_connection_carries_one_request_after_another(
    running_edge: RunningEdge,
) -> None:
    connection = http.client.HTTPConnection(running_edge.host, running_edge.port, timeout=10)
    try:
        health = _ask(connection, "GET", "/health", "alice-key")
        opened = connection.sock
        submitted = _ask(connection, "POST", "/tasks", "alice-key", TASK)
        task_id = submitted[1]["task"]["task_id"]
        read = _ask(connection, "GET", f"/tasks/{task_id}", "alice-key")
        kept = connection.sock
    finally:
        connection.close()

    assert (health[0], submitted[0], read[0]) == (200, 202, 200)
    assert read[1]["task"]["task_id"] == task_id
    assert opened is not None
    assert kept is opened  # one TCP connection for the three


def test_another_client_is_answered_while_one_is_midway_through_its_request(
    running_edge: RunningEdge,
) -> None:
    body = TASK.ljust(40)  # trailing spaces: still the same JSON
    head = (
        f"POST /tasks HTTP/1.1\r\nHost: x\r\nX-Api-Key: alice-key\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((running_edge.host, running_edge.port), timeout=10) as slow:
        slow.sendall(head + body[:10])  # the server waits for the other 30 bytes now

        other = http.client.HTTPConnection(running_edge.host, running_edge.port, timeout=10)
        try:
            status, _ = _ask(other, "POST", "/tasks", "bob-key", TASK)
        finally:
            other.close()

        slow.sendall(body[10:])
        slow_answer = slow.makefile("rb").readline()

    assert status == 202
    assert slow_answer.startswith(b"HTTP/1.1 202 ")


def test_clients_submitting_at_once_each_get_a_task_of_their_own_key(
    running_edge: RunningEdge,
) -> None:
    keys = ["alice-key", "bob-key"]

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(running_edge.host, running_edge.port, timeout=30)

    def submitter(number: int) -> list[tuple[str, int, Any]]:
        key, connection = keys[number % 2], connect()
        try:
            return [(key, *_ask(connection, "POST", "/tasks", key, TASK)) for _ in range(4)]
        finally:
            connection.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [answer for each in pool.map(submitter, range(CLIENTS)) for answer in each]

    assert [status for _, status, _ in answers] == [202] * (4 * CLIENTS)
    assert len({body["task"]["task_id"] for _, _, body in answers}) == 4 * CLIENTS
    # Each task is its own request's: its key reads it, the other key finds nothing.
    connection = connect()
    try:
        for key, _, body in answers:
            path, other = f"/tasks/{body['task']['task_id']}", keys[1 - keys.index(key)]
            assert _ask(connection, "GET", path, key)[0] == 200
            assert _ask(connection, "GET", path, other)[0] == 404
    finally:
        connection.close()
    # Every request thread reused a kept DynamoDB connection: none was opened and thrown away.
    assert "Connection pool is full" not in running_edge.log.read_text()


async def test_the_bench_load_counts_what_the_edge_accepted_and_what_it_refused(
    running_edge: RunningEdge,
) -> None:
    url = f"http://{running_edge.host}:{running_edge.port}"

    accepted = await submit.load(url, "alice-key", requests=30, concurrency=5)
    refused = await submit.load(url, "no-such-key", requests=30, concurrency=5)

    assert (accepted.accepted, accepted.errors, accepted.statuses) == (30, 0, {"202": 30})
    assert (refused.accepted, refused.errors, refused.statuses) == (0, 30, {"401": 30})
