"""Where processed images go: the results bucket infra provisions, with presigned GET URLs.

The bucket is ``<namespace>-results`` (``TASKCAST_NAMESPACE``), the one ``python -m infra``
makes; ``AWS_ENDPOINT_URL`` points the client at the moto server, LocalStack or, unset, AWS.
Where clients reach S3 at another address than the workers do (in docker compose the workers
say ``localstack:4566``, a browser ``localhost:4566``), ``TASKCAST_PRESIGN_ENDPOINT_URL`` is the
address presigned URLs are made for; signing needs no network call.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any

import boto3

from taskcore.config import Config, parse_url

URL_EXPIRY_S = 3600
"""How long a result's presigned URL works."""


@dataclass(frozen=True)
class Stored:
    bucket: str
    key: str
    url: str
    url_expires_at: int


class ResultStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        url_expiry_s: int = URL_EXPIRY_S,
        signer: Any = None,
    ) -> None:
        self._client = client
        self._signer = signer or client
        self._bucket = bucket
        self._url_expiry_s = url_expiry_s

    def put(self, key: str, body: bytes, content_type: str) -> Stored:
        """Store ``body`` under ``key`` (the same key again overwrites: a retry stores once)."""
        self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        url = self._signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self._bucket, "Key": key},
            ExpiresIn=self._url_expiry_s,
        )
        return Stored(self._bucket, key, url, int(time.time()) + self._url_expiry_s)


@functools.cache
def current() -> ResultStore:
    """This process's store, from the environment, built once (the task module builds it at
    import, before the worker forks, so every job's work horse inherits its clients)."""
    config = Config.from_env()
    client = boto3.client("s3", **config.aws_client_kwargs())  # type: ignore[call-overload]
    signer = None
    variable = "TASKCAST_PRESIGN_ENDPOINT_URL"
    public = parse_url(os.environ.get(variable, "").strip() or None, variable, {"http", "https"})
    if public is not None:
        signer = boto3.client("s3", **{**config.aws_client_kwargs(), "endpoint_url": public})  # type: ignore[call-overload]
    return ResultStore(client, config.names.bucket, signer=signer)
