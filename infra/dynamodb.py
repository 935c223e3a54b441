"""The DynamoDB tables: tasks (with owner and status indexes) and idempotency keys."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from taskcore.idempotency import idempotency_table_definition
from taskcore.status import TERMINAL
from taskcore.store import EXPIRY_ATTRIBUTE, LEGACY_INDEXES, tasks_table_definition
from taskcore.task import OPEN_STATUS_ATTRIBUTE

log = logging.getLogger(__name__)


def ensure_table(client: Any, definition: dict[str, Any]) -> bool:
    """Create the table unless it exists, wait until it is active, and turn on expiry.

    Returns whether the table was created.
    """
    name = definition["TableName"]
    created = False
    try:
        client.create_table(**definition)
        created = True
        log.info("created table %s", name)
    except client.exceptions.ResourceInUseException:
        log.info("table %s exists", name)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRY_ATTRIBUTE},
        )
    return created


def ensure_indexes(client: Any, definition: dict[str, Any]) -> None:
    """Bring an existing table's indexes to ``definition``'s: create the missing ones, then
    drop those of earlier versions (:data:`LEGACY_INDEXES`).

    One index change at a time, each waited for, as DynamoDB allows no more. The index of
    unfinished tasks is filled by :func:`backfill_open_status` (on every run: a scan of the
    table) before the old one goes.
    """
    name = definition["TableName"]
    described = client.describe_table(TableName=name)["Table"]
    have = {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])}
    attributes = definition["AttributeDefinitions"]
    for index in definition["GlobalSecondaryIndexes"]:
        if index["IndexName"] in have:
            continue
        log.info("table %s: creating index %s", name, index["IndexName"])
        client.update_table(
            TableName=name,
            AttributeDefinitions=attributes,
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )
        _wait_for_indexes(client, name)
    # Every run, not only the one that made the index: records an earlier version's writers
    # made or moved meanwhile (during an upgrade) are indexed by the next run.
    backfill_open_status(client, name)
    for legacy in LEGACY_INDEXES:
        if legacy in have:
            log.info("table %s: deleting index %s", name, legacy)
            client.update_table(
                TableName=name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": legacy}}]
            )
            _wait_for_indexes(client, name)


def backfill_open_status(client: Any, table: str) -> int:
    """Give every unfinished record written before the index of unfinished tasks existed its
    key; returns how many. Conditional on the status it read, so a task that moves meanwhile is
    left to the writer that moved it (whose write sets or drops the key itself)."""
    ended = [{"S": str(status)} for status in sorted(TERMINAL)]
    values = {f":e{i}": value for i, value in enumerate(ended)}
    scan: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "task_id, #status",
        "FilterExpression": f"attribute_not_exists(#open) AND NOT (#status IN ({', '.join(values)}))",
        "ExpressionAttributeNames": {"#open": OPEN_STATUS_ATTRIBUTE, "#status": "status"},
        "ExpressionAttributeValues": values,
    }
    filled = 0
    while True:
        page = client.scan(**scan)
        for item in page.get("Items", []):
            with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
                client.update_item(
                    TableName=table,
                    Key={"task_id": item["task_id"]},
                    UpdateExpression="SET #open = :status",
                    ConditionExpression="#status = :status",
                    ExpressionAttributeNames={"#open": OPEN_STATUS_ATTRIBUTE, "#status": "status"},
                    ExpressionAttributeValues={":status": item["status"]},
                )
                filled += 1
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    if filled:
        log.info("table %s: %d unfinished task(s) indexed", table, filled)
    return filled


def _wait_for_indexes(client: Any, name: str) -> None:
    while True:
        table = client.describe_table(TableName=name)["Table"]
        statuses = [i.get("IndexStatus") for i in table.get("GlobalSecondaryIndexes", [])]
        if all(status == "ACTIVE" for status in statuses):
            return
        time.sleep(2)


def ensure_tables(client: Any, tasks_table: str, idempotency_table: str) -> None:
    tasks = tasks_table_definition(tasks_table)
    if not ensure_table(client, tasks):
        ensure_indexes(client, tasks)
    ensure_table(client, idempotency_table_definition(idempotency_table))


def delete_tables(client: Any, *names: str) -> None:
    for name in names:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=name)
