"""Watch tokens: proof that the bearer may watch one task of one owner until a given time.

A token is ``base64url(claims).base64url(HMAC-SHA256(secret, claims))`` with claims
``{"t": task_id, "o": owner, "exp": unix_seconds}``. The edge issues it with the task; the
realtime service accepts nothing else. It is checked in constant time, so a forger learns
nothing from how long a refusal takes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from . import limits
from .errors import ExpiredToken, TokenError, ValidationError, WrongTaskToken
from .limits import MAX_TOKEN_CHARS


@dataclass(frozen=True)
class WatchClaims:
    task_id: str
    owner: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def issue(
    secret: bytes, task_id: str, owner: str, ttl_s: int, now: float | None = None
) -> tuple[str, int]:
    """A token for ``task_id`` of ``owner``, and the Unix time it expires."""
    expires_at = int(time.time() if now is None else now) + ttl_s
    claims = {"t": task_id, "o": owner, "exp": expires_at}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_sign(secret, body)}", expires_at


def verify(secret: bytes, token: object, task_id: str, now: float | None = None) -> WatchClaims:
    """The claims of ``token`` if it is genuine, unexpired and for ``task_id``.

    Raises :class:`TokenError` (forged or malformed), :class:`ExpiredToken` or
    :class:`WrongTaskToken`, and nothing else, whatever ``token`` is.
    """
    if (
        not isinstance(token, str)
        or len(token) > MAX_TOKEN_CHARS
        or not token.isascii()  # so it encodes, and compares in constant time, as bytes
        or token.count(".") != 1
    ):
        raise TokenError("watch token is malformed")
    body, signature = token.split(".")
    if not hmac.compare_digest(signature.encode(), _sign(secret, body).encode()):
        raise TokenError("watch token signature does not match")
    # Signed, so made by whoever holds the secret: still parsed as strictly as any input.
    try:
        claims = limits.loads(_unb64(body), what="watch token", max_bytes=MAX_TOKEN_CHARS)
    except (ValidationError, binascii.Error):
        raise TokenError("watch token is malformed") from None
    if not (
        isinstance(claims, dict)
        and isinstance(claims.get("t"), str)
        and isinstance(claims.get("o"), str)
        and type(claims.get("exp")) is int
    ):
        raise TokenError("watch token is malformed")
    parsed = WatchClaims(claims["t"], claims["o"], claims["exp"])
    if parsed.expires_at <= (time.time() if now is None else now):
        raise ExpiredToken("watch token has expired; ask the API for a new one")
    if parsed.task_id != task_id:
        raise WrongTaskToken("watch token is for another task")
    return parsed
