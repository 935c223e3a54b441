"""The task store under duplicated, reordered and stale writes: a hypothesis state machine.

Many writers (relay, workers, sweeper, canceller) each act on the record as they last read it.
The machine keeps a pool of such views, old and new, and applies writes through any of them in
any order, as redeliveries, retries and zombies would. After every step it checks what every
fault scenario depends on:

- a write lands only if its writer's view is the record's current status and attempt (fencing);
- a terminal status, with its result and error, never changes;
- the attempt never goes down, nor progress within one attempt.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule
from moto import mock_aws

from taskcore.errors import ConditionLost, TransitionError
from taskcore.status import Status, can_transition
from taskcore.store import TaskStore, tasks_table_definition
from taskcore.task import Progress, Task, TaskError
from tests.integration.helpers import make_task

STATUSES = st.sampled_from(list(Status))
_aws = mock_aws()


def setup_module() -> None:
    # One moto for every example (starting it costs more than a whole example); each example
    # gets a table of its own.
    _aws.start()


def teardown_module() -> None:
    _aws.stop()


class StoreUnderConcurrentWriters(RuleBasedStateMachine):
    views = Bundle("views")

    def __init__(self) -> None:
        super().__init__()
        self.client = boto3.client("dynamodb", region_name="us-east-1")
        self.table = f"sm-{uuid.uuid4().hex}"
        self.client.create_table(**tasks_table_definition(self.table))
        self.store = TaskStore(self.client, self.table)
        self.task = make_task("demo.sleep")
        self.store.create(self.task)
        self.current = self.task
        self.ended: Task | None = None
        self.high_water = (0, 0.0)  # (attempt, percent) of the highest progress seen

    def teardown(self) -> None:
        self.client.delete_table(TableName=self.table)

    @rule(target=views)
    def read(self) -> Task:
        task = self.store.get(self.task.task_id)
        assert task is not None
        return task

    @rule(target=views)
    def initial(self) -> Task:
        """The record as the edge wrote it: the stalest view there is."""
        return self.task

    @rule(target=views)
    def next_attempt(self) -> Task:
        """The usual way forward, as the relay, a worker and a retry take it; the view it ends at.

        Gets the machine to later attempts, where the earlier ones' views are zombies.
        """
        if self.current.status is Status.PENDING:
            self.current = self.store.transition(self.current, Status.QUEUED)
        if self.current.status is Status.RUNNING:
            self.current = self.store.transition(self.current, Status.RETRYING)
        if self.current.status in (Status.QUEUED, Status.RETRYING):
            self.current = self.store.claim(
                self.task.task_id,
                frozenset({self.current.status}),
                Status.RUNNING,
                start_attempt=True,
            )
        return self.current

    @rule(view=views, to=STATUSES, error=st.booleans())
    def transition(self, view: Task, to: Status, error: bool) -> None:
        target = to
        changes: dict[str, Any] = {}
        if target is Status.RUNNING:
            changes["attempt"] = view.attempt + 1
        if error:
            changes["error"] = TaskError("x", "a late writer's error")
        if target is Status.SUCCEEDED:
            changes["result"] = {"by": f"attempt {view.attempt}"}
        fenced = (view.status, view.attempt) == (self.current.status, self.current.attempt)
        try:
            written = self.store.transition(view, target, **changes)
        except TransitionError:
            assert not can_transition(view.status, target)
            return
        except ConditionLost:
            assert not fenced, "a write from the current view was refused"
            return
        assert fenced, f"a stale view ({view.status}, {view.attempt}) overwrote the record"
        self.current = written

    @rule(
        sources=st.frozensets(STATUSES, min_size=1, max_size=3),
        to=STATUSES,
        start=st.booleans(),
    )
    def claim(self, sources: frozenset[Status], to: Status, start: bool) -> None:
        target = to
        if not all(can_transition(s, target) for s in sources):
            return
        try:
            written = self.store.claim(self.task.task_id, sources, target, start_attempt=start)
        except ConditionLost:
            assert self.current.status not in sources
            return
        assert self.current.status in sources
        self.current = written

    @rule(view=views, percent=st.floats(min_value=0, max_value=100))
    def progress(self, view: Task, percent: float) -> None:
        try:
            self.current = self.store.report_progress(view, Progress(percent, "step"))
        except ConditionLost:
            return

    @invariant()
    def the_record_keeps_every_promise(self) -> None:
        record = self.store.get(self.task.task_id)
        assert record is not None
        # It is what the last write that landed made it: no write was lost or half-applied.
        assert (record.status, record.attempt) == (self.current.status, self.current.attempt)
        # An ended task never changes.
        if self.ended is not None:
            assert (record.status, record.result, record.error, record.attempt) == (
                self.ended.status,
                self.ended.result,
                self.ended.error,
                self.ended.attempt,
            )
        elif record.status.is_terminal:
            self.ended = record
        # Attempts never go back, nor progress within one attempt.
        attempt, percent = self.high_water
        assert record.attempt >= attempt
        if record.attempt == attempt:
            assert record.progress.percent >= percent
        self.high_water = (record.attempt, record.progress.percent)


StoreUnderConcurrentWriters.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_store_under_duplicated_reordered_and_stale_writes = StoreUnderConcurrentWriters.TestCase
