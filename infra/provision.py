"""Provision everything: ``python -m infra`` or :func:`provision`."""

from __future__ import annotations

import asyncio
import logging

import aio_pika

from taskcore.config import Config

from . import aws, broker, dynamodb, storage

log = logging.getLogger(__name__)


def provision_aws(config: Config) -> None:
    names = config.names
    dynamodb.ensure_tables(
        aws.client("dynamodb", config), names.tasks_table, names.idempotency_table
    )
    storage.ensure_bucket(aws.client("s3", config), names.bucket, config.region)


async def provision_broker(config: Config) -> None:
    connection = await aio_pika.connect(config.rabbitmq)
    async with connection:
        await broker.declare_topology(await connection.channel(), config.names)
        await broker.migrate_dead_queue(connection, config.names)


def provision(config: Config) -> None:
    """Create what is missing; leave what exists as it is."""
    provision_aws(config)
    asyncio.run(provision_broker(config))
    log.info("provisioned namespace %s", config.namespace)
