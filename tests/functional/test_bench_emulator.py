"""The bench's emulator: the moto server, counting DynamoDB calls by operation and caller."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.emulator import Calls, Emulator, access_key_id


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


def client(emulator: Emulator, key_id: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key="testing",
    )


def test_each_dynamodb_call_is_counted_once_by_operation_and_by_the_key_that_signed_it(
    emulator: Emulator,
) -> None:
    edge, worker = client(emulator, "edge"), client(emulator, "worker-1")
    edge.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    )
    before = emulator.calls()

    edge.put_item(TableName="t", Item={"k": {"S": "1"}})
    edge.put_item(TableName="t", Item={"k": {"S": "2"}})
    worker.get_item(TableName="t", Key={"k": {"S": "1"}})
    calls = emulator.calls() - before

    assert calls.counts == Counter({("PutItem", "edge"): 2, ("GetItem", "worker-1"): 1})
    assert calls.total == 3
    assert calls.by_operation() == Counter({"PutItem": 2, "GetItem": 1})
    assert calls.by_caller() == {
        "edge": Counter({"PutItem": 2}),
        "worker-1": Counter({"GetItem": 1}),
    }
    assert calls.without("edge").total == 1


def test_the_emulator_answers_as_moto_does(emulator: Emulator) -> None:
    """Counting changes nothing in what the parts get back, an error included."""
    dynamodb = client(emulator, "edge")
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.get_item(TableName="absent", Key={"k": {"S": "1"}})
    assert emulator.calls() == Calls(Counter({("GetItem", "edge"): 1}))


def test_the_caller_is_the_access_key_id_of_a_sigv4_authorization_header() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=relay/20250101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert access_key_id(header) == "relay"
    assert access_key_id("") == ""
