"""The websocket protocol's codec: any client message is a message or a protocol error."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcore import protocol
from taskcore.event import Cursor
from taskcore.protocol import ErrorCode, ProtocolError, Subscribe, Unsubscribe

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
cursors = st.builds(Cursor, st.none() | st.text(min_size=1, max_size=20), st.integers(min_value=0))


def _parse(raw: str | bytes) -> Subscribe | Unsubscribe | ProtocolError:
    try:
        return protocol.parse_client(raw)
    except ProtocolError as exc:
        return exc


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_frame_parses_to_a_message_or_a_protocol_error(raw: str | bytes) -> None:
    outcome = _parse(raw)
    if isinstance(outcome, ProtocolError):
        assert outcome.code in ErrorCode.__members__.values()
        assert 1000 <= outcome.close_code < 5000
        assert outcome.close_code != 1011
    else:
        assert isinstance(outcome, Subscribe | Unsubscribe)


@given(json_values)
def test_any_json_parses_to_a_message_or_a_protocol_error(value: object) -> None:
    outcome = _parse(json.dumps(value))
    if isinstance(outcome, ProtocolError):
        assert outcome.close_code != 1011


@given(st.uuids(), st.text(max_size=100), st.none() | cursors)
def test_a_subscribe_round_trips(task_id: uuid.UUID, token: str, cursor: Cursor | None) -> None:
    message = Subscribe(str(task_id), token, cursor)
    assert protocol.parse_client(message.encode()) == message


@given(st.uuids())
def test_an_unsubscribe_round_trips(task_id: uuid.UUID) -> None:
    message = Unsubscribe(str(task_id))
    assert protocol.parse_client(message.encode()) == message


@pytest.mark.parametrize(
    ("raw", "code", "close"),
    [
        (b"{}", "unsupported_data", 1003),
        ("nope", "invalid_json", 1007),
        ("[" * 100_000 + "]" * 100_000, "invalid_json", 1007),
        ('{"op": "subscribe", "cursor": ' + "[" * 40 + "]" * 40 + "}", "invalid_json", 1007),
        ('{"op": "subscribe", "cursor": [[[[]]]]}', "bad_request", 1008),
        ('{"op": "subscribe", "task_id": 1' + "0" * 200 + "}", "invalid_json", 1007),
        ("[]", "bad_request", 1008),
        ('{"op": "watch", "task_id": "x"}', "bad_request", 1008),
        (f'{{"op": "subscribe", "task_id": "{uuid.uuid4()}"}}', "invalid_token", 4001),
        (
            f'{{"op": "subscribe", "task_id": "{uuid.uuid4()}", "token": "t", "cursor": {{"seq": -1}}}}',
            "bad_request",
            1008,
        ),
    ],
)
def test_each_fault_has_its_code_and_close_code(raw: str | bytes, code: str, close: int) -> None:
    with pytest.raises(ProtocolError) as refused:
        protocol.parse_client(raw)
    assert (refused.value.code, refused.value.close_code) == (code, close)


@given(st.text(max_size=300) | st.binary(max_size=300) | json_values.map(json.dumps))
def test_any_server_frame_parses_to_a_message_or_a_protocol_error(raw: str | bytes) -> None:
    try:
        message = protocol.parse_server(raw)
    except ProtocolError:
        pass
    else:
        assert message.op in ("snapshot", "event", "end", "error")


def test_a_server_message_carries_the_cursor_a_client_resumes_from() -> None:
    event = protocol.parse_server(
        json.dumps({"op": "event", "event": {"task_id": "t", "epoch": "e", "seq": 4}})
    )
    assert event.cursor == Cursor("e", 4)
    snapshot = protocol.parse_server(
        json.dumps(
            {
                "op": "snapshot",
                "task_id": "t",
                "task": {},
                "cursor": {"epoch": "e", "seq": 2},
                "resumed": False,
            }
        )
    )
    assert snapshot.cursor == Cursor("e", 2)


@pytest.mark.parametrize(
    ("close_code", "refused"),
    [
        *[(code, False) for code in (1000, 1001, 1006, 1011, 1013, 4002, 4013)],
        *[(code, True) for code in (1003, 1007, 1008, 1009, 4001, 4004)],
    ],
)
def test_a_client_comes_back_after_every_close_but_a_refusal(
    close_code: int, refused: bool
) -> None:
    assert protocol.is_refusal(close_code) is refused
