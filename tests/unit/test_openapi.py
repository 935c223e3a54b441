"""The edge's OpenAPI document: valid OpenAPI 3.1, every route of the app in it, shapes exact."""

from __future__ import annotations

from typing import Any

import pytest
from chalicelib import errors, openapi
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from taskcore.catalogue import Catalogue
from taskcore.definition import catalogue
from taskcore.status import Status
from taskcore.task import Progress, Task, TaskError
from taskcore.tasktype import Priority, TaskType
from tests.conftest import DEMO_TASKS

DOCUMENT_URI = "urn:taskcast:openapi"


@pytest.fixture(scope="module")
def demo() -> Catalogue:
    return catalogue(DEMO_TASKS.split(","))


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    }


def app_routes(shortcuts: list[str]) -> set[tuple[str, str]]:
    """The app's routes, ``/{shortcut}`` as one path per shortcut, less the CORS preflights."""
    import app

    routes = set()
    for path, methods in app.app.routes.items():
        paths = [f"/{s}" for s in shortcuts] if path == "/{shortcut}" else [path]
        routes |= {(p, m) for p in paths for m in methods if m != "OPTIONS"}
    return routes


def schema_validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for ``components/schemas/<name>`` with the document's references resolved."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#/components/schemas/{name}"}, registry=registry
    )


@pytest.mark.parametrize("types", ["demo", "none"])
def test_the_document_is_valid_openapi_3_1(demo: Catalogue, types: str) -> None:
    document = openapi.document(demo if types == "demo" else Catalogue())

    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["openapi"] == "3.1.0"


def test_every_route_of_the_app_is_documented_and_only_those(demo: Catalogue) -> None:
    shortcuts = [t.shortcut for t in demo.values() if t.shortcut is not None]
    assert shortcuts == ["images"]  # so that the shortcut paths are covered at all

    assert operations(openapi.document(demo)) == app_routes(shortcuts)


def test_a_catalogue_without_shortcuts_documents_none() -> None:
    only = Catalogue([TaskType("tests.plain")])

    assert operations(openapi.document(only)) == app_routes([])


def test_the_list_limit_is_the_app_s() -> None:
    import app

    limit = openapi.document(Catalogue())["paths"]["/tasks"]["get"]["parameters"][4]

    assert limit["name"] == "limit"
    assert limit["schema"]["maximum"] == app.MAX_LIST_LIMIT


def test_the_key_is_asked_for_except_where_the_app_needs_none(demo: Catalogue) -> None:
    document = openapi.document(demo)
    scheme = document["components"]["securitySchemes"]["apiKey"]
    open_paths = {
        path
        for path, item in document["paths"].items()
        if any(operation.get("security") == [] for operation in item.values())
    }

    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-Api-Key"}
    assert document["security"] == [{"apiKey": []}]
    assert open_paths == {"/health", "/openapi.json", "/task-types"}


def test_each_error_response_has_its_status_and_code_from_the_edge(demo: Catalogue) -> None:
    document = openapi.document(demo)
    responses = document["components"]["responses"]
    documented = {
        status: response["$ref"].rsplit("/", 1)[-1]
        for item in document["paths"].values()
        for operation in item.values()
        for status, response in operation["responses"].items()
        if "$ref" in response
    }
    raised = {cls.status: cls.code for cls in vars(errors).values() if _is_http_error(cls)}

    for status, name in documented.items():
        code = responses[name]["content"]["application/json"]["schema"]["allOf"][1]
        assert code["properties"]["error"]["properties"]["code"]["const"] == raised[int(status)]


def _is_http_error(value: object) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, errors.HttpError)
        and value is not errors.HttpError
    )


def test_the_type_enum_is_the_catalogue_and_types_with_a_shortcut_get_their_path(
    demo: Catalogue,
) -> None:
    document = openapi.document(demo)
    submission = document["components"]["schemas"]["Submission"]
    body = document["paths"]["/images"]["post"]["requestBody"]["content"]["application/json"]

    assert submission["properties"]["type"]["enum"] == sorted(demo)
    assert submission["required"] == ["type"]
    assert body["schema"] == {"$ref": "#/components/schemas/payload.image.filter"}
    assert document["components"]["schemas"]["payload.image.filter"] == dict(
        demo["image.filter"].payload_schema
    )


def test_a_payload_schema_s_own_references_still_resolve_in_the_document() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"size": {"$ref": "#/$defs/size"}},
        "$defs": {"size": {"type": "integer", "minimum": 1}},
    }
    document = openapi.document(
        Catalogue([TaskType("tests.sized", payload_schema=schema, shortcut="sized")])
    )
    embedded = document["components"]["schemas"]["payload.tests.sized"]

    validate(document, cls=OpenAPIV31SpecValidator)
    assert "$schema" not in embedded
    assert embedded["properties"]["size"] == {
        "$ref": "#/components/schemas/payload.tests.sized/$defs/size"
    }
    payload = schema_validator(document, "payload.tests.sized")
    assert payload.is_valid({"size": 3})
    assert not payload.is_valid({"size": 0})


def test_the_document_is_built_once_per_catalogue(demo: Catalogue) -> None:
    first = openapi.document(demo)

    assert openapi.document(demo) is first
    assert openapi.document(Catalogue()) is not first


def _task(**changes: Any) -> Task:
    fields: dict[str, Any] = {
        "task_id": "3f2b9c1e-8a4d-4f6e-9b7a-2c1d0e5f6a7b",
        "owner": "alice",
        "type": "demo.sleep",
        "payload": {"seconds": 1},
        "status": Status.PENDING,
        "priority": Priority.NORMAL,
        "max_attempts": 3,
        "timeout_s": 60,
        "created_at": "2026-12-01T10:00:00.000Z",
        "updated_at": "2026-12-01T10:00:00.000Z",
        "expires_at": 1800000000,
        "trace_id": "0" * 32,
    }
    return Task(**{**fields, **changes})


@pytest.mark.parametrize(
    "task",
    [
        _task(),
        _task(status=Status.SUCCEEDED, result=None, finished_at="2026-12-01T10:00:01.000Z"),
        _task(
            status=Status.SUCCEEDED,
            attempt=1,
            result={"slept_s": 1.0},
            progress=Progress(100.0, "done"),
            started_at="2026-12-01T10:00:00.500Z",
            finished_at="2026-12-01T10:00:01.000Z",
            cancel_requested_at="2026-12-01T10:00:00.900Z",
        ),
        _task(
            status=Status.RETRYING,
            attempt=1,
            error=TaskError("TaskFailed", "flaky"),
            retry_at="2026-12-01T10:00:02.000Z",
            run_at="2026-12-01T10:00:00.100Z",
            waiting="no worker serves the queue images",
        ),
    ],
    ids=["pending", "succeeded-with-null", "succeeded", "retrying"],
)
def test_a_task_as_clients_see_it_matches_the_task_schema(demo: Catalogue, task: Task) -> None:
    validator = schema_validator(openapi.document(demo), "Task")

    validator.validate(task.to_public())


def test_every_task_type_as_listed_matches_the_task_type_schema(demo: Catalogue) -> None:
    validator = schema_validator(openapi.document(demo), "TaskType")

    for task_type in demo.values():
        validator.validate(task_type.to_json())
