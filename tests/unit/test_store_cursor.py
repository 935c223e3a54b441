"""List cursors: whatever a client sends as one, the key it names or a ``ValidationError``."""

from __future__ import annotations

import base64
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from taskcore.clock import iso
from taskcore.errors import ValidationError
from taskcore.limits import MAX_CURSOR_CHARS
from taskcore.store import _decode_cursor, _encode_cursor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


keys = st.fixed_dictionaries(
    {
        "task_id": st.uuids().map(str) | st.text(max_size=40) | st.integers(),
        "owner": st.just("alice") | st.text(max_size=10),
        "created_at": st.floats(-62e9, 253e9).map(iso) | st.text(max_size=30) | st.none(),
    },
    optional={"extra": st.text(max_size=5)},
)
cursors = st.one_of(
    st.text(st.characters(), max_size=200),  # unpaired surrogates included
    st.text(st.sampled_from("AZaz09-_=+/"), max_size=200),
    st.binary(max_size=150).map(_b64),
    keys.map(lambda key: _b64(json.dumps(key).encode())),
    st.integers(0, 2000).map(lambda depth: _b64(b"[" * depth + b"]" * depth)),
    st.integers(0, 400).map(lambda depth: _b64(b'{"task_id":' * depth + b"1" + b"}" * depth)),
)


@settings(max_examples=400, deadline=None)
@given(cursor=cursors)
@example(cursor=_b64(b'{"task_id":"","owner":"alice","created_at":""}'))
@example(cursor=_b64(b"[" * 900 + b"]" * 900))
@example(cursor="A" * 100_000)
def test_any_cursor_is_a_key_of_the_owners_index_or_a_validation_error(cursor: str) -> None:
    try:
        key = _decode_cursor(cursor, "alice")
    except ValidationError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.field == "cursor"
        return
    # What passes is a key DynamoDB takes: every part a non-empty string, a real id and time.
    assert key["owner"] == {"S": "alice"}
    assert str(uuid.UUID(key["task_id"]["S"])) == key["task_id"]["S"]
    assert len(key["created_at"]["S"]) == len("2026-12-01T10:00:00.000Z")


owners = st.text(min_size=1, max_size=100)


@given(task_id=st.uuids(), owner=owners, created=st.floats(-62e9, 253e9))
def test_cursors_given_out_round_trip(task_id: uuid.UUID, owner: str, created: float) -> None:
    task: Any = SimpleNamespace(task_id=str(task_id), owner=owner, created_at=iso(created))
    cursor = _encode_cursor(task)
    assert len(cursor) <= MAX_CURSOR_CHARS
    assert _decode_cursor(cursor, owner) == {
        "task_id": {"S": task.task_id},
        "owner": {"S": owner},
        "created_at": {"S": task.created_at},
    }


def test_another_owners_cursor_is_refused() -> None:
    task: Any = SimpleNamespace(task_id=str(uuid.uuid4()), owner="bob", created_at=iso(0))
    with pytest.raises(ValidationError):
        _decode_cursor(_encode_cursor(task), "alice")
