"""The CLI against an API that is down, slow, or answers errors: one line, and an exit code."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import taskcast as sdk

TASK_ID = "9f0c3a1e-0000-4000-8000-000000000001"


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    slow: bool = False
    hang_up: bool = False


def _error(code: str, message: str, **extra: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


class FakeApi:
    """An HTTP server on loopback that answers every request with ``answer``."""

    def __init__(self) -> None:
        self.answer = Answer(200, b"{}")
        self.release = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = api.answer
                if answer.slow:
                    api.release.wait(30)  # longer than the client waits; the test ends it
                    return  # the client has gone
                if answer.hang_up:
                    self.close_connection = True
                    return  # no status line at all
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


def taskcast(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("taskcast")
    return subprocess.run(
        [str(command), "--url", url, "--request-timeout", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nobody listens


def assert_one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("taskcast: ")
    return lines[0]


def test_a_server_that_is_down_is_named_with_what_to_try_and_exit_5() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    done = taskcast(url, "status", TASK_ID)
    line = assert_one_line(done)
    assert done.returncode == 5
    assert f"cannot reach {url} (connection refused)" in line
    assert "`taskcast up`" in line


@pytest.mark.parametrize(
    ("answer", "code", "words"),
    [
        pytest.param(
            Answer(404, _error("not_found", f"no task {TASK_ID}")),
            4,
            [f"no task {TASK_ID} (404 not_found)"],
            id="404",
        ),
        pytest.param(
            Answer(422, _error("invalid_payload", "seconds: must be <= 60", field="payload")),
            4,
            ["seconds: must be <= 60 (422 invalid_payload, field payload)"],
            id="422",
        ),
        pytest.param(
            Answer(401, _error("unauthorized", "API key is not valid")),
            4,
            ["API key is not valid (401 unauthorized)", "--api-key"],
            id="401",
        ),
        pytest.param(
            Answer(500, _error("internal", "internal error")),
            5,
            ["the API failed: internal error (500 internal)", "try again later"],
            id="500",
        ),
        pytest.param(
            Answer(
                503,
                _error("unavailable", "the task store is\nunavailable"),
                headers=(("Retry-After", "7"),),
            ),
            5,
            ["the task store is unavailable (503 unavailable)", "try again in 7 s"],
            id="503-retry-after-multiline-message",
        ),
        pytest.param(
            Answer(502, b"<html>\n<h1>Bad Gateway</h1>\n</html>", "text/html"),
            5,
            ["Bad Gateway, answered with text/html, not the API's JSON (502 not_json)"],
            id="502-html",
        ),
        pytest.param(
            Answer(404, b"<html>\nNot here\n</html>", "text/html; charset=utf-8"),
            4,
            ["(404 not_json)", "is --url (TASKCAST_URL) the taskcast API?"],
            id="404-html",
        ),
        pytest.param(
            Answer(200, b"<html>\nsome other site\n</html>", "text/html"),
            5,
            ["answered 200 with text/html, not the API's JSON", "is --url"],
            id="200-html",
        ),
        pytest.param(Answer(200, slow=True), 5, ["did not answer in time"], id="slow"),
        pytest.param(
            Answer(200, hang_up=True), 5, ["lost the connection to", "try again"], id="hang-up"
        ),
    ],
)
def test_an_error_answer_is_one_line_with_its_exit_code(
    api: FakeApi, answer: Answer, code: int, words: list[str]
) -> None:
    api.answer = answer
    done = taskcast(api.url, "status", TASK_ID)
    line = assert_one_line(done)
    assert done.returncode == code
    for word in words:
        assert word in line


def test_debug_also_shows_the_traceback(api: FakeApi) -> None:
    api.answer = Answer(500, _error("internal", "internal error"))
    done = taskcast(api.url, "--debug", "status", TASK_ID)
    assert done.returncode == 5
    assert "Traceback" in done.stderr
    assert "ServerError" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("taskcast: the API failed")


@pytest.mark.parametrize(
    ("url", "args"),
    [
        pytest.param(None, ["status"], id="no-task-id"),
        pytest.param("127.0.0.1:8000", ["status", TASK_ID], id="url-without-scheme"),
        pytest.param("http://[::1", ["status", TASK_ID], id="url-unparseable"),
    ],
)
def test_a_usage_error_exits_2(api: FakeApi, url: str | None, args: list[str]) -> None:
    done = taskcast(url or api.url, *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "usage: taskcast" in done.stderr


def test_the_sdk_raises_the_same_errors_as_one_hierarchy_under_their_old_names_too(
    api: FakeApi,
) -> None:
    api.answer = Answer(422, _error("invalid_payload", "bad", field="payload"))
    with sdk.Client(api.url, "k") as client, pytest.raises(sdk.ClientError) as refused:
        client.get(TASK_ID)
    assert isinstance(refused.value, sdk.ApiError)
    assert isinstance(refused.value, sdk.TaskcastError)
    assert (refused.value.status, refused.value.code, refused.value.field) == (
        422,
        "invalid_payload",
        "payload",
    )

    api.answer = Answer(503, _error("unavailable", "later"), headers=(("Retry-After", "3"),))
    with sdk.Client(api.url, "k") as client, pytest.raises(sdk.ServerError) as failed:
        client.get(TASK_ID)
    assert isinstance(failed.value, sdk.ApiError)
    assert failed.value.retry_after_s == 3

    url = f"http://127.0.0.1:{_closed_port()}"
    with sdk.Client(url, "k") as client, pytest.raises(sdk.ConnectError) as down:
        client.get(TASK_ID)
    assert isinstance(down.value, sdk.TransportError)
    assert isinstance(down.value, sdk.TaskcastError)
    assert isinstance(down.value.__cause__, httpx.ConnectError)
    assert down.value.reason == "connection refused"
    assert issubclass(sdk.WatchError, sdk.TaskcastError)
