"""CORS on the edge: the allowed origins get their origin back on every answer, others nothing."""

from __future__ import annotations

import pytest
from chalice.test import Client

from tests.functional.edge import ALICE, submit

ALLOWED = "http://console.example:8080"


@pytest.fixture(autouse=True)
def _origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_ALLOWED_ORIGINS", f"{ALLOWED},https://app.example")


@pytest.mark.parametrize(
    "path", ["/tasks", "/tasks/3f1c-not-a-uuid", "/tasks/abc/cancel", "/ops/overview", "/images"]
)
def test_a_preflight_from_an_allowed_origin_allows_the_apis_methods_and_headers(
    edge: Client, path: str
) -> None:
    response = edge.http.request(
        "OPTIONS",
        path,
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )

    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    for header in ("x-api-key", "content-type", "idempotency-key"):
        assert header in allowed_headers
    assert response.headers["Vary"] == "Origin"


def test_a_preflight_from_another_origin_gets_no_cors_headers(edge: Client) -> None:
    response = edge.http.request(
        "OPTIONS",
        "/tasks",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert not any(name.startswith("Access-Control-") for name in response.headers)


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/tasks", {}, 401),
        ("GET", "/tasks", {"X-Api-Key": "alice-key"}, 200),
        ("GET", "/tasks/00000000-0000-4000-8000-000000000000", {"X-Api-Key": "alice-key"}, 404),
        ("GET", "/tasks?limit=0", {"X-Api-Key": "alice-key"}, 422),
        ("GET", "/task-types", {}, 200),
        ("GET", "/ops/overview", {"X-Api-Key": "alice-key"}, 403),
    ],
)
def test_every_answer_to_an_allowed_origin_carries_it_errors_included(
    edge: Client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    response = edge.http.request(method, path, headers={"Origin": ALLOWED, **headers})

    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Location" in response.headers["Access-Control-Expose-Headers"]


def test_a_submit_from_an_allowed_origin_exposes_its_location(edge: Client) -> None:
    response = submit(edge, {"type": "demo.noop"}, {**ALICE, "Origin": "https://app.example/"})

    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Location" in response.headers["Access-Control-Expose-Headers"]


def test_answers_to_other_origins_or_to_no_origin_carry_no_cors_headers(edge: Client) -> None:
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):
        response = edge.http.get("/task-types", headers=headers)
        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.headers["Vary"] == "Origin"
