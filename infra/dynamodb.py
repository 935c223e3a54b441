"""The DynamoDB tables: tasks (with owner and status indexes) and idempotency keys."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from taskcore.idempotency import idempotency_table_definition
from taskcore.store import EXPIRY_ATTRIBUTE, tasks_table_definition

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


def ensure_tables(client: Any, tasks_table: str, idempotency_table: str) -> None:
    ensure_table(client, tasks_table_definition(tasks_table))
    ensure_table(client, idempotency_table_definition(idempotency_table))


def delete_tables(client: Any, *names: str) -> None:
    for name in names:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=name)
