"""The running edge against its own OpenAPI document, with requests schemathesis makes from it.

Every operation the edge's ``/openapi.json`` lists is called with generated data, valid and
invalid, with the ``dev-key`` key; each answer must be no server error, have a documented status
code and content type, carry the documented headers and match the documented body. Generated
task ids name no task, so the operations on one task are also called on real tasks, one in each
kind of state (succeeded, failed, delayed), for their answers about a task that exists. The run
is bounded and derandomized, so it repeats; the tasks it creates are cancelled afterwards, so
that they do not keep the shared stack's workers busy for the tests that come after. (Its
``dev`` key is an operator's, so the dead-letter queue is replayed and purged too.) Every path is
also called with each method the document does not list: ``405`` with ``Allow``, in the
document's error shape.

The document is fetched and loaded as a dict rather than with ``schemathesis.openapi.from_url``,
which leaves out the operation that serves the document, ``GET /openapi.json``.

Each operation and mode is a subtest of one test, the operations being known only once the stack
is up. (schemathesis's own ``schemathesis.pytest.from_fixture`` would do the same, but 4.32 reads
``Function._nodeid``, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy
from jsonschema import Draft202012Validator
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from taskcast.local.stack import Stack
from taskcore.clock import now_iso

pytestmark = pytest.mark.e2e

API_KEY = "dev-key"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = settings(
    max_examples=25,  # per operation and mode: about 15 s in all
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

ON_A_REAL_TASK = settings(EXAMPLES, max_examples=5)  # only the key is generated


@pytest.fixture(scope="module")
def edge_schema(shared_stack: Stack) -> Iterator[OpenApiSchema]:
    """The document the running edge serves; the tasks made from it are cancelled at the end."""
    started = now_iso()
    response = httpx.get(f"{shared_stack.edge_url}/openapi.json", timeout=10)
    yield schemathesis.openapi.from_dict(response.raise_for_status().json())
    _cancel_tasks_since(shared_stack.edge_url, started)


def _cancel_tasks_since(edge_url: str, since: str) -> None:
    with httpx.Client(base_url=edge_url, headers={"X-Api-Key": API_KEY}, timeout=10) as client:
        cursor: str | None = None
        while True:
            params = {"since": since, "limit": "100", **({"cursor": cursor} if cursor else {})}
            page = client.get("/tasks", params=params).raise_for_status().json()
            for task in page["tasks"]:
                if task["status"] not in ("succeeded", "failed", "cancelled"):
                    client.post(f"/tasks/{task['task_id']}/cancel")
            cursor = page["next_cursor"]
            if cursor is None:
                return


@pytest.fixture(scope="module")
def real_tasks(shared_stack: Stack, edge_schema: OpenApiSchema) -> dict[str, str]:
    """Task ids by state: one succeeded, one failed, one delayed (so pending for an hour).

    Made after ``edge_schema`` is, so that its clean-up cancels them too.
    """
    submissions = {
        "succeeded": {"type": "demo.noop"},
        "failed": {"type": "demo.sleep", "payload": {"seconds": 0, "steps": 1, "fail_rate": 1}},
        "delayed": {"type": "demo.noop", "delay_seconds": 3600},
    }
    headers = {"X-Api-Key": API_KEY}
    with httpx.Client(base_url=shared_stack.edge_url, headers=headers, timeout=10) as client:
        ids = {
            state: client.post("/tasks", json=body).raise_for_status().json()["task"]["task_id"]
            for state, body in submissions.items()
        }
        for state in ("succeeded", "failed"):
            deadline = time.monotonic() + 60
            while client.get(f"/tasks/{ids[state]}").json()["task"]["status"] != state:
                assert time.monotonic() < deadline, f"the {state} task did not end in time"
                time.sleep(0.2)
    return ids


def test_the_edge_answers_as_its_document_says(
    shared_stack: Stack,
    edge_schema: OpenApiSchema,
    real_tasks: dict[str, str],
    subtests: pytest.Subtests,
) -> None:
    operations = [result.ok() for result in edge_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/health", "/openapi.json", "/tasks/{task_id}"}
    # Valid image tasks would have the workers fetch the URLs made up here.
    assert "/images" not in {op.path for op in operations}, "load no image tasks in this stack"
    edge = shared_stack.edge_url

    for operation in operations:
        for mode in GenerationMode:
            if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
                continue  # nothing to make invalid
            with subtests.test(msg=f"{operation.label} ({mode.value})"):
                _exercise(edge, operation.as_strategy(generation_mode=mode), EXAMPLES)
        if "{task_id}" in operation.path:
            for state, task_id in real_tasks.items():
                with subtests.test(msg=f"{operation.label} (a {state} task)"):
                    cases = operation.as_strategy(path_parameters={"task_id": task_id})
                    _exercise(edge, cases, ON_A_REAL_TASK)


def _has_inputs(operation: APIOperation) -> bool:
    return bool(list(operation.iter_parameters())) or bool(operation.body)


def _exercise(edge: str, cases: SearchStrategy[Case], examples: settings) -> None:
    @examples
    @given(case=cases)
    def answers_as_documented(case: Case) -> None:
        case.call_and_validate(
            base_url=edge, headers={"X-Api-Key": API_KEY}, checks=CHECKS, timeout=10
        )

    answers_as_documented()


HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def test_a_method_the_document_does_not_list_is_405_with_allow_and_the_documented_error(
    shared_stack: Stack, edge_schema: OpenApiSchema, subtests: pytest.Subtests
) -> None:
    """What schemathesis's generated cases never send: every path with each method it lacks."""
    document = edge_schema.raw_schema
    # The document as a JSON Schema whose root is its error body, its references resolving.
    error_body = Draft202012Validator({**document, "$ref": "#/components/schemas/Error"})
    with httpx.Client(headers={"X-Api-Key": API_KEY}, timeout=10) as client:
        for path, item in document["paths"].items():
            documented = {method.upper() for method in item} & set(HTTP_METHODS)
            url = shared_stack.edge_url + path.replace("{task_id}", str(uuid.uuid4()))
            for method in sorted(set(HTTP_METHODS) - documented):
                with subtests.test(msg=f"{method} {path}"):
                    response = client.request(method, url, content=b"{}")
                    assert response.status_code == 405
                    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
                    assert allowed - {"OPTIONS"} == documented
                    error_body.validate(response.json())
                    assert response.json()["error"]["code"] == "method_not_allowed"
