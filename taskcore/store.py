"""The task table: create, read, list, and fenced transitions of task records in DynamoDB.

The store is given a boto3 DynamoDB *client* rather than importing boto3, so this package stays
standard library only; the edge, the workers and the realtime service share these exact
queries and conditions.

Every write after creation is conditional on the status and attempt the writer last read.
A writer that loses the condition gets :class:`~taskcore.errors.ConditionLost`: someone else
moved the task first (a duplicate delivery, a stale worker, a cancel), and the write is dropped.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from . import limits
from .clock import iso, now_iso, parse_iso
from .errors import ConditionLost, ValidationError
from .idempotency import IdempotencyKey, KeyReused
from .limits import MAX_CURSOR_CHARS
from .status import TERMINAL, Status, check_transition
from .task import OPEN_STATUS_ATTRIBUTE, Item, Progress, Task

MAX_LIST_LIMIT = 100
"""The most tasks one page of a listing holds."""
BY_OWNER = "by_owner"
BY_OPEN_STATUS = "by_open_status"
"""The index of unfinished tasks by status: sparse, keyed on :data:`OPEN_STATUS_ATTRIBUTE`,
which a record holds only until it ends. What reads it costs the same however many tasks have
finished."""
LEGACY_INDEXES = ("by_status",)
"""Indexes of earlier versions that provisioning removes (``by_status`` held every task)."""


def tasks_table_definition(name: str) -> dict[str, Any]:
    """``create_table`` arguments for the task table: key, indexes (newest first) and billing."""

    def index(index_name: str, partition: str) -> dict[str, Any]:
        return {
            "IndexName": index_name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": "created_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }

    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "task_id", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": OPEN_STATUS_ATTRIBUTE, "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "task_id", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            index(BY_OWNER, "owner"),
            index(BY_OPEN_STATUS, OPEN_STATUS_ATTRIBUTE),
        ],
    }


EXPIRY_ATTRIBUTE = "expires_at"
CANCEL_ATTRIBUTE = "cancel_requested_at"


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor of the next, if there may be one."""

    tasks: list[Task]
    next_cursor: str | None


class TaskStore:
    def __init__(self, client: Any, table: str, idempotency_table: str | None = None) -> None:
        self._client = client
        self._table = table
        self._idempotency_table = idempotency_table

    def create(self, task: Task) -> None:
        """Write a new record; fails with :class:`ConditionLost` if the id exists already."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=task.to_item(),
                ConditionExpression="attribute_not_exists(task_id)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise ConditionLost(f"task {task.task_id} exists already") from None

    def create_once(self, task: Task, key: IdempotencyKey) -> tuple[Task, bool]:
        """Write ``task`` unless ``key`` already names one; return the task and whether it is new.

        The key is claimed first, by a conditional write naming ``task``'s id; only its claimant
        writes the record (and so publishes it). A request that finds the key taken answers with
        the task the key names, waiting briefly for its claimant to write it, and writing it
        itself, under the key's task id, if the claimant died in between. No transaction: see
        docs/decisions.md. :class:`KeyReused` if the key was used for another request.
        """
        assert self._idempotency_table is not None, "TaskStore built without idempotency_table"
        for attempt in range(8):
            now = int(time.time())
            try:
                self._client.put_item(
                    TableName=self._idempotency_table,
                    Item=key.to_item(task.task_id, now),
                    # An expired key that DynamoDB has not deleted yet is free.
                    ConditionExpression="attribute_not_exists(pk) OR #exp < :now",
                    ExpressionAttributeNames={"#exp": EXPIRY_ATTRIBUTE},
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                holder = self._key_holder(key, now)
                if holder is None:
                    continue  # it expired between our write and our read: claim it again
                existing = self.get(holder)
                if existing is not None:
                    return existing, False
                if attempt < 5:
                    time.sleep(0.05 * (attempt + 1))  # its claimant is writing it: wait
                    continue
                # Its claimant died between claiming the key and writing the task: take over.
                return self._create_or_get(replace(task, task_id=holder))
            else:
                return self._create_or_get(task)
        raise ConditionLost(f"idempotency key {key.key!r} kept changing")

    def _create_or_get(self, task: Task) -> tuple[Task, bool]:
        """Create ``task``, or return the record another writer created under its id first."""
        try:
            self.create(task)
        except ConditionLost:
            existing = self.get(task.task_id)
            assert existing is not None, "a task record disappeared as it was written"
            return existing, False
        return task, True

    def _key_holder(self, key: IdempotencyKey, now: int) -> str | None:
        """The task id ``key`` names, unless it has expired; :class:`KeyReused` if the key was
        taken for another request."""
        item = self._client.get_item(
            TableName=self._idempotency_table, Key={"pk": {"S": key.pk}}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item[EXPIRY_ATTRIBUTE]["N"]) < now:
            return None
        if item["request_hash"]["S"] != key.request_hash:
            raise KeyReused(
                "this Idempotency-Key was used for a different request; use a new key",
                field="Idempotency-Key",
            )
        return str(item["task_id"]["S"])

    def get(self, task_id: str) -> Task | None:
        """The record as it is now (a strongly consistent read), or ``None``."""
        response = self._client.get_item(
            TableName=self._table, Key={"task_id": {"S": task_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else Task.from_item(item)

    def transition(self, task: Task, target: Status, **changes: Any) -> Task:
        """Move ``task``, as last read, to ``target``; return the record as written.

        Conditional on the record still having ``task``'s status and attempt.
        """
        check_transition(task.status, target)
        return self._write(task, task.with_status(target, **changes))

    def claim(
        self,
        task_id: str,
        sources: frozenset[Status],
        target: Status,
        *,
        start_attempt: bool = False,
        task_type: str | None = None,
        waiting: str | None = None,
        queued_at: str | None = None,
    ) -> Task:
        """Move the task from any of ``sources`` to ``target`` in one write, without reading it.

        For the hot path of the relay (``pending -> queued``) and the worker (``queued ->
        running``), where the record is almost always where the caller expects it: one round
        trip instead of a read and a write. ``start_attempt`` counts a new attempt and resets
        progress. ``task_type``, if given, must be the record's too. Never claims a task whose
        cancellation was requested. :class:`ConditionLost` if the record is elsewhere, of another
        type, being cancelled, or absent. ``waiting`` records why the task is not running yet;
        starting an attempt clears it. ``queued_at`` is when the attempt was put in its queue.
        """
        for source in sources:
            check_transition(source, target)
        now = now_iso()
        names = {"#status": "status", "#updated": "updated_at", "#open": OPEN_STATUS_ATTRIBUTE}
        values: Item = {":target": {"S": str(target)}, ":now": {"S": now}}
        sets = ["#status = :target", "#updated = :now"]
        removes: list[str] = []
        if target.is_terminal:
            removes.append("#open")  # it leaves the index of unfinished tasks
        else:
            sets.append("#open = :target")
        if queued_at is not None:
            names["#queued"] = "queued_at"
            values[":queued"] = {"S": queued_at}
            sets.append("#queued = :queued")
        if start_attempt:
            names |= {
                "#attempt": "attempt",
                "#started": "started_at",
                "#pp": "progress_percent",
                "#pm": "progress_message",
                "#error": "error",
            }
            values |= {":one": {"N": "1"}, ":zero": {"N": "0.0"}, ":empty": {"S": ""}}
            sets += ["#attempt = #attempt + :one", "#started = :now", "#pp = :zero", "#pm = :empty"]
            names |= {"#retry_at": "retry_at", "#waiting": "waiting"}
            removes += ["#error", "#retry_at", "#waiting"]
        if waiting is not None:
            names["#waiting"] = "waiting"
            values[":waiting"] = {"S": waiting}
            sets.append("#waiting = :waiting")
        names["#cancel"] = CANCEL_ATTRIBUTE
        allowed = _status_list("source", sources, values)
        condition = f"#status IN ({allowed}) AND attribute_not_exists(#cancel)"
        if task_type is not None:
            names["#type"] = "type"
            values[":type"] = {"S": task_type}
            condition += " AND #type = :type"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        lost = f"task {task_id} is not {' or '.join(sorted(sources))}"
        return self._update(task_id, expression, condition, names, values, lost)

    def request_cancel(self, task_id: str) -> Task:
        """Record that the task's owner wants it cancelled; the record as written.

        From then on :meth:`claim` refuses to start it, whatever order the cancel and the task's
        own messages arrive in. :class:`ConditionLost` if the task has ended (or is absent).
        Repeating it keeps the first request's time.
        """
        values: Item = {":now": {"S": now_iso()}}
        ended = _status_list("ended", TERMINAL, values)
        return self._update(
            task_id,
            "SET #cancel = if_not_exists(#cancel, :now)",
            f"attribute_exists(task_id) AND NOT (#status IN ({ended}))",
            {"#cancel": CANCEL_ATTRIBUTE, "#status": "status"},
            values,
            f"task {task_id} has ended",
        )

    def report_progress(self, task: Task, progress: Progress) -> Task:
        """Record progress of the running attempt; never lets it go backwards."""
        new = task.with_status(task.status, progress=progress)
        return self._write(
            task,
            new,
            extra_condition="progress_percent <= :new_percent",
            extra_values={":new_percent": {"N": repr(float(progress.percent))}},
        )

    def _write(
        self,
        old: Task,
        new: Task,
        *,
        extra_condition: str | None = None,
        extra_values: Item | None = None,
    ) -> Task:
        before, after = old.to_item(), new.to_item()
        changed = {k: v for k, v in after.items() if before.get(k) != v}
        removed = [k for k in before if k not in after]
        names = {f"#f{i}": k for i, k in enumerate([*changed, *removed])}
        by_field = {v: k for k, v in names.items()}
        values: Item = {f":v{i}": v for i, v in enumerate(changed.values())}
        expression = "SET " + ", ".join(f"{by_field[k]} = :v{i}" for i, k in enumerate(changed))
        if removed:
            expression += " REMOVE " + ", ".join(by_field[k] for k in removed)
        names |= {"#status": "status", "#attempt": "attempt"}
        values |= {":old_status": {"S": str(old.status)}, ":old_attempt": {"N": str(old.attempt)}}
        condition = "#status = :old_status AND #attempt = :old_attempt"
        if extra_condition:
            condition += f" AND {extra_condition}"
            values |= extra_values or {}
        lost = f"task {old.task_id} is no longer {old.status} at attempt {old.attempt}"
        return self._update(old.task_id, expression, condition, names, values, lost)

    def _update(
        self,
        task_id: str,
        expression: str,
        condition: str,
        names: dict[str, str],
        values: Item,
        lost: str,
    ) -> Task:
        """One conditional ``UpdateItem``; the record as written, or ``ConditionLost(lost)``."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"task_id": {"S": task_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise ConditionLost(lost) from None
        return Task.from_item(response["Attributes"])

    def list_by_owner(
        self,
        owner: str,
        *,
        status: Status | None = None,
        task_type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Page:
        """The owner's tasks, newest first, optionally filtered, ``limit`` at a time.

        ``since`` (inclusive) and ``until`` (exclusive) bound ``created_at`` (:func:`iso` form):
        they are the index's sort key, so a time range reads only its own part of the index.
        An unfinished status is read from the index of unfinished tasks, filtered by owner, so
        its cost does not grow with the tasks that have finished; anything else from the
        owner's index, filtered by status. Filters are applied after DynamoDB reads a page, so
        this keeps reading until it has ``limit`` tasks or the range is exhausted; the cursor is
        the key of the last task given.
        """
        open_status = status is not None and not status.is_terminal
        names = {"#owner": "owner"}
        values: Item = {":owner": {"S": owner}}
        filters = []
        if open_status:
            index = BY_OPEN_STATUS
            names["#open"] = OPEN_STATUS_ATTRIBUTE
            values[":open"] = {"S": str(status)}
            key_condition = "#open = :open"
            filters.append("#owner = :owner")
        else:
            index = BY_OWNER
            key_condition = "#owner = :owner"
        if since is not None or until is not None:
            names["#created"] = "created_at"
        if since is not None and until is not None:
            # BETWEEN is inclusive at both ends; the millisecond before ``until`` is the last.
            last = _millisecond_before(until)
            if last is None or last < since:
                # An empty range: DynamoDB refuses a BETWEEN whose bounds are the wrong way round.
                return Page([], None)
            values[":since"] = {"S": since}
            values[":until"] = {"S": last}
            key_condition += " AND #created BETWEEN :since AND :until"
        elif since is not None:
            values[":since"] = {"S": since}
            key_condition += " AND #created >= :since"
        elif until is not None:
            values[":until"] = {"S": until}
            key_condition += " AND #created < :until"
        if status is not None and not open_status:
            names["#status"] = "status"
            values[":status"] = {"S": str(status)}
            filters.append("#status = :status")
        if task_type is not None:
            names["#type"] = "type"
            values[":type"] = {"S": task_type}
            filters.append("#type = :type")
        start = None if cursor is None else _decode_cursor(cursor, owner)
        if start is not None and open_status:
            # The same position in the other index: its key is the status, not the owner.
            del start["owner"]
            start[OPEN_STATUS_ATTRIBUTE] = {"S": str(status)}
        if start is not None:
            # DynamoDB refuses a start key outside the key condition's range.
            at = start["created_at"]["S"]
            if (since is not None and at < since) or (until is not None and at >= until):
                raise ValidationError(
                    "cursor is not one this API gave out for this since/until", field="cursor"
                )
        tasks: list[Task] = []
        more = False
        while len(tasks) < limit:
            query: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": index,
                "KeyConditionExpression": key_condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": False,
                "Limit": limit - len(tasks),
            }
            if filters:
                query["FilterExpression"] = " AND ".join(filters)
            if start is not None:
                query["ExclusiveStartKey"] = start
            response = self._client.query(**query)
            tasks.extend(Task.from_item(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            more = start is not None
            if not more:
                break
        next_cursor = _encode_cursor(tasks[-1]) if tasks and more else None
        return Page(tasks, next_cursor)

    def mend_open_status(self, task: Task) -> None:
        """Set the index key of ``task`` (as read) to what its status says: its status while
        unfinished, none once ended. For records an earlier version's writer moved on without
        it. Conditional on the status read, so a task moving meanwhile is left to its writer."""
        values: Item = {":status": {"S": str(task.status)}}
        expression = "REMOVE #open" if task.status.is_terminal else "SET #open = :status"
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.update_item(
                TableName=self._table,
                Key={"task_id": {"S": task.task_id}},
                UpdateExpression=expression,
                ConditionExpression="#status = :status",
                ExpressionAttributeNames={"#open": OPEN_STATUS_ATTRIBUTE, "#status": "status"},
                ExpressionAttributeValues=values,
            )

    def iter_by_status(self, status: Status) -> Iterator[Task]:
        """Every unfinished task in ``status``, newest first (for repair jobs).

        Reads the index of unfinished tasks, so its cost does not grow with history.
        """
        if status.is_terminal:
            raise ValueError(f"only unfinished tasks are indexed by status, not {status}")
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_OPEN_STATUS,
            "KeyConditionExpression": "#open = :status",
            "ExpressionAttributeNames": {"#open": OPEN_STATUS_ATTRIBUTE},
            "ExpressionAttributeValues": {":status": {"S": str(status)}},
            "ScanIndexForward": False,
        }
        while True:
            response = self._client.query(**query)
            yield from (Task.from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _status_list(prefix: str, statuses: Iterable[Status], values: Item) -> str:
    """Placeholders ``:<prefix>0, :<prefix>1, ...`` for an ``IN`` list, added to ``values``."""
    placeholders = []
    for i, status in enumerate(sorted(statuses)):
        values[f":{prefix}{i}"] = {"S": str(status)}
        placeholders.append(f":{prefix}{i}")
    return ", ".join(placeholders)


def _millisecond_before(moment: str) -> str | None:
    """The :func:`iso` time a millisecond before ``moment``; ``None`` if that is before year 1."""
    try:
        return iso(parse_iso(moment) - 0.001)
    except (ValueError, OverflowError):
        return None


_CURSOR_KEYS = ("task_id", "owner", "created_at")
_CURSOR = re.compile(r"[A-Za-z0-9_-]*={0,2}")
"""The alphabet of the cursors given out: base64url, padded."""
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _encode_cursor(task: Task) -> str:
    key = {"task_id": task.task_id, "owner": task.owner, "created_at": task.created_at}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_cursor(cursor: str, owner: str) -> Item:
    """The index key a cursor of :func:`_encode_cursor` names, or a ``ValidationError``.

    Checked as strictly as it was made, within :data:`~taskcore.limits.MAX_CURSOR_CHARS`:
    whatever passes is a key DynamoDB takes, so a made-up cursor is a ``422``, never a query
    that DynamoDB refuses.
    """
    refused = ValidationError("cursor is not one this API gave out", field="cursor")
    if len(cursor) > MAX_CURSOR_CHARS or not _CURSOR.fullmatch(cursor):
        raise refused
    try:
        key = limits.loads(
            base64.urlsafe_b64decode(cursor), what="cursor", max_bytes=MAX_CURSOR_CHARS
        )
    except (ValidationError, binascii.Error):
        raise refused from None
    if not (
        isinstance(key, dict)
        and sorted(key) == sorted(_CURSOR_KEYS)
        and all(isinstance(value, str) for value in key.values())
        # A cursor names a position in one owner's index; never let it walk another's.
        and key["owner"] == owner
        and _is_uuid(key["task_id"])
        and _is_iso(key["created_at"])
    ):
        raise refused
    return {name: {"S": key[name]} for name in _CURSOR_KEYS}


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _is_iso(text: str) -> bool:
    """Whether ``text`` is a time in :func:`iso`'s own form, as the index's sort key holds."""
    if not _ISO.fullmatch(text):
        return False
    try:
        parse_iso(text)
    except (ValueError, OverflowError):
        return False
    return True
