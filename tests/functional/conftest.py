"""The edge app in this process: moto for DynamoDB, the real RabbitMQ for publishing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from chalice.test import Client


@pytest.fixture
def edge(aws: Any, amqp: aio_pika.abc.AbstractChannel) -> Iterator[Client]:
    import app
    from chalicelib import services

    services.reset()
    with Client(app.app) as client:
        yield client
    services.reset()
