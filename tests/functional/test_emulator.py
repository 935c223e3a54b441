"""The local stack's AWS emulator (``python -m taskcast.local.emulator``): moto's app on
connections kept open, answering boto3 as ``moto.server`` does."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from taskcore.store import tasks_table_definition
from tests.functional.conftest import _free_port, _wait_port

# moto reads the service from the signature's scope; it does not check the signature.
SIGNED = (
    b"Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/"
    b"aws4_request, SignedHeaders=host, Signature=0\r\n"
)
LIST_TABLES = b"X-Amz-Target: DynamoDB_20120810.ListTables\r\n"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The emulator as ``taskcast up`` starts it, on a free port; its URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "taskcast.local.emulator", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        _check_log(log)


def _check_log(log: Path) -> None:
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


def _client(url: str, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=BotoConfig(max_pool_connections=1, retries={"max_attempts": 1}),
    )


def _new_connections(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        "Starting new HTTP connection" in r.getMessage()
        or "Resetting dropped connection" in r.getMessage()
        for r in caplog.records
    )


def test_boto3_calls_share_one_connection_and_see_one_dynamodb(
    emulator: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    dynamodb = _client(emulator, "dynamodb")
    table = f"t{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(**tasks_table_definition(table))
    item = {"task_id": {"S": "a"}, "owner": {"S": "o"}, "created_at": {"S": "x"}}
    conditional = {"ConditionExpression": "attribute_not_exists(task_id)"}

    dynamodb.put_item(TableName=table, Item=item, **conditional)
    with pytest.raises(ClientError) as lost:
        dynamodb.put_item(TableName=table, Item=item, **conditional)
    got = dynamodb.get_item(TableName=table, Key={"task_id": {"S": "a"}})["Item"]

    assert lost.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert got == item
    assert _new_connections(caplog) == 1  # four calls, an error among them, one connection


def test_s3_objects_go_up_with_expect_continue_and_heads_carry_no_body(
    emulator: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    s3 = _client(emulator, "s3")
    bucket, body = f"b{uuid.uuid4().hex[:8]}", b"x" * 70_000
    s3.create_bucket(Bucket=bucket)

    s3.put_object(Bucket=bucket, Key="k", Body=io.BytesIO(body))  # a file: Expect: 100-continue
    head = s3.head_object(Bucket=bucket, Key="k")
    got = s3.get_object(Bucket=bucket, Key="k")["Body"].read()

    assert head["ContentLength"] == len(body)
    assert got == body
    assert _new_connections(caplog) == 1


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: localhost\r\n" + SIGNED + LIST_TABLES + extra
        + b"Content-Type: application/x-amz-json-1.0\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )  # fmt: skip


def _answers(connection: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """Read ``count`` whole answers (status, headers, body by its Content-Length)."""
    reader = connection.makefile("rb")
    answers = []
    for _ in range(count):
        status = int(reader.readline().split(b" ", 2)[1])
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        answers.append((status, headers, reader.read(int(headers["content-length"]))))
    return answers


def test_requests_sent_back_to_back_on_one_connection_are_each_answered(emulator: str) -> None:
    port = int(emulator.rsplit(":", 1)[1])
    chunked = (
        b"POST / HTTP/1.1\r\nHost: localhost\r\n" + SIGNED + LIST_TABLES
        + b"Content-Type: application/x-amz-json-1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n"
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        # Three requests in one write: each body must be read whole, or it is taken for the next.
        connection.sendall(_post(b"{}") + chunked + _post(b'{"Limit": 1}'))
        answers = _answers(connection, 3)
        connection.sendall(_post(b"{}"))  # and the connection is still open
        answers += _answers(connection, 1)

    assert [status for status, _, _ in answers] == [200] * 4
    assert all("TableNames" in json.loads(body) for _, _, body in answers)
    assert all(headers.get("connection") != "close" for _, headers, _ in answers)


def _chunked(target: bytes, body: bytes, size: int) -> bytes:
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    )
    return (
        b"POST / HTTP/1.1\r\nHost: localhost\r\n" + SIGNED + target
        + b"Content-Type: application/x-amz-json-1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks + b"0\r\n\r\n"
    )  # fmt: skip


def test_a_chunked_body_longer_than_one_read_arrives_whole(emulator: str) -> None:
    table = f"t{uuid.uuid4().hex[:8]}"
    dynamodb = _client(emulator, "dynamodb")
    dynamodb.create_table(**tasks_table_definition(table))
    payload = "x" * 150_000
    item = {"task_id": {"S": "a"}, "owner": {"S": "o"}, "created_at": {"S": "x"}}
    body = json.dumps({"TableName": table, "Item": {**item, "payload": {"S": payload}}})
    port = int(emulator.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            _chunked(b"X-Amz-Target: DynamoDB_20120810.PutItem\r\n", body.encode(), 50_000)
        )
        ((status, _, _),) = _answers(connection, 1)

    assert status == 200
    got = dynamodb.get_item(TableName=table, Key={"task_id": {"S": "a"}})["Item"]
    assert got["payload"]["S"] == payload


def test_a_bad_chunk_is_400_and_the_connection_closed(emulator: str) -> None:
    port = int(emulator.rsplit(":", 1)[1])
    request = _chunked(LIST_TABLES, b"{}", 2).replace(b"2\r\n{}", b"zz\r\n{}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        ((status, headers, _),) = _answers(connection, 1)
        assert connection.recv(1) == b""  # closed

    assert (status, headers["connection"]) == (400, "close")


def test_a_length_that_is_not_a_number_is_400_and_the_connection_closed(emulator: str) -> None:
    port = int(emulator.rsplit(":", 1)[1])
    request = _post(b"{}").replace(b"Content-Length: 2", b"Content-Length: two")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        ((status, headers, _),) = _answers(connection, 1)
        assert connection.recv(1) == b""  # closed

    assert (status, headers["connection"]) == (400, "close")


def test_conditional_writes_racing_for_one_key_leave_exactly_one_winner(emulator: str) -> None:
    # DynamoDB applies a conditional write atomically; the task store's fencing relies on it.
    table, racers, rounds = f"t{uuid.uuid4().hex[:8]}", 16, 10
    _client(emulator, "dynamodb").create_table(**tasks_table_definition(table))
    clients = [_client(emulator, "dynamodb") for _ in range(racers)]

    def put(client: Any, key: str) -> str:
        try:
            client.put_item(
                TableName=table,
                Item={"task_id": {"S": key}, "owner": {"S": "o"}, "created_at": {"S": "x"}},
                ConditionExpression="attribute_not_exists(task_id)",
            )
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "won"

    with ThreadPoolExecutor(racers) as pool:
        outcomes = [list(pool.map(put, clients, [f"key-{n}"] * racers)) for n in range(rounds)]

    assert all(
        sorted(each) == ["ConditionalCheckFailedException"] * (racers - 1) + ["won"]
        for each in outcomes
    ), outcomes
