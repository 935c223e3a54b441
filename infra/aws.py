"""AWS clients for provisioning, pointed at AWS, LocalStack or moto by ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3

from taskcore.config import Config

LOCALSTACK_PORT = 4566


def is_localstack(endpoint_url: str | None) -> bool:
    """Whether the endpoint is LocalStack's: its edge port, or a host named ``localstack``.

    Decided from the URL alone so that choosing a client costs no request.
    """
    if not endpoint_url:
        return False
    parts = urlsplit(endpoint_url)
    return parts.port == LOCALSTACK_PORT or (parts.hostname or "").startswith("localstack")


def client(service: str, config: Config) -> Any:
    """A low-level client for ``service``; LocalStack's through localstack-client."""
    if is_localstack(config.aws_endpoint_url):
        from localstack_client.session import Session

        host = urlsplit(config.aws_endpoint_url).netloc
        return Session(region_name=config.region, localstack_host=host).client(service)
    return boto3.client(service, **config.aws_client_kwargs())  # type: ignore[call-overload]
