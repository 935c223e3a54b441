"""Idempotency keys: one task per owner, key and request, however often the request arrives.

A client that is not sure its ``POST /tasks`` arrived (a timeout, a dropped connection) sends it
again with the same ``Idempotency-Key`` header. The key's item (``owner#key`` -> task id and a
hash of the request) is claimed by a conditional write before the task record is written, so of
any number of concurrent identical requests exactly one creates the task (and publishes its
message); the others find the key taken and answer with the task it names
(:meth:`taskcore.store.TaskStore.create_once`).

A key expires ``TASKCAST_IDEMPOTENCY_TTL`` seconds after first use. DynamoDB's TTL deletes expired
items only eventually, so an expired item still present counts as free.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from .errors import ValidationError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-.:]{1,255}$")


class KeyReused(ValidationError):
    """The key was used before, by this owner, for a different request."""


def idempotency_table_definition(name: str) -> dict[str, Any]:
    """``create_table`` arguments for idempotency keys: ``owner#key`` -> task id and body hash."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }


def request_hash(body: Any) -> str:
    """A hash of a parsed request body that ignores key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's key for one request, scoped to its owner so owners never collide."""

    owner: str
    key: str
    request_hash: str
    ttl_s: int

    @classmethod
    def parse(cls, owner: str, key: str, body: Any, ttl_s: int) -> IdempotencyKey:
        """Validate the header's value; :class:`ValidationError` says what is wrong with it."""
        if not KEY_PATTERN.fullmatch(key):  # match() would let a final newline through
            raise ValidationError(
                "Idempotency-Key must be 1-255 letters, digits or - _ . :",
                field="Idempotency-Key",
            )
        return cls(owner, key, request_hash(body), ttl_s)

    @property
    def pk(self) -> str:
        return f"{self.owner}#{self.key}"

    def to_item(self, task_id: str, now: float | None = None) -> dict[str, dict[str, str]]:
        now = time.time() if now is None else now
        return {
            "pk": {"S": self.pk},
            "task_id": {"S": task_id},
            "request_hash": {"S": self.request_hash},
            "expires_at": {"N": str(int(now) + self.ttl_s)},
        }
