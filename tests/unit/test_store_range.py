"""The task listing's ``created_at`` range, as the store turns it into a DynamoDB key condition."""

from __future__ import annotations

from typing import Any

import pytest

from taskcore.store import Page, TaskStore


class RecordingClient:
    """A DynamoDB client that finds nothing and keeps the queries it was asked."""

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []

    def query(self, **query: Any) -> dict[str, Any]:
        self.queries.append(query)
        return {"Items": []}


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-12-01T00:00:00.001Z", "2026-12-01T00:00:00.000Z"),
        ("2026-12-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"),
        ("0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z"),
    ],
    ids=["reversed", "empty", "before-year-1"],
)
def test_an_empty_range_is_an_empty_page_without_asking_dynamodb(since: str, until: str) -> None:
    # DynamoDB refuses a BETWEEN whose lower bound is above its upper bound.
    client = RecordingClient()

    page = TaskStore(client, "tasks").list_by_owner("alice", since=since, until=until)

    assert page == Page([], None)
    assert client.queries == []


def test_a_range_is_between_since_and_the_millisecond_before_until() -> None:
    client = RecordingClient()

    TaskStore(client, "tasks").list_by_owner(
        "alice", since="0586-02-26T04:58:16.198Z", until="2026-12-01T00:00:00.000Z"
    )

    (query,) = client.queries
    assert (
        query["KeyConditionExpression"] == "#owner = :owner AND #created BETWEEN :since AND :until"
    )
    assert query["ExpressionAttributeValues"][":since"] == {"S": "0586-02-26T04:58:16.198Z"}
    assert query["ExpressionAttributeValues"][":until"] == {"S": "2026-11-30T23:59:59.999Z"}
