"""The clients a worker-side process uses, built once per process from its config."""

from __future__ import annotations

import functools
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


@dataclass(frozen=True)
class Services:
    config: Config
    redis: Redis
    store: TaskStore
    events: EventLog
    overview: OverviewStore
    definitions: Mapping[str, TaskDefinition] = field(default_factory=dict)
    """The task types this process can run: only workers load the user's task modules."""
    _queues: dict[str, Queue] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, config: Config, *, load_tasks: bool = False) -> Services:
        redis = Redis.from_url(config.redis)
        dynamodb = boto3.client("dynamodb", **config.aws_client_kwargs())  # type: ignore[call-overload]
        return cls(
            config=config,
            redis=redis,
            store=TaskStore(dynamodb, config.names.tasks_table),
            events=EventLog(redis, config.names, config.event_log_ttl_s),
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


@functools.cache
def current() -> Services:
    """This worker process's services, from the environment, with its task modules loaded.

    Built once per process. The worker builds them before its first job: its jobs run in its
    process and use them all, and a work horse forked for an isolated type inherits them ready
    instead of paying for them again.
    """
    return Services.build(Config.from_env(need=["redis"]), load_tasks=True)
