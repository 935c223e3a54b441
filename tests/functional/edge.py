"""Calling the edge through chalice's test client: the keys and helpers its tests share."""

from __future__ import annotations

import json
from typing import Any

from chalice.test import Client

ALICE = {"X-Api-Key": "alice-key", "Content-Type": "application/json"}
BOB = {"X-Api-Key": "bob-key", "Content-Type": "application/json"}


def submit(edge: Client, body: Any, headers: dict[str, str] = ALICE) -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return edge.http.post("/tasks", headers=headers, body=raw)


def error_of(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.body)["error"])


def body_of(response: Any) -> Any:
    return json.loads(response.body)
