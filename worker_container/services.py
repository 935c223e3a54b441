"""The clients a worker-side process uses, built once per process from its config."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import boto3
from redis import Redis
from rq import Queue

from taskcore.catalogue import Priority
from taskcore.config import Config
from taskcore.store import TaskStore

from .eventlog import EventLog


@dataclass(frozen=True)
class Services:
    config: Config
    redis: Redis
    store: TaskStore
    events: EventLog
    queues: dict[Priority, Queue]

    @classmethod
    def build(cls, config: Config) -> Services:
        redis = Redis.from_url(config.redis)
        dynamodb = boto3.client("dynamodb", **config.aws_client_kwargs())  # type: ignore[call-overload]
        return cls(
            config=config,
            redis=redis,
            store=TaskStore(dynamodb, config.names.tasks_table),
            events=EventLog(redis, config.names, config.event_log_ttl_s),
            queues={p: Queue(config.names.rq_queue(p), connection=redis) for p in Priority},
        )


@functools.cache
def current() -> Services:
    """This process's services, from the environment.

    Built once per process. The RQ worker builds them before it forks, so each job's work
    horse inherits ready clients instead of paying for new ones.
    """
    return Services.build(Config.from_env(need=["redis"]))
