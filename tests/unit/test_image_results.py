"""Where the image task's results are said to be: presigned URLs for the address clients reach."""

from __future__ import annotations

import pytest


def test_presigned_urls_are_made_for_the_address_clients_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskcast_images import results

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localstack:4566")
    monkeypatch.setenv("TASKCAST_PRESIGN_ENDPOINT_URL", "http://localhost:4566")
    results.current.cache_clear()
    try:
        signer = results.current()._signer
        url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60
        )
    finally:
        results.current.cache_clear()
    assert url.startswith("http://localhost:4566/b/k?")


def test_a_malformed_presign_endpoint_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskcast_images import results
    from taskcore.errors import ConfigError

    monkeypatch.setenv("TASKCAST_PRESIGN_ENDPOINT_URL", "localhost:4566")
    results.current.cache_clear()
    try:
        with pytest.raises(ConfigError, match="TASKCAST_PRESIGN_ENDPOINT_URL"):
            results.current()
    finally:
        results.current.cache_clear()
