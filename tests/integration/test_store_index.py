"""The index of unfinished tasks: what it holds, and the listings that read it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from taskcore.status import Status
from taskcore.store import TaskStore
from taskcore.task import Task

from .helpers import make_task

pytestmark = pytest.mark.integration


def _created(store: TaskStore, owner: str, status: Status, at: int) -> Task:
    moment = f"2026-12-01T00:00:{at:02d}.000Z"
    task = replace(make_task(owner=owner, status=status), created_at=moment, updated_at=moment)
    store.create(task)
    return task


def test_a_task_leaves_the_index_of_unfinished_tasks_when_it_ends(store: TaskStore) -> None:
    task = make_task(status=Status.PENDING)
    store.create(task)
    running = store.claim(
        task.task_id, frozenset({Status.PENDING}), Status.RUNNING, start_attempt=True
    )
    assert [t.task_id for t in store.iter_by_status(Status.RUNNING)] == [task.task_id]
    assert list(store.iter_by_status(Status.PENDING)) == []

    store.transition(running, Status.SUCCEEDED)

    assert list(store.iter_by_status(Status.RUNNING)) == []
    with pytest.raises(ValueError, match="only unfinished"):
        list(store.iter_by_status(Status.SUCCEEDED))


def test_listing_an_unfinished_status_pages_the_owners_tasks_newest_first(
    store: TaskStore,
) -> None:
    mine = [_created(store, "alice", Status.RUNNING, at) for at in range(7)]
    _created(store, "bob", Status.RUNNING, 30)
    _created(store, "alice", Status.SUCCEEDED, 40)

    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_by_owner("alice", status=Status.RUNNING, limit=3, cursor=cursor)
        seen += [t.task_id for t in page.tasks]
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == [t.task_id for t in reversed(mine)]


def test_listing_a_finished_status_still_reads_the_owners_tasks(store: TaskStore) -> None:
    done = _created(store, "alice", Status.SUCCEEDED, 1)
    _created(store, "alice", Status.RUNNING, 2)
    _created(store, "bob", Status.SUCCEEDED, 3)

    page = store.list_by_owner("alice", status=Status.SUCCEEDED)

    assert [t.task_id for t in page.tasks] == [done.task_id]
