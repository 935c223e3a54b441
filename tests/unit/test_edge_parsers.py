"""The edge's parsers of what a client sends: body, payload, query parameters and API key.

Whatever the input, each gives a value or its own error (one the edge answers with a ``4xx``),
never another exception (which the edge would answer with a ``500``); valid inputs round-trip.
No servers: the app's functions are called directly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalicelib.errors import BadRequest, HttpError, TooLarge, Unprocessable
from chalicelib.payloads import Payloads
from chalicelib.submission import new_task, parse_body
from hypothesis import example, given, settings
from hypothesis import strategies as st

from taskcore.catalogue import Catalogue
from taskcore.clock import iso
from taskcore.config import Config
from taskcore.definition import catalogue
from taskcore.errors import ValidationError
from taskcore.limits import MAX_API_KEY_CHARS, MAX_BODY_BYTES, MAX_JSON_DEPTH
from tests.conftest import DEMO_TASKS
from tests.strategies import json_values


def deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def demo() -> Catalogue:
    return catalogue(DEMO_TASKS.split(","))


@pytest.fixture(scope="module")
def payloads(demo: Catalogue) -> Payloads:
    return Payloads(demo)


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(st.characters(), max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(0, 5000).map(lambda depth: b'{"type":' + b"[" * depth + b"]" * depth + b"}"),
    st.sampled_from([b'{"a": NaN}', b'{"a": 1e999}', b'{"a": "\\udc00"}', b"{" + b"1" * 5000]),
)


@settings(max_examples=300, deadline=None)
@given(raw=raw_bodies)
@example(raw=b"[" * 100_000 + b"]" * 100_000)
@example(raw=b'{"x":' + b"1" * 5000 + b"}")
def test_any_body_is_a_json_object_or_a_400_or_413(raw: bytes) -> None:
    try:
        body = parse_body(raw)
    except (BadRequest, TooLarge) as exc:
        refused: HttpError | None = exc
    else:
        refused = None
        assert isinstance(body, dict)
    assert refused is None or refused.message


@given(body=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_bodies_round_trip(body: dict[str, Any]) -> None:
    assert parse_body(json.dumps(body).encode()) == body


def test_the_body_limits_are_named_in_their_errors() -> None:
    with pytest.raises(TooLarge, match=str(MAX_BODY_BYTES)):
        parse_body(b" " * (MAX_BODY_BYTES + 1))
    with pytest.raises(BadRequest, match=f"limit is {MAX_JSON_DEPTH}"):
        parse_body(json.dumps({"type": "demo.noop", "payload": deep(MAX_JSON_DEPTH)}).encode())


submissions = st.fixed_dictionaries(
    {"type": st.sampled_from(["demo.sleep", "demo.noop", "demo.stream", "nope"]) | json_values},
    optional={
        "payload": st.one_of(
            st.dictionaries(
                st.sampled_from(["seconds", "steps", "fail_rate", "text", "z"]),
                json_values,
                max_size=3,
            ),
            json_values,
            st.integers(0, 3000).map(lambda depth: {"steps": deep(depth)}),
        ),
        "priority": st.sampled_from(["high", "normal"]) | json_values,
        "max_attempts": json_values,
        "delay_seconds": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(body=submissions)
@example(body={"type": "demo.noop", "payload": {"x": deep(5000)}})
@example(body={"type": "demo.sleep", "payload": {"steps": "\ud800"}})
def test_any_parsed_submission_is_a_task_or_a_validation_error(
    demo: Catalogue, payloads: Payloads, body: dict[str, Any]
) -> None:
    # Bodies built here, not parsed: the payload's own checks must hold without the body's.
    try:
        task = new_task(body, "alice", 3600, demo, payloads)
    except (ValidationError, Unprocessable):
        return
    assert task.type == body["type"]
    assert isinstance(task.payload, dict)


@given(
    seconds=st.floats(0, 60) | st.integers(0, 60),
    steps=st.integers(1, 100),
    fail_rate=st.floats(0, 1),
)
def test_valid_payloads_round_trip_with_their_defaults(
    demo: Catalogue, payloads: Payloads, seconds: float, steps: int, fail_rate: float
) -> None:
    payload = {"seconds": seconds, "steps": steps, "fail_rate": fail_rate}
    body = parse_body(json.dumps({"type": "demo.sleep", "payload": payload}).encode())
    assert new_task(body, "alice", 3600, demo, payloads).payload == payload


@settings(max_examples=300)
@given(text=st.text(st.characters(), max_size=50))
@example(text="\u0662\u0660\u0662\u0666-\u0661\u0662-\u0660\u0661")  # 2026-12-01, Arabic-Indic
@example(text="2026-12-01T10:00:00+99:00")
@example(text="9999-12-31T23:59:59-23:59")
def test_any_time_parameter_is_a_store_time_or_a_422_naming_it(text: str) -> None:
    import app

    try:
        moment = app._moment({"since": text}, "since")
    except Unprocessable as exc:
        refused: Unprocessable | None = exc
    else:
        refused = None
        assert moment is not None
    assert refused is None or refused.field == "since"


@given(seconds=st.integers(0, 4_000_000_000), millis=st.integers(0, 999))
def test_times_the_api_gives_out_round_trip_as_time_parameters(seconds: int, millis: int) -> None:
    import app

    given_out = iso(seconds + millis / 1000)
    assert app._moment({"until": given_out}, "until") == given_out


@given(key=st.text(st.characters(), max_size=2 * MAX_API_KEY_CHARS))
@example(key="k1")
@example(key="\ud800")
def test_any_api_key_is_an_owner_or_none(key: str) -> None:
    config = Config.from_env({"TASKCAST_API_KEYS": "k1=alice"})
    assert config.owner_of(key) == ("alice" if key == "k1" else None)
