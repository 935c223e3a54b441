import contextlib
import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcore import eventlog
from taskcore.errors import EventDecodeError
from taskcore.event import Event, EventKind
from taskcore.status import Status
from taskcore.task import Progress, TaskError
from taskcore.trace import Trace

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
optional_text = st.none() | st.text()
events = st.builds(
    Event,
    task_id=st.text(),
    kind=st.sampled_from(EventKind),
    status=st.sampled_from(Status),
    attempt=st.integers(0, 100),
    progress=st.builds(Progress, st.floats(0, 100), st.text()),
    ts=st.text(),
    result=json_values,
    error=st.none() | st.builds(TaskError, st.text(), st.text()),
    retry_at=optional_text,
    run_at=optional_text,
    waiting=optional_text,
    name=optional_text,
    data=json_values,
    trace=st.none() | st.builds(lambda: Trace.new().format()),
).map(
    # What encoding keeps: a custom event's name and data, no other's; a result only if set.
    lambda e: e if e.kind is EventKind.CUSTOM else replace(e, name=None, data=None)
)
epochs = st.text("0123456789abcdef", min_size=1, max_size=16)
seqs = st.integers(1, 2**53)


def _entry(epoch: str, seq: int, event: Event) -> dict[bytes, bytes]:
    """A stream entry's fields as redis-py reads them, as the writer's script adds them."""
    return {
        eventlog.SEQ_FIELD.encode(): str(seq).encode(),
        eventlog.EPOCH_FIELD.encode(): epoch.encode(),
        eventlog.EVENT_FIELD.encode(): eventlog.encode(event).encode(),
    }


@given(events, epochs, seqs)
def test_a_stream_entry_decodes_to_the_event_stamped_with_its_seq_and_epoch(
    event: Event, epoch: str, seq: int
) -> None:
    assert eventlog.decode_entry(_entry(epoch, seq, event)) == replace(event, epoch=epoch, seq=seq)


@given(events, epochs, seqs)
def test_a_channel_message_decodes_to_the_event_stamped_with_its_seq_and_epoch(
    event: Event, epoch: str, seq: int
) -> None:
    message = eventlog.encode_message(epoch, seq, eventlog.encode(event)).encode()

    assert eventlog.decode_message(message) == replace(event, epoch=epoch, seq=seq)


@given(st.binary())
def test_arbitrary_channel_bytes_decode_or_raise_only_event_decode_error(data: bytes) -> None:
    with contextlib.suppress(EventDecodeError):
        eventlog.decode_message(data)


@given(st.dictionaries(st.sampled_from([b"seq", b"epoch", b"e", b"x"]), st.binary()))
def test_arbitrary_entry_fields_decode_or_raise_only_event_decode_error(
    fields: dict[bytes, bytes],
) -> None:
    with contextlib.suppress(EventDecodeError):
        eventlog.decode_entry(fields)


@given(
    epochs,
    seqs,
    st.recursive(
        st.none() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    ),
)
def test_any_json_as_the_event_decodes_or_raises_only_event_decode_error(
    epoch: str, seq: int, value: object
) -> None:
    with contextlib.suppress(EventDecodeError):
        eventlog.decode_message(eventlog.encode_message(epoch, seq, json.dumps(value)))


def test_the_encoded_event_leaves_the_stamp_to_the_log() -> None:
    event = Event("t", EventKind.STATUS, Status.QUEUED, 0, Progress(), "now", seq=4, epoch="ab")

    assert not {"seq", "epoch"} & json.loads(eventlog.encode(event)).keys()


def test_an_entry_and_a_message_of_the_previous_format_still_decode() -> None:
    event = Event("t", EventKind.STATUS, Status.QUEUED, 0, Progress(), "now", seq=4, epoch="ab")

    stamped_json = json.dumps(event.to_json()).encode()  # what a worker wrote before
    assert eventlog.decode_entry({b"e": stamped_json}) == event
    assert eventlog.decode_message(stamped_json) == event


@pytest.mark.parametrize(
    "message",
    [b"ab:x:{}", b"ab:4", b":4:{}", b"ab:-1:{}", b"ab:4:[]", b"ab:4:not json", b"\xff:4:{}"],
)
def test_a_malformed_channel_message_is_an_event_decode_error(message: bytes) -> None:
    with pytest.raises(EventDecodeError):
        eventlog.decode_message(message)


def test_an_entry_without_its_event_or_with_half_a_stamp_is_an_event_decode_error() -> None:
    event = Event("t", EventKind.STATUS, Status.QUEUED, 0, Progress(), "now")
    with pytest.raises(EventDecodeError):
        eventlog.decode_entry({b"seq": b"1", b"epoch": b"ab"})
    with pytest.raises(EventDecodeError):
        eventlog.decode_entry({b"seq": b"1", b"e": eventlog.encode(event).encode()})
