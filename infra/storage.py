"""The S3 bucket for large payloads and results."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def ensure_bucket(client: Any, name: str, region: str) -> None:
    """Create the bucket unless it exists, private, with server-side encryption."""
    try:
        client.head_bucket(Bucket=name)
        log.info("bucket %s exists", name)
        return
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    arguments: dict[str, Any] = {"Bucket": name}
    # us-east-1 is the one region S3 refuses a location constraint for.
    if region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(**arguments)
    client.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    client.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    log.info("created bucket %s", name)


def delete_bucket(client: Any, name: str) -> None:
    """Empty and delete the bucket, if it exists."""
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=obj["Key"])
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass
