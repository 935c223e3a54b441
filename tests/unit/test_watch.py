"""The watch state machine, without sockets: every event once, in order, or an explicit reset."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from realtime.watch import LogState, Need, Watch
from taskcore.clock import now_iso
from taskcore.event import Cursor, Event
from taskcore.protocol import ProtocolError
from taskcore.status import Status
from taskcore.task import Progress, Task
from taskcore.tasktype import Priority

OWNER = "alice"


def make_task(status: Status = Status.PENDING) -> Task:
    now = now_iso()
    return Task(
        task_id=str(uuid.uuid4()),
        owner=OWNER,
        type="demo.sleep",
        payload={},
        status=status,
        priority=Priority.NORMAL,
        max_attempts=3,
        timeout_s=60,
        created_at=now,
        updated_at=now,
        expires_at=0,
        trace_id="0" * 32,
    )


@dataclass
class Log:
    """A task's event log as Redis holds it: what ``worker_container.eventlog`` appends."""

    epoch: str | None = None
    events: list[Event] = field(default_factory=list)
    seq: int = 0
    ended: bool = False
    epochs: int = 0

    def start(self) -> None:
        """What ``EventLogReader.start`` does: an epoch at seq 0 if the log has none."""
        if self.epoch is None:
            self.epochs += 1
            self.epoch, self.seq = f"e{self.epochs}", 0

    def append(self, event: Event) -> Event:
        self.start()
        assert self.epoch is not None
        self.seq += 1
        stamped = replace(event, seq=self.seq, epoch=self.epoch)
        self.events.append(stamped)
        self.ended = stamped.status.is_terminal
        return stamped

    def read(self, after: int = 0) -> LogState:
        return LogState(self.epoch, [e for e in self.events if e.seq > after])

    def lose(self) -> None:
        self.epoch, self.events, self.seq, self.ended = None, [], 0, False


def frames(watch: Watch) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in watch.data_to_send()]


def ops(messages: list[dict[str, Any]]) -> list[str]:
    return [m["op"] for m in messages]


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["event"]["seq"] for m in messages if m["op"] == "event"]


class TestExamples:
    def setup_method(self) -> None:
        self.task = make_task()
        self.log = Log()

    def advance(self, status: Status) -> Event:
        self.task = self.task.with_status(status)
        return self.log.append(Event.status_of(self.task))

    def progress(self, percent: float) -> Event:
        self.task = replace(self.task, progress=Progress(percent))
        return self.log.append(Event.progress_of(self.task))

    def snapshot(self, watch: Watch) -> list[dict[str, Any]]:
        self.log.start()
        watch.receive_snapshot(self.log.read(), self.task)
        return frames(watch)

    def test_a_new_watcher_gets_the_snapshot_at_the_logs_end_then_live_events(self) -> None:
        self.advance(Status.QUEUED)
        watch = Watch(self.task.task_id, OWNER, None)
        [snapshot] = self.snapshot(watch)
        assert (snapshot["cursor"]["seq"], snapshot["resumed"]) == (1, False)
        watch.receive_live(self.advance(Status.RUNNING))
        watch.receive_live(self.advance(Status.SUCCEEDED))
        messages = frames(watch)
        assert (ops(messages), seqs(messages)) == (["event", "event", "end"], [2, 3])
        assert watch.ended

    def test_the_first_snapshots_cursor_resumes_every_event_since_even_before_the_log_began(
        self,
    ) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        [snapshot] = self.snapshot(watch)
        assert snapshot["cursor"]["epoch"] is not None
        assert snapshot["cursor"]["seq"] == 0
        self.advance(Status.QUEUED)
        self.advance(Status.RUNNING)  # both while disconnected

        again = Watch(self.task.task_id, OWNER, Cursor.from_json(snapshot["cursor"]))
        messages = self.snapshot(again)
        assert messages[0]["resumed"] is True
        assert seqs(messages) == [1, 2]

    def test_a_cursor_of_a_lost_log_gets_a_reset_not_the_new_logs_events_as_its_own(
        self,
    ) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        [snapshot] = self.snapshot(watch)
        self.log.lose()  # Redis flushed before the first event...
        self.advance(Status.QUEUED)  # ...so this one begins another epoch

        again = Watch(self.task.task_id, OWNER, Cursor.from_json(snapshot["cursor"]))
        [reset] = self.snapshot(again)
        assert reset["resumed"] is False
        assert reset["cursor"] == {"epoch": self.log.epoch, "seq": 1}
        assert reset["task"]["status"] == "queued"

    def test_a_null_cursor_from_an_older_server_resumes_a_log_that_holds_every_event(
        self,
    ) -> None:
        self.advance(Status.QUEUED)
        watch = Watch(self.task.task_id, OWNER, Cursor(None, 0))
        messages = self.snapshot(watch)
        assert (messages[0]["resumed"], seqs(messages)) == (True, [1])

    def test_an_idle_watcher_resets_at_once_when_its_log_began_a_new_epoch(self) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        self.snapshot(watch)
        self.log.lose()
        self.advance(Status.QUEUED)  # published while the hub was reconnecting: lost
        watch.receive_log(self.log.read(watch.sent))  # the hub's resync, or the idle check
        assert watch.need is Need.SNAPSHOT
        [reset] = self.snapshot(watch)
        assert reset["resumed"] is False
        assert reset["cursor"]["epoch"] == self.log.epoch

    def test_a_gap_in_live_events_is_filled_from_the_log(self) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        self.snapshot(watch)
        self.advance(Status.QUEUED)  # its pub/sub message was lost
        watch.receive_live(self.advance(Status.RUNNING))
        assert watch.need is Need.LOG
        assert frames(watch) == []
        watch.receive_log(self.log.read(watch.sent))
        assert seqs(frames(watch)) == [1, 2]

    def test_a_gap_the_log_was_trimmed_past_gets_a_reset(self) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        self.snapshot(watch)
        self.progress(1)  # lost to pub/sub, then trimmed out of the log
        watch.receive_live(self.progress(2))
        self.log.events = self.log.events[1:]
        watch.receive_log(self.log.read(watch.sent))
        assert (frames(watch), watch.need) == ([], Need.SNAPSHOT)
        [reset] = self.snapshot(watch)
        assert (reset["resumed"], reset["cursor"]["seq"]) == (False, 2)

    def test_live_events_that_came_before_the_snapshot_are_sent_once_after_it(self) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        first = self.advance(Status.QUEUED)
        second = self.advance(Status.RUNNING)
        watch.receive_live(first)  # subscribed to the channel, log not read yet
        self.log.start()
        watch.receive_snapshot(self.log.read(), self.task)
        watch.receive_live(second)
        messages = frames(watch)
        assert ops(messages) == ["snapshot"]  # both are in the snapshot already
        assert messages[0]["cursor"]["seq"] == 2

    def test_a_terminal_record_without_its_event_ends_from_the_record_after_the_grace(
        self,
    ) -> None:
        self.advance(Status.QUEUED)
        watch = Watch(self.task.task_id, OWNER, None)
        self.snapshot(watch)
        self.task = self.task.with_status(Status.FAILED)  # the worker died before appending
        watch.receive_record(self.task)
        assert watch.ending
        watch.grace_expired()
        assert watch.need is Need.LOG
        watch.receive_log(self.log.read(watch.sent))
        assert frames(watch) == [{"op": "end", "task_id": self.task.task_id, "status": "failed"}]

    def test_a_late_live_event_of_a_lost_log_is_checked_against_the_log_not_sent(self) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        self.snapshot(watch)
        self.log.lose()
        stale = self.advance(Status.QUEUED)  # an epoch that is lost again before it arrives
        self.log.lose()
        self.log.start()
        watch.receive_log(self.log.read(watch.sent))  # a resync: a third epoch now
        assert watch.need is Need.SNAPSHOT
        self.snapshot(watch)
        watch.receive_live(stale)
        assert watch.need is Need.LOG
        watch.receive_log(self.log.read(watch.sent))
        assert (frames(watch), watch.need) == ([], Need.LIVE)

    def test_an_early_event_of_a_lost_log_is_dropped_by_the_snapshot(self) -> None:
        watch = Watch(self.task.task_id, OWNER, None)
        watch.receive_live(self.advance(Status.QUEUED))  # before the log was read...
        self.log.lose()  # ...which it was only after Redis lost it
        messages = self.snapshot(watch)
        assert ops(messages) == ["snapshot"]
        assert messages[0]["cursor"]["epoch"] == self.log.epoch

    def test_a_finished_task_gets_its_snapshot_and_end(self) -> None:
        self.advance(Status.QUEUED)
        self.advance(Status.CANCELLED)
        watch = Watch(self.task.task_id, OWNER, None)
        assert ops(self.snapshot(watch)) == ["snapshot", "end"]

    def test_a_task_of_another_owner_is_not_found(self) -> None:
        watch = Watch(self.task.task_id, "mallory", None)
        with pytest.raises(ProtocolError) as refused:
            self.snapshot(watch)
        assert refused.value.code == "not_found"

    def test_a_cursor_trimmed_out_of_the_log_gets_a_reset(self) -> None:
        for percent in range(5):
            self.progress(percent)
        self.log.events = self.log.events[3:]  # Redis trimmed the stream
        watch = Watch(self.task.task_id, OWNER, Cursor(self.log.epoch, 1))
        [reset] = self.snapshot(watch)
        assert (reset["resumed"], reset["cursor"]["seq"]) == (False, 5)


class Client:
    """What a client knows, checked at every frame it gets."""

    def __init__(self) -> None:
        self.cursor: Cursor | None = None
        self.cursors: list[Cursor] = []
        self.requested: Cursor | None = None
        self.ended = False
        self.end_status: str | None = None
        self.events = 0

    def receive(self, message: dict[str, Any], history: dict[tuple[str, int], str]) -> None:
        assert not self.ended, "nothing may follow end"
        if message["op"] == "snapshot":
            cursor = Cursor.from_json(message["cursor"])
            assert cursor.epoch is not None, "a snapshot's cursor always names its log"
            if message["resumed"]:
                requested = self.requested
                assert requested is not None, "only a client with a cursor resumes"
                assert cursor.seq == requested.seq
                assert requested.epoch in (None, cursor.epoch)
            self.cursor = cursor
            self.requested = None
        elif message["op"] == "event":
            event = message["event"]
            assert self.cursor is not None, "an event before any snapshot"
            assert (event["epoch"], event["seq"]) == (self.cursor.epoch, self.cursor.seq + 1), (
                f"gap or repeat: {self.cursor} then {event['epoch']}/{event['seq']}"
            )
            assert json.dumps(event, sort_keys=True) == history[(event["epoch"], event["seq"])]
            self.cursor = Cursor(event["epoch"], event["seq"])
            self.events += 1
        else:
            assert message["op"] == "end"
            self.ended = True
            self.end_status = message["status"]
        if self.cursor is not None:
            self.cursors.append(self.cursor)


class WatchingAcrossFaults(RuleBasedStateMachine):
    """Publishes, lost pub/sub messages, Redis losing or trimming the log, disconnects and
    resumes from new and old cursors, in any order: the client's view never has a silent gap."""

    def __init__(self) -> None:
        super().__init__()
        self.task = make_task()
        self.log = Log()
        self.history: dict[tuple[str, int], str] = {}
        self.client = Client()
        self.watch: Watch | None = None
        self.live: list[Event | None] = []
        """What the hub queued for the watch; ``None`` is a resync after a reconnect."""
        self.in_flight: Event | None = None
        """An event whose record is written and which is not appended yet."""

    # The world: a worker's writes, and what Redis does to the log.

    @precondition(lambda self: not self.task.status.is_terminal and self.in_flight is None)
    @rule(
        change=st.sampled_from(["progress", "running", "succeeded", "failed"]),
        lost=st.booleans(),
        at_once=st.booleans(),
    )
    def publish(self, change: str, lost: bool, at_once: bool) -> None:
        """A worker writes the record, then appends the event: at once, or in a later step."""
        if change == "progress":
            self.task = replace(self.task, progress=Progress(self.task.progress.percent + 1))
            event = Event.progress_of(self.task)
        else:
            self.task = self.task.with_status(Status(change))
            event = Event.status_of(self.task)
        self.in_flight = event
        if at_once:
            self.append(lost)

    @precondition(lambda self: self.in_flight is not None)
    @rule(lost=st.booleans())
    def append(self, lost: bool) -> None:
        event, self.in_flight = self.in_flight, None
        assert event is not None
        if self.log.ended:
            return  # an ended log takes nothing more
        stamped = self.log.append(event)
        assert stamped.epoch is not None
        self.history[(stamped.epoch, stamped.seq)] = json.dumps(stamped.to_json(), sort_keys=True)
        if self.watch is not None and not lost:
            self.live.append(stamped)

    @precondition(lambda self: not self.task.status.is_terminal and self.in_flight is None)
    @rule()
    def end_without_event(self) -> None:
        """The record reached its end, and its event never reached the log."""
        self.task = self.task.with_status(Status.FAILED)

    @rule()
    def lose_log(self) -> None:
        self.log.lose()

    @rule(keep=st.integers(min_value=0, max_value=3))
    def trim_log(self, keep: int) -> None:
        self.log.events = self.log.events[-keep:] if keep else []

    @precondition(lambda self: self.watch is not None)
    @rule()
    def hub_reconnects(self) -> None:
        self.live.append(None)

    # The client's connection.

    @precondition(lambda self: self.watch is None and not self.client.ended)
    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        choices: list[Cursor | None] = [None, self.client.cursor, *self.client.cursors]
        cursor = data.draw(st.sampled_from(choices))
        self.client.requested = cursor
        self.client.cursor = None
        self.watch = Watch(self.task.task_id, OWNER, cursor)
        self.live = []

    @precondition(lambda self: self.watch is not None)
    @rule()
    def disconnect(self) -> None:
        self.watch = None
        self.live = []

    # The session: doing what the watch asks.

    @precondition(lambda self: self.watch is not None and self.watch.need is Need.SNAPSHOT)
    @rule()
    def read_snapshot(self) -> None:
        assert self.watch is not None
        self.log.start()
        state = self.log.read()
        requested = self.client.requested
        last = state.events[-1].seq if state.events else 0
        first = state.events[0].seq if state.events else last + 1
        resumable = (
            requested is not None
            and requested.epoch == state.epoch
            and first - 1 <= requested.seq <= last
        )
        self.watch.receive_snapshot(state, self.task)
        frames = self.watch.data_to_send()
        if resumable and frames:
            assert json.loads(frames[0])["resumed"], "a cursor still in the log must be resumed"
        self.flush(frames)

    @precondition(lambda self: self.watch is not None and self.watch.need is Need.LOG)
    @rule()
    def read_log(self) -> None:
        assert self.watch is not None
        self.watch.receive_log(self.log.read(self.watch.sent))
        self.flush()

    @precondition(lambda self: self.watch is not None and self.live)
    @rule()
    def deliver_live(self) -> None:
        assert self.watch is not None
        item = self.live.pop(0)
        if item is None:
            self.watch.receive_log(self.log.read(self.watch.sent))
        else:
            self.watch.receive_live(item)
        self.flush()

    @precondition(lambda self: self.watch is not None and self.watch.need is Need.LIVE)
    @rule(check_record=st.booleans())
    def quiet(self, check_record: bool) -> None:
        """Nothing came live for a while: the grace ends, or the idle checks run."""
        assert self.watch is not None
        if self.watch.ending:
            if self.in_flight is not None:
                return  # its event is on its way: it comes within the grace period
            self.watch.grace_expired()
        else:
            self.watch.receive_log(self.log.read(self.watch.sent))
            if check_record and self.watch.need is Need.LIVE:
                self.watch.receive_record(self.task)
        self.flush()

    def flush(self, frames: list[str] | None = None) -> None:
        assert self.watch is not None
        for frame in self.watch.data_to_send() if frames is None else frames:
            self.client.receive(json.loads(frame), self.history)
            if self.client.ended:
                self.check_end()
        if self.watch.ended:
            self.watch = None

    def check_end(self) -> None:
        """An end is the task's final status, after its terminal event if the log holds it."""
        assert self.client.end_status == str(self.task.status)
        assert self.in_flight is None or not self.in_flight.status.is_terminal, (
            "ended from the record while the terminal event was on its way"
        )
        if self.log.events and self.log.events[-1].status.is_terminal:
            assert self.client.cursor == Cursor(self.log.epoch, self.log.events[-1].seq), (
                "ended without the terminal event the log holds"
            )

    @invariant()
    def a_watch_ends_only_on_the_tasks_end(self) -> None:
        if self.client.ended:
            assert self.task.status.is_terminal

    def teardown(self) -> None:
        """Left alone long enough, the client catches up with everything, or gets its end."""
        if self.watch is None and not self.client.ended:
            self.connect_with(self.client.cursor)
        if self.in_flight is not None:
            self.append(lost=False)
        for _ in range(200):
            watch = self.watch
            if watch is None:
                break
            if watch.need is Need.SNAPSHOT:
                self.read_snapshot()
            elif watch.need is Need.LOG:
                self.read_log()
            elif self.live:
                self.deliver_live()
            else:
                self.quiet(check_record=True)
                watch = self.watch
                if watch is not None and watch.need is Need.LIVE and not watch.ending:
                    break
        else:
            raise AssertionError("the watch neither ended nor settled in 200 steps")
        if self.task.status.is_terminal:
            assert self.client.ended, "a finished task's watcher gets its end"
        elif self.log.epoch is not None and self.log.events:
            assert self.client.cursor == Cursor(self.log.epoch, self.log.events[-1].seq)

    def connect_with(self, cursor: Cursor | None) -> None:
        self.client.requested = cursor
        self.client.cursor = None
        self.watch = Watch(self.task.task_id, OWNER, cursor)
        self.live = []


WatchingAcrossFaults.TestCase.settings = settings(
    max_examples=1000,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_watching_across_faults_never_leaves_a_silent_gap = WatchingAcrossFaults.TestCase
