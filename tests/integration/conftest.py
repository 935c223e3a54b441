"""Fixtures of the worker-side integration tests."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from taskcore.config import Config
from taskcore.store import TaskStore
from worker_container import services
from worker_container.registry import Advertiser


@pytest.fixture
def svc(aws: Any, redis_client: redis.Redis, config: Config) -> services.Services:
    """The worker-side services of this test's namespace, as a worker builds them."""
    built = services.Services.build(config, load_tasks=True)
    # As a live worker would: say that the demo types are served, so tasks are enqueued.
    Advertiser(built.redis, config.names, built.definitions).advertise()
    return built


@pytest.fixture
def store(aws: Any, config: Config) -> TaskStore:
    return TaskStore(aws, config.names.tasks_table)
