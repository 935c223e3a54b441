import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcore import trace
from taskcore.message import (
    PERSISTENT,
    REASON_HEADER,
    TRACEPARENT_HEADER,
    CancelRequested,
    Envelope,
    MessageError,
    Submitted,
)

names = st.text(min_size=1)
traceparents = st.builds(lambda: trace.Trace.new().format())
submitted = st.builds(Submitted, names, names, names, st.one_of(st.none(), traceparents))


@given(submitted)
def test_a_submitted_message_decodes_from_its_envelope_as_it_was(message: Submitted) -> None:
    envelope = message.envelope()

    assert Submitted.decode(envelope.body, envelope.headers) == message


@given(names)
def test_a_cancel_request_decodes_from_its_envelope_as_it_was(task_id: str) -> None:
    envelope = CancelRequested(task_id).envelope()

    assert CancelRequested.decode(envelope.body, envelope.headers) == CancelRequested(task_id)


@given(st.binary(), st.dictionaries(st.text(), st.one_of(st.text(), st.binary(), st.integers())))
def test_arbitrary_bytes_decode_or_raise_only_message_error(
    body: bytes, headers: dict[str, object]
) -> None:
    for kind in (Submitted, CancelRequested):
        with contextlib.suppress(MessageError):
            kind.decode(body, headers)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_any_json_decodes_or_raises_only_message_error(value: object) -> None:
    body = json.dumps(value).encode()
    for kind in (Submitted, CancelRequested):
        with contextlib.suppress(MessageError):
            kind.decode(body)


def test_deeply_nested_json_is_a_message_error_not_a_crash() -> None:
    with pytest.raises(MessageError, match="not JSON"):
        Submitted.decode(b"[" * 100_000)


def test_a_submitted_message_s_envelope_has_every_property_the_relay_and_operators_rely_on() -> (
    None
):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    envelope = Submitted("id-1", "demo.sleep", "4bf92f3577b34da6a3ce929d0e0e4736", tp).envelope()

    assert envelope.routing_key == "task.submitted.demo.sleep"
    assert envelope.properties == {
        "message_id": "id-1",
        "type": "task.submitted",
        "headers": {TRACEPARENT_HEADER: tp},
        "content_type": "application/json",
        "delivery_mode": PERSISTENT,
    }
    assert json.loads(envelope.body) == {
        "v": 1,
        "task_id": "id-1",
        "type": "demo.sleep",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }


def test_a_cancel_request_goes_on_the_control_key() -> None:
    envelope = CancelRequested("id-1").envelope()

    assert (envelope.routing_key, envelope.message_id, envelope.type) == (
        "task.control.cancel",
        "id-1",
        "task.cancel",
    )


def test_an_invalid_traceparent_header_is_ignored_not_refused() -> None:
    body = Submitted("id-1", "demo.sleep", "t").encode()

    assert Submitted.decode(body, {TRACEPARENT_HEADER: "00-nonsense"}).traceparent is None


def test_a_traceparent_header_as_bytes_is_read() -> None:
    tp = trace.Trace.new().format()
    body = Submitted("id-1", "demo.sleep", "t").encode()

    assert Submitted.decode(body, {TRACEPARENT_HEADER: tp.encode()}).traceparent == tp


def test_one_kind_of_message_is_not_taken_for_the_other() -> None:
    with pytest.raises(MessageError):
        Submitted.decode(CancelRequested("id-1").encode())
    with pytest.raises(MessageError):
        CancelRequested.decode(Submitted("id-1", "demo.sleep", "t").encode())


def test_a_dead_lettered_message_keeps_everything_and_adds_the_reason() -> None:
    envelope = Envelope(b"x", "", message_id="m", type="t", headers={"a": 1}, delivery_mode=1)

    dead = envelope.dead("unparseable")

    assert dead.body == b"x"
    assert dead.routing_key == "unknown"
    assert dead.message_id == "m"
    assert dead.type == "t"
    assert dead.headers == {"a": 1, REASON_HEADER: "unparseable"}
    assert dead.delivery_mode == PERSISTENT
