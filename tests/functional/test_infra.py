"""Provisioning against moto and the real RabbitMQ: complete, and a no-op the second time."""

from __future__ import annotations

import aio_pika
import boto3
import pytest
from moto import mock_aws

from infra import aws, broker
from infra.provision import provision_aws
from taskcore.config import Config
from taskcore.status import Status
from taskcore.store import BY_OPEN_STATUS, BY_OWNER, TaskStore, tasks_table_definition
from taskcore.task import OPEN_STATUS_ATTRIBUTE
from tests.conftest import RABBITMQ_URL, drain
from tests.integration.helpers import make_task


def test_provisioning_makes_tables_with_indexes_and_expiry_and_a_private_bucket_twice_over(
    config: Config,
) -> None:
    with mock_aws():
        provision_aws(config)
        provision_aws(config)  # idempotent: the second run finds everything and changes nothing

        dynamodb = boto3.client("dynamodb", region_name=config.region)
        tasks = dynamodb.describe_table(TableName=config.names.tasks_table)["Table"]
        indexes = {
            i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
            for i in tasks["GlobalSecondaryIndexes"]
        }
        assert indexes == {
            BY_OWNER: ["owner", "created_at"],
            BY_OPEN_STATUS: [OPEN_STATUS_ATTRIBUTE, "created_at"],
        }
        for table in (config.names.tasks_table, config.names.idempotency_table):
            ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")

        s3 = boto3.client("s3", region_name=config.region)
        block = s3.get_public_access_block(Bucket=config.names.bucket)[
            "PublicAccessBlockConfiguration"
        ]
        assert all(block.values())
        rules = s3.get_bucket_encryption(Bucket=config.names.bucket)[
            "ServerSideEncryptionConfiguration"
        ]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_provisioning_moves_a_table_of_an_earlier_version_to_the_index_of_unfinished_tasks(
    config: Config,
) -> None:
    """The earlier ``by_status`` index held every task; its successor only the unfinished."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=config.region)
        earlier = tasks_table_definition(config.names.tasks_table)
        earlier["AttributeDefinitions"] = [
            a
            for a in earlier["AttributeDefinitions"]
            if a["AttributeName"] != OPEN_STATUS_ATTRIBUTE
        ] + [{"AttributeName": "status", "AttributeType": "S"}]
        by_owner = earlier["GlobalSecondaryIndexes"][0]
        earlier["GlobalSecondaryIndexes"] = [
            by_owner,
            {
                **by_owner,
                "IndexName": "by_status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
            },
        ]
        dynamodb.create_table(**earlier)
        store = TaskStore(dynamodb, config.names.tasks_table)
        running = make_task(status=Status.RUNNING, attempt=1)
        done = make_task(status=Status.SUCCEEDED, attempt=1)
        for task in (running, done):
            item = task.to_item()
            item.pop(OPEN_STATUS_ATTRIBUTE, None)  # as the earlier version wrote it
            dynamodb.put_item(TableName=config.names.tasks_table, Item=item)

        provision_aws(config)

        tasks = dynamodb.describe_table(TableName=config.names.tasks_table)["Table"]
        assert {i["IndexName"] for i in tasks["GlobalSecondaryIndexes"]} == {
            BY_OWNER,
            BY_OPEN_STATUS,
        }
        assert [t.task_id for t in store.iter_by_status(Status.RUNNING)] == [running.task_id]
        assert list(store.iter_by_status(Status.PENDING)) == []


async def test_the_broker_topology_is_declared_idempotently_with_dead_lettering(
    config: Config,
) -> None:
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await broker.declare_topology(channel, config.names)
        try:
            await broker.declare_topology(channel, config.names)
            exchange = await channel.get_exchange(config.names.exchange)
            await exchange.publish(aio_pika.Message(b"x"), routing_key="task.submitted.demo.noop")
            tasks = await channel.declare_queue(config.names.tasks_queue, passive=True)
            assert tasks.declaration_result.message_count == 1
            # A rejected message goes to the dead queue rather than back round.
            message = await tasks.get()
            await message.reject(requeue=False)
            dead = await channel.get_queue(config.names.dead_queue)
            assert [m.body for m in await drain(dead)] == [b"x"]
        finally:
            await broker.delete_topology(channel, config.names)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, False),
        ("http://127.0.0.1:5000", False),
        ("http://127.0.0.1:4566", True),
        ("http://localstack:4566", True),
        ("https://dynamodb.eu-west-1.amazonaws.com", False),
    ],
)
def test_localstack_is_recognised_by_its_url(url: str | None, expected: bool) -> None:
    assert aws.is_localstack(url) is expected
