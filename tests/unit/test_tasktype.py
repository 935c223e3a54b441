"""Task types: declaring them, their options and limits, the catalogue file, loading modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from taskcore.catalogue import Catalogue
from taskcore.definition import TaskDefinition, TaskFailed, TaskModuleError, load, task
from taskcore.errors import PayloadTooLarge, UnknownTaskType, ValidationError
from taskcore.tasktype import MAX_PAYLOAD_BYTES, Priority, TaskType

SCHEMA = {
    "type": "object",
    "properties": {"rows": {"type": "integer", "default": 10}, "name": {"type": "string"}},
}


@task("tests.report", payload=SCHEMA, max_attempts=2, timeout_s=60, queue="reports")
def report(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Counts rows.

    More words that are not the summary.
    """
    return {"rows": payload["rows"]}


def test_a_declared_task_stays_a_plain_callable_with_its_type_beside_it() -> None:
    assert isinstance(report, TaskDefinition)
    assert report(None, {"rows": 3}) == {"rows": 3}
    assert report.task_type.name == "tests.report"
    assert report.task_type.description == "Counts rows."
    assert (report.task_type.queue, report.task_type.max_attempts) == ("reports", 2)


def test_defaults_fill_what_the_payload_leaves_out_and_keep_what_it_gives() -> None:
    kind = report.task_type
    assert kind.with_defaults({}) == {"rows": 10}
    assert kind.with_defaults({"rows": 3, "name": "x"}) == {"rows": 3, "name": "x"}


def test_a_payload_that_is_not_an_object_or_too_large_is_refused() -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        report.task_type.with_defaults([1, 2])
    with pytest.raises(PayloadTooLarge):
        report.task_type.with_defaults({"name": "a" * MAX_PAYLOAD_BYTES})


def test_a_call_without_options_gets_the_types_defaults() -> None:
    options = report.task_type.options({})
    assert (options.max_attempts, options.timeout_s, options.priority, options.delay_s) == (
        2,
        60,
        Priority.NORMAL,
        0,
    )


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 11}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"timeout_s": 3601}, "timeout_s"),
        ({"timeout_s": 1.5}, "timeout_s"),
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"delay_seconds": 7 * 86400 + 1}, "delay_seconds"),
        ({"priority": "urgent"}, "priority"),
    ],
)
def test_a_call_outside_the_types_limits_is_refused_naming_the_field(
    call: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        report.task_type.options(call)
    assert refused.value.field == field


def test_a_type_can_narrow_its_limits() -> None:
    kind = TaskType(
        "tests.tight", timeout_s=60, attempts_limit=3, timeout_limit_s=120, delay_limit_s=0
    )
    assert kind.options({"max_attempts": 3, "timeout_s": 120}).max_attempts == 3
    with pytest.raises(ValidationError, match="from 1 to 3"):
        kind.options({"max_attempts": 4})
    with pytest.raises(ValidationError, match="from 0 to 0"):
        kind.options({"delay_seconds": 1})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": "Bad Name"}, "dotted lowercase"),
        ({"queue": "no spaces"}, "queue"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 11}, "must not exceed attempts_limit"),
        ({"timeout_s": 7200}, "must not exceed timeout_limit_s"),
        ({"payload_schema": {"type": "array"}}, "JSON object"),
        ({"delay_limit_s": -1}, "delay_limit_s"),
    ],
)
def test_a_nonsensical_declaration_fails_at_import_saying_why(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        TaskType(**{"name": "tests.bad", **changes})


def test_the_catalogue_round_trips_through_its_json() -> None:
    catalogue = Catalogue([report.task_type, TaskType("tests.other", priority=Priority.HIGH)])
    again = Catalogue.from_json(json.loads(catalogue.dumps()))
    assert dict(again) == dict(catalogue)
    assert again.queues == ["default", "reports"]


def test_the_catalogue_names_the_known_types_when_one_is_unknown() -> None:
    catalogue = Catalogue([report.task_type])
    with pytest.raises(UnknownTaskType, match=r"known types: tests\.report"):
        catalogue.lookup("tests.nope")
    with pytest.raises(ValidationError, match="must be a string"):
        catalogue.lookup(42)


def test_a_malformed_catalogue_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text('{"v": 1, "task_types": [{"description": "no name"}]}')
    with pytest.raises(ValueError, match=str(path)):
        Catalogue.load(path)
    with pytest.raises(ValueError, match="version"):
        Catalogue.from_json({"v": 2, "task_types": []})


def test_a_shortcut_travels_in_the_catalogue_and_names_one_type() -> None:
    images = TaskType("tests.images", shortcut="images")
    catalogue = Catalogue.from_json(json.loads(Catalogue([images, report.task_type]).dumps()))
    assert catalogue.by_shortcut("images") == images
    assert catalogue.by_shortcut("tests.report") is None
    assert images.to_json()["shortcut"] == "/images"
    with pytest.raises(ValueError, match="both take the shortcut /images"):
        Catalogue([images, TaskType("tests.other", shortcut="images")])


@pytest.mark.parametrize("shortcut", ["tasks", "task-types", "health", "Images", "a/b", ""])
def test_a_shortcut_may_not_take_the_apis_own_paths_or_odd_names(shortcut: str) -> None:
    with pytest.raises(ValueError, match="shortcut"):
        TaskType("tests.bad", shortcut=shortcut)


def test_isolation_is_declared_for_the_workers_and_stays_out_of_the_catalogue() -> None:
    alone = task("tests.alone", isolated=True)(lambda ctx, payload: None)

    assert alone.isolated is True
    assert report.isolated is False
    assert "isolated" not in json.dumps(Catalogue([alone.task_type]).to_json())
    with pytest.raises(TypeError, match="isolated must be True or False"):
        task("tests.odd", isolated="yes")(lambda ctx, payload: None)  # type: ignore[arg-type]


def test_two_types_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Catalogue([report.task_type, report.task_type])


def test_task_failed_says_whether_to_retry() -> None:
    assert TaskFailed("no").retry is False
    failed = TaskFailed("later", retry=True, code="upstream_down")
    assert (failed.retry, failed.code, failed.message) == (True, "upstream_down", "later")


class Rows:
    """A stand-in for a pydantic model: what ``task`` needs of one."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        return {"type": "object", "properties": {"rows": {"type": "integer"}}}

    @classmethod
    def model_validate(cls, data: Any) -> Rows:
        return cls(int(data["rows"]))


def test_a_model_payload_gives_its_schema_and_the_function_an_instance() -> None:
    @task("tests.model", payload=Rows)
    def count(ctx: Any, payload: Rows) -> int:
        return payload.rows

    assert count.task_type.payload_schema == Rows.model_json_schema()

    class Ctx:
        payload = {"rows": 7}  # noqa: RUF012

    assert count.run(Ctx()) == 7  # type: ignore[arg-type]


def test_a_payload_its_model_refuses_fails_without_retry() -> None:
    @task("tests.model_refuses", payload=Rows)
    def count(ctx: Any, payload: Rows) -> int:
        return payload.rows

    class Ctx:
        payload = {"rows": "many"}  # noqa: RUF012

    with pytest.raises(TaskFailed) as failed:
        count.run(Ctx())  # type: ignore[arg-type]
    assert (failed.value.code, failed.value.retry) == ("invalid_payload", False)


def test_an_async_function_runs_to_its_result() -> None:
    @task("tests.async")
    async def double(ctx: Any, payload: dict[str, Any]) -> int:
        return 2 * int(payload["n"])

    class Ctx:
        payload = {"n": 21}  # noqa: RUF012

    assert double.run(Ctx()) == 42  # type: ignore[arg-type]


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package of the user's in a folder of its own, importable for this test only."""
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from taskcast import task\n\n"
        "@task('user.hello')\n"
        "def hello(ctx, payload):\n"
        "    return 'hello'\n"
    )
    (package / "empty.py").write_text("X = 1\n")
    (package / "broken.py").write_text("import not_a_module_anywhere\n")
    (package / "again.py").write_text(
        "from taskcast import task\n\n@task('user.hello')\ndef other(ctx, payload):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [m for m in sys.modules if m.startswith("userpkg")]:
        del sys.modules[name]


def test_loading_a_module_finds_the_tasks_it_declares(user_package: Path) -> None:
    found = load(["userpkg.tasks"])
    assert list(found) == ["user.hello"]
    assert found["user.hello"](None, {}) == "hello"
    assert load(["userpkg.tasks", "userpkg.tasks"]).keys() == found.keys()


@pytest.mark.parametrize(
    ("modules", "problem"),
    [
        (["userpkg.nope"], "cannot be imported: ModuleNotFoundError"),
        (["userpkg.broken"], "cannot be imported: ModuleNotFoundError"),
        (["userpkg.empty"], "declares no task"),
        (["userpkg.tasks", "userpkg.again"], "declared twice"),
    ],
)
def test_a_bad_task_module_fails_naming_the_module(
    user_package: Path, modules: list[str], problem: str
) -> None:
    with pytest.raises(TaskModuleError, match=problem):
        load(modules)
