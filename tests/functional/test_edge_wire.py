"""The running local edge (``taskcast.local.edge``) over raw sockets, sent what no client library
would send: every answer is a whole HTTP response, ``2xx`` or ``4xx``, with a JSON body (the
API's error shape for a ``4xx``), and the server goes on answering."""

from __future__ import annotations

import base64
import json
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from taskcore import limits
from tests.functional.conftest import RunningEdge

KEY = b"X-Api-Key: alice-key\r\n"
JSON = b"Content-Type: application/json\r\n"
ARABIC_THREE = "\u0663".encode()
TASK = str(uuid.UUID(int=1)).encode()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(edge: RunningEdge, raw: bytes) -> Answer:
    """The one answer to ``raw``, sent on a connection of its own."""
    (answer,) = exchange_all(edge, raw)
    return answer


def exchange_all(edge: RunningEdge, raw: bytes) -> list[Answer]:
    """Send ``raw`` on a connection of its own, end the sending side, read every answer.

    More than one if ``raw`` holds more than one request: bytes after a request's end (a body
    without a ``Content-Length``, say) are the next request.
    """
    with socket.create_connection((edge.host, edge.port), timeout=10) as connection:
        try:
            connection.sendall(raw)
            connection.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse before reading it all: its answer is still to come
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    answers = []
    head = raw.startswith(b"HEAD ")
    while received or not answers:
        answer, received = _parse(received, head=head)
        answers.append(answer)
        head = False  # what follows a first request's end is never a well-formed HEAD
    return answers


def _parse(received: bytes, *, head: bool) -> tuple[Answer, bytes]:
    """The HTTP response ``received`` starts with, complete (status line, headers, whole body),
    and what follows it.

    An interim ``100 Continue`` (the answer to ``Expect: 100-continue``) may come first. The
    answer to ``HEAD`` has no body, unless the request line was too broken to say it was one.
    """
    while re.match(rb"HTTP/1\.1 100 [^\r]*\r\n\r\n", received):
        received = received.split(b"\r\n\r\n", 1)[1]
    assert b"\r\n\r\n" in received, f"no complete response: {received[:300]!r}"
    header_block, rest = received.split(b"\r\n\r\n", 1)
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    matched = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", status_line)
    assert matched, f"not a status line: {status_line!r}"
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    if head and (not rest or rest.startswith(b"HTTP/1.")):
        length = 0
    assert len(rest) >= length, "the body is shorter than its Content-Length"
    return Answer(int(matched.group(1)), headers, rest[:length]), rest[length:]


def assert_well_formed(answer: Answer, *, head: bool = False) -> None:
    """A 2xx or 4xx, whose body is JSON; for a 4xx, the API's one error shape."""
    assert 200 <= answer.status < 300 or 400 <= answer.status < 500, answer
    if head or answer.status == 204:
        return
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    if answer.status >= 400:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert {"code", "message"} <= set(error) <= {"code", "message", "field", "rule"}, error
        assert all(isinstance(value, str) and value for value in error.values()), error


def assert_still_answers(edge: RunningEdge) -> None:
    answer = exchange(edge, b"GET /health HTTP/1.1\r\nHost: edge\r\n\r\n")
    assert (answer.status, answer.json()) == (200, {"ok": True})


def post(path: bytes, body: bytes, headers: bytes = KEY + JSON) -> bytes:
    length = b"Content-Length: %d\r\n" % len(body)
    return b"POST " + path + b" HTTP/1.1\r\nHost: edge\r\n" + headers + length + b"\r\n" + body


def get(target: bytes, headers: bytes = KEY) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: edge\r\n" + headers + b"\r\n"


def cursor(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data)


CASES = [
    # (what, request, status, error code)
    ("an unknown route", get(b"/no/such/route"), 404, "not_found"),
    (
        "an unknown route, with Authorization",
        get(b"/a/b/c", b"Authorization: x\r\n"),
        404,
        "not_found",
    ),
    (
        "a method the path lacks",
        b"DELETE /tasks HTTP/1.1\r\nHost: e\r\n\r\n",
        405,
        "method_not_allowed",
    ),
    ("a method nobody has", b"BREW /tasks HTTP/1.1\r\nHost: e\r\n\r\n", 405, "method_not_allowed"),
    ("a method that is no token", b"G(T /tasks HTTP/1.1\r\nHost: e\r\n\r\n", 400, "bad_request"),
    (
        "JSON nested past the limit",
        post(b"/tasks", b'{"type":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        400,
        "bad_request",
    ),
    ("a body past the limit", post(b"/tasks", b"[" * 100_000 + b"]" * 100_000), 413, "too_large"),
    (
        "a number of 5000 digits",
        post(b"/tasks", b'{"type":"demo.noop","payload":{"n":' + b"1" * 5000 + b"}}"),
        400,
        "bad_request",
    ),
    (
        "text/plain",
        post(b"/tasks", b"{}", KEY + b"Content-Type: text/plain\r\n"),
        415,
        "unsupported_media_type",
    ),
    (
        "a Content-Length of letters",
        post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: ab"),
        400,
        "bad_request",
    ),
    (
        "a Content-Length in Arabic-Indic digits",
        post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: " + ARABIC_THREE),
        400,
        "bad_request",
    ),
    (
        "a negative Content-Length",
        post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: -2"),
        400,
        "bad_request",
    ),
    (
        "two Content-Lengths",
        post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: 2\r\nContent-Length: 3"),
        400,
        "bad_request",
    ),
    (
        "a Content-Length past the limit",
        post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: 99999999999"),
        413,
        "too_large",
    ),
    (
        "a body shorter than its Content-Length",
        post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: 9"),
        400,
        "bad_request",
    ),
    (
        "a chunked body",
        b"POST /tasks HTTP/1.1\r\nHost: e\r\n"
        + KEY
        + JSON
        + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        411,
        "length_required",
    ),
    ("limit in Arabic-Indic digits", get(b"/tasks?limit=" + ARABIC_THREE), 422, "invalid"),
    ("limit of 5000 digits", get(b"/tasks?limit=" + b"1" * 5000), 422, "invalid"),
    (
        "a cursor of deep JSON",
        get(b"/tasks?cursor=" + cursor(b"[" * 900 + b"]" * 900)),
        422,
        "invalid",
    ),
    (
        "a cursor naming no key",
        get(b"/tasks?cursor=" + cursor(b'{"task_id":"","owner":"alice","created_at":""}')),
        422,
        "invalid",
    ),
    ("a URL past the limit", get(b"/" + b"a" * limits.MAX_URL_BYTES), 414, "too_large"),
    ("a request line past http.server's", get(b"/" + b"a" * 70_000), 414, "too_large"),
    (
        "headers past the limit",
        get(b"/health", b"X-Big: " + b"a" * limits.MAX_HEADER_BYTES + b"\r\n"),
        431,
        "too_large",
    ),
    (
        "a header line past http.server's",
        get(b"/health", b"X-Big: " + b"a" * 70_000 + b"\r\n"),
        431,
        "too_large",
    ),
    (
        "too many headers",
        get(b"/health", b"".join(b"X-%d: a\r\n" % n for n in range(150))),
        431,
        "too_large",
    ),
    ("a garbage request line", b"GARBAGE\r\n\r\n", 400, "bad_request"),
    ("an empty request line", b"\r\n\r\n", 400, "bad_request"),
    ("HTTP/0.9", b"GET /health\r\n", 400, "bad_request"),
    ("HTTP/2.0", b"GET /health HTTP/2.0\r\n\r\n", 400, "bad_request"),
    (
        "a TLS hello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),
        400,
        "bad_request",
    ),
]


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_kind_of_bad_request_gets_its_4xx_in_the_apis_error_shape(
    running_edge: RunningEdge, request_bytes: bytes, status: int, code: str
) -> None:
    answer = exchange(running_edge, request_bytes)

    assert_well_formed(answer)
    assert (answer.status, answer.json()["error"]["code"]) == (status, code)
    if status == 405:
        assert answer.headers["allow"] == "POST, GET, OPTIONS"
    assert_still_answers(running_edge)


def test_the_limits_are_named_in_the_answers(running_edge: RunningEdge) -> None:
    messages = [
        exchange(running_edge, request_bytes).json()["error"]["message"]
        for request_bytes in (
            post(b"/tasks", b'{"type":' + b"[" * 40 + b"]" * 40 + b"}"),
            get(b"/" + b"a" * limits.MAX_URL_BYTES),
            get(b"/health", b"X-Big: " + b"a" * limits.MAX_HEADER_BYTES + b"\r\n"),
            post(b"/tasks", b"{}").replace(b"Length: 2", b"Length: 99999999999"),
        )
    ]
    limits_named = [
        limits.MAX_JSON_DEPTH,
        limits.MAX_URL_BYTES,
        limits.MAX_HEADER_BYTES,
        limits.MAX_BODY_BYTES,
    ]
    for message, limit in zip(messages, limits_named, strict=True):
        assert f"the limit is {limit}" in message


def test_head_answers_have_headers_and_no_body(running_edge: RunningEdge) -> None:
    answer = exchange(running_edge, b"HEAD /tasks HTTP/1.1\r\nHost: e\r\n\r\n")
    assert answer.status == 405
    assert int(answer.headers["content-length"]) > 0
    assert answer.body == b""


# --- generated requests ---------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, else ``odd``: most requests reach the app, some do not."""
    return st.integers(0, 9).flatmap(lambda n: odd if n == 0 else usual)


methods = mostly(
    st.sampled_from(["GET", "POST", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    st.sampled_from(["TRACE", "CONNECT", "get", "BREW"])
    | st.text(st.sampled_from(TOKEN_CHARS + "(\x00é"), min_size=1, max_size=8),
)
paths = st.sampled_from(
    [
        "/health",
        "/tasks",
        "/tasks",
        "/tasks/" + TASK.decode(),
        "/tasks/x/cancel",
        "/tasks/x/watch",
        "/tasks/" + TASK.decode() + "/resubmit",
        "/images",
        "/nothing",
        "/a/b/c/d",
        "/ops/overview",
        "/ops/dead-letters",
        "/openapi.json",
        "/task-types",
        "*",
        "//tasks",
        "/tasks/%00",
        "/tasks/%ff%fe",
        "/tasks/\u0663",
        "/" + "x" * 9000,
    ]
)
queries = st.lists(
    st.sampled_from(
        [
            "limit=\u0663",
            "limit=%D9%A3",
            "limit=" + "9" * 5000,
            "limit=-1",
            "limit=1",
            "limit=",
            "status=done",
            "status=failed",
            "type=demo.noop",
            "type=" + "t" * 3000,
            "since=\u0662\u0660\u0662\u0666-01-01",
            "since=2026-12-01T10:00:00Z",
            "until=9999-12-31T23:59:59-23:59",
            "cursor=" + cursor(b"[" * 900 + b"]" * 900).decode(),
            "cursor=%%%",
            "cursor=" + "A" * 2000,
            "cursor=",
        ]
    ),
    max_size=3,
).map(lambda params: ("?" + "&".join(params)) if params else "")
content_types = mostly(
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json; charset=utf-8",
            "text/plain",
            "*/*",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
            "",
            "application/json, text/html",
        ]
    ),
)
bodies = st.one_of(
    st.just(b""),
    st.just(b'{"type": "demo.noop"}'),
    st.just(b'{"type": "demo.sleep", "payload": {"seconds": 0, "steps": 1}}'),
    st.binary(max_size=64),
    st.integers(1, 70_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(30, 36).map(
        lambda depth: b'{"type":"demo.noop","payload":{"a":' + b"[" * depth + b"]" * depth + b"}}"
    ),
    st.sampled_from(
        [
            b'{"type": NaN}',
            b'{"type": 1e999}',
            b'{"type": "\\ud800"}',
            b'{"type":' + b"1" * 5000 + b"}",
        ]
    ),
)
lengths = mostly(
    st.just("right"),
    st.sampled_from(
        ["none", "abc", "\u0663", "-1", " 5 ", "+5", "0x10", "1" * 30, "99999999999", "", "2, 2"]
    ),
)
versions = mostly(
    st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    st.sampled_from(["HTTP/2.0", "http/1.1", "HTTP/1.1 x"]),
)
odd_headers = st.sampled_from(
    [
        b"Transfer-Encoding: chunked",
        b"X-Big: " + b"a" * 11_000,
        b"\r\n".join(b"X-%d: a" % n for n in range(120)),
        b"no colon here",
        b"X-Utf8: \xc3\xa9\xff",
        b"Expect: 100-continue",
        b"Origin: http://elsewhere.example",
    ]
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request as a client nobody here wrote might send it."""
    line = draw(
        mostly(
            st.builds(
                lambda method, path, query, version: f"{method} {path}{query} {version}".encode(),
                methods,
                paths,
                queries,
                versions,
            ),
            st.binary(max_size=40).filter(lambda line: b"\n" not in line),
        )
    )
    body = draw(bodies)
    headers = [b"Host: edge"]
    if draw(mostly(st.just(True), st.just(False))):
        headers.append(KEY.strip())
    headers.append(b"Content-Type: " + draw(content_types).encode())
    length = draw(lengths)
    if length == "right":
        headers.append(b"Content-Length: %d" % len(body))
    elif length != "none":
        headers.append(b"Content-Length: " + length.encode())
    headers.extend(draw(st.lists(odd_headers, max_size=1)))
    return line + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


@settings(
    max_examples=300,  # about 5 s
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=requests())
def test_whatever_arrives_the_answer_is_a_whole_2xx_or_4xx_with_a_json_body(
    running_edge: RunningEdge, raw: bytes
) -> None:
    for number, answer in enumerate(exchange_all(running_edge, raw)):
        event(f"answered {answer.status}")  # --hypothesis-show-statistics: what was reached
        assert_well_formed(answer, head=number == 0 and raw.startswith(b"HEAD "))
    assert_still_answers(running_edge)


def test_the_server_logged_no_unexpected_error(running_edge: RunningEdge) -> None:
    """Last in this module: nothing above made the server fail in a way it had to log."""
    exchange(running_edge, get(b"/health"))
    log = running_edge.log.read_text(errors="replace")
    assert "unexpected error" not in log
    assert "Exception occurred during processing of request" not in log  # a dropped answer
    assert "Traceback" not in log
