import pytest

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
