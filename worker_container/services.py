"""The clients a worker-side process uses, built once per process from its config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import boto3
from redis import Redis
from rq import Queue

from taskcore import definition
from taskcore.config import Config
from taskcore.definition import TaskDefinition
from taskcore.overview import OverviewStore
from taskcore.store import TaskStore
from taskcore.task import Task
from taskcore.tasktype import Priority

from .eventlog import EventLog
from .lifecycle import Lifecycle


@dataclass(frozen=True)
class Services:
    config: Config
    redis: Redis
    store: TaskStore
    events: EventLog
    lifecycle: Lifecycle
    """The only writer of task state: every other module asks it."""
    overview: OverviewStore
    definitions: Mapping[str, TaskDefinition] = field(default_factory=dict)
    """The task types this process can run: only workers load the user's task modules."""
    _queues: dict[str, Queue] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, config: Config, *, load_tasks: bool = False) -> Services:
        redis = Redis.from_url(config.redis)
        dynamodb = boto3.client("dynamodb", **config.aws_client_kwargs())  # type: ignore[call-overload]
        store = TaskStore(dynamodb, config.names.tasks_table)
        events = EventLog(redis, config.names, config.event_log_ttl_s)
        return cls(
            config=config,
            redis=redis,
            store=store,
            events=events,
            lifecycle=Lifecycle(store, events),
            overview=OverviewStore(dynamodb, config.names.tasks_table),
            definitions=definition.load(config.task_modules) if load_tasks else {},
        )

    def queue(self, priority: Priority, queue: str) -> Queue:
        """The RQ queue of ``queue`` at ``priority`` (built once)."""
        name = self.config.names.rq_queue(priority, queue)
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.redis)
        return self._queues[name]

    def queue_of(self, task: Task) -> Queue:
        return self.queue(task.priority, task.queue)
