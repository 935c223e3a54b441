import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from taskcore import token
from taskcore.errors import ExpiredToken, TokenError, WrongTaskToken

SECRET = b"a-secret-of-sufficient-length"


def test_a_token_verifies_for_its_task_and_names_its_owner() -> None:
    issued, expires_at = token.issue(SECRET, "task-1", "alice", ttl_s=60, now=1000)
    claims = token.verify(SECRET, issued, "task-1", now=1059)
    assert (claims.task_id, claims.owner, claims.expires_at) == ("task-1", "alice", expires_at)
    assert expires_at == 1060


def test_an_expired_token_is_refused() -> None:
    issued, _ = token.issue(SECRET, "task-1", "alice", ttl_s=60, now=1000)
    with pytest.raises(ExpiredToken):
        token.verify(SECRET, issued, "task-1", now=1060)


def test_another_tasks_token_is_refused() -> None:
    issued, _ = token.issue(SECRET, "task-1", "alice", ttl_s=60)
    with pytest.raises(WrongTaskToken):
        token.verify(SECRET, issued, "task-2")


def test_a_token_signed_with_another_secret_is_refused() -> None:
    issued, _ = token.issue(b"another-secret-entirely!", "task-1", "alice", ttl_s=60)
    with pytest.raises(TokenError) as raised:
        token.verify(SECRET, issued, "task-1")
    assert type(raised.value) is TokenError


def test_tampered_claims_are_refused() -> None:
    issued, _ = token.issue(SECRET, "task-1", "alice", ttl_s=60)
    _body, signature = issued.split(".")
    forged_body, _ = token.issue(SECRET, "task-1", "mallory", ttl_s=60)
    with pytest.raises(TokenError):
        token.verify(SECRET, f"{forged_body.split('.')[0]}.{signature}", "task-1")


@pytest.mark.parametrize("garbage", [None, 42, "", "no-dot", "a.b.c", "!!!.???"])
def test_garbage_is_refused_as_a_token_error(garbage: object) -> None:
    with pytest.raises(TokenError):
        token.verify(SECRET, garbage, "task-1")


def _signed(body: str) -> str:
    """A token whose signature is genuine, whatever its claims: as if the secret had leaked."""
    return f"{body}.{token._sign(SECRET, body)}"


claims_bodies = st.one_of(
    st.binary(max_size=80).map(token._b64),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=6,
    )
    .map(lambda value: json.dumps(value).encode())
    .map(token._b64),
    st.fixed_dictionaries(
        {"t": st.just("task-1"), "o": st.just("alice")},
        optional={"exp": st.integers() | st.floats() | st.text(max_size=5) | st.booleans()},
    )
    .map(lambda claims: json.dumps(claims).encode())
    .map(token._b64),
    st.integers(0, 3000).map(lambda depth: token._b64(b"[" * depth + b"]" * depth)),
    st.sampled_from(['{"t":"task-1","o":"alice","exp":1e999}', '{"t":"x","o":"y","exp":"٣"}'])
    .map(str.encode)
    .map(token._b64),
    # Not even base64 (no surrogates: a signer encodes the body, so it never holds one).
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
)
tokens = st.one_of(
    st.text(st.characters(), max_size=300),  # unpaired surrogates included
    st.text(st.sampled_from("ab.-_=\x00é\ud800"), max_size=40),
    claims_bodies.map(_signed),
)


@settings(max_examples=500, deadline=None)
@given(candidate=tokens)
@example(candidate="\ud800.x")
@example(candidate="a" * 100_000 + ".b")
@example(candidate=_signed(token._b64(b'{"t":"task-1","o":"alice","exp":1e999}')))
def test_any_string_is_claims_or_a_token_error(candidate: str) -> None:
    try:
        claims = token.verify(SECRET, candidate, "task-1", now=0)
    except TokenError:
        return
    assert claims.task_id == "task-1"
    assert isinstance(claims.owner, str)
    assert type(claims.expires_at) is int


@given(
    task_id=st.text(max_size=40),
    owner=st.text(max_size=40),
    ttl_s=st.integers(1, 10**9),
)
def test_issued_tokens_round_trip(task_id: str, owner: str, ttl_s: int) -> None:
    issued, expires_at = token.issue(SECRET, task_id, owner, ttl_s, now=1000)
    assert token.verify(SECRET, issued, task_id, now=1000) == token.WatchClaims(
        task_id, owner, expires_at
    )
