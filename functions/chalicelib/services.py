"""The edge's clients and catalogue, built once per Lambda instance (or ``chalice local`` process).

Built on first use rather than at import so that ``chalice package`` can import the app without
a configured environment; the first request of a misconfigured instance fails naming the variable.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

from taskcore.catalogue import Catalogue
from taskcore.config import Config
from taskcore.errors import ConfigError
from taskcore.overview import OverviewStore
from taskcore.store import TaskStore

from .payloads import Payloads
from .publisher import Publisher

BUNDLED_CATALOGUE = Path(__file__).resolve().parent / "catalogue.json"
"""Where ``make package`` puts the catalogue exported from the task modules, for Lambda."""


@dataclass(frozen=True)
class Services:
    config: Config
    store: TaskStore
    publisher: Publisher
    catalogue: Catalogue
    payloads: Payloads
    overview: OverviewStore


_build_lock = threading.Lock()

DYNAMODB_CONNECTIONS = 128
"""The DynamoDB client's pool of kept-alive connections.

A Lambda instance handles one request at a time and needs one; ``chalice local`` handles each
client connection on a thread of its own, all sharing this client. With botocore's default of
10, the 11th concurrent request opened a connection and closed it after its one call."""


def current() -> Services:
    """The services, built by the first request (once, however many arrive together)."""
    with _build_lock:
        return _build()


def load_catalogue(config: Config) -> Catalogue:
    """The task types this edge accepts: ``TASKCAST_CATALOGUE``, else the bundled file."""
    path = config.catalogue_path or (str(BUNDLED_CATALOGUE) if BUNDLED_CATALOGUE.exists() else None)
    if path is None:
        raise ConfigError(
            "TASKCAST_CATALOGUE",
            "is not set and no chalicelib/catalogue.json is bundled; export one from your task "
            "modules with `taskcast tasks export MODULES -o FILE`",
        )
    try:
        return Catalogue.load(path)
    except ValueError as exc:
        raise ConfigError("TASKCAST_CATALOGUE", str(exc)) from None


@functools.cache
def _build() -> Services:
    config = Config.from_env(need=("rabbitmq", "watch_secret", "api_keys"))
    catalogue = load_catalogue(config)
    try:
        payloads = Payloads(catalogue)
    except ValueError as exc:
        raise ConfigError("TASKCAST_CATALOGUE", str(exc)) from None
    dynamodb = boto3.client(  # type: ignore[call-overload]
        "dynamodb",
        **config.aws_client_kwargs(),
        config=BotoConfig(max_pool_connections=DYNAMODB_CONNECTIONS),
    )
    return Services(
        config=config,
        store=TaskStore(dynamodb, config.names.tasks_table, config.names.idempotency_table),
        publisher=Publisher(config.rabbitmq, config.names),
        catalogue=catalogue,
        payloads=payloads,
        overview=OverviewStore(dynamodb, config.names.tasks_table),
    )


def reset() -> None:
    """Forget the built services (tests that change the environment between cases)."""
    with _build_lock:
        if _build.cache_info().currsize:
            _build().publisher.close()
        _build.cache_clear()
