"""The edge's clients, built once per Lambda instance (or ``chalice local`` process).

Built on first use rather than at import so that ``chalice package`` can import the app without
a configured environment; the first request of a misconfigured instance fails naming the variable.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import boto3

from taskcore.config import Config
from taskcore.store import TaskStore

from .publisher import Publisher


@dataclass(frozen=True)
class Services:
    config: Config
    store: TaskStore
    publisher: Publisher


_build_lock = threading.Lock()


def current() -> Services:
    """The services, built by the first request (once, however many arrive together)."""
    with _build_lock:
        return _build()


@functools.cache
def _build() -> Services:
    config = Config.from_env(need=("rabbitmq", "watch_secret", "api_keys"))
    dynamodb = boto3.client("dynamodb", **config.aws_client_kwargs())  # type: ignore[call-overload]
    return Services(
        config=config,
        store=TaskStore(dynamodb, config.names.tasks_table, config.names.idempotency_table),
        publisher=Publisher(config.rabbitmq, config.names),
    )


def reset() -> None:
    """Forget the built services (tests that change the environment between cases)."""
    with _build_lock:
        if _build.cache_info().currsize:
            _build().publisher.close()
        _build.cache_clear()
