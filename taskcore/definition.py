"""The public task API: how a user declares a task type and the function that runs it.

In their own package::

    from taskcast import TaskContext, TaskFailed, task

    @task("myapp.report", payload={"type": "object", "properties": {"rows": {"type": "integer"}}},
          max_attempts=3, timeout_s=600)
    def report(ctx: TaskContext, payload: dict) -> dict:
        for step in range(10):
            ctx.raise_if_cancelled()
            ctx.progress(10 * (step + 1), f"step {step + 1} of 10")
            ctx.emit("log", {"line": f"did step {step + 1}"})
        return {"rows": payload.get("rows", 0)}

``TASKCAST_TASKS=myapp.tasks`` (or ``taskcast up --tasks myapp.tasks``) names the modules; workers
import them with :func:`load` and the edge loads the catalogue exported from them. A decorated
function stays a plain callable, so it can be unit-tested without taskcast running.

Standard library only: a pydantic model is accepted as ``payload`` by duck typing
(``model_json_schema``, ``model_validate``), without importing pydantic here.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from .catalogue import Catalogue
from .errors import TaskcastError
from .tasktype import ANY_OBJECT, Priority, TaskType


class TaskContext(Protocol):
    """What the function of a task is given to run one attempt (the worker provides it)."""

    @property
    def task_id(self) -> str: ...

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""

    @property
    def max_attempts(self) -> int: ...

    @property
    def trace_id(self) -> str:
        """The id that ties this task's log lines together across every part."""

    @property
    def traceparent(self) -> str | None:
        """The task's W3C trace context, to send on with the calls it makes (a header of
        that name); ``None`` for a task submitted before taskcast kept one."""

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as validated at the edge, with the schema's defaults filled in."""

    def progress(self, percent: float, message: str = "") -> None:
        """Tell the task's watchers how far it has got (0-100); never goes backwards."""

    def emit(self, name: str, data: Any = None) -> None:
        """Push an event of the task's own to its watchers: a partial result, a log line, a
        token. Bounded in size and rate (see the worker's ``context`` module)."""

    @property
    def cancel_requested(self) -> bool:
        """Whether the task's owner asked it to stop."""

    def raise_if_cancelled(self) -> None:
        """Stop here if the owner asked: call it between steps that are safe to end at."""


class TaskFailed(TaskcastError):
    """Raised by a task to fail with a message meant for the task's owner.

    ``retry`` says whether another attempt could succeed (a timeout upstream, say): if it does
    and attempts are left, the task is retried with its backoff; otherwise it fails at once.
    ``code`` becomes the error's ``type``. Any other exception is retried while attempts last.
    """

    def __init__(self, message: str, *, retry: bool = False, code: str = "task_failed") -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry
        self.code = code


class TaskModuleError(TaskcastError):
    """A task module named in ``TASKCAST_TASKS`` cannot be imported or declares nonsense."""


@runtime_checkable
class _PayloadModel(Protocol):
    @classmethod
    def model_json_schema(cls) -> dict[str, Any]: ...

    @classmethod
    def model_validate(cls, obj: Any) -> Any: ...


TaskFunction = Callable[[Any, Any], Any]
"""``function(ctx, payload)``, sync or ``async``, returning any JSON value."""


class TaskDefinition:
    """A task type with the function that runs its attempts; made by :func:`task`."""

    def __init__(
        self,
        task_type: TaskType,
        function: TaskFunction,
        model: Any = None,
        *,
        isolated: bool = False,
    ) -> None:
        self.task_type = task_type
        self.function = function
        self.model = model
        self.isolated = isolated
        """Whether each attempt runs in a process of its own (the workers' concern alone: the
        catalogue does not carry it)."""
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", task_type.name)
        self.__wrapped__ = function

    @property
    def name(self) -> str:
        return self.task_type.name

    def __call__(self, ctx: Any, payload: Any) -> Any:
        """Call the function itself, as a test would."""
        return self.function(ctx, payload)

    def __repr__(self) -> str:
        return f"<task {self.name} -> {self.function.__module__}.{self.__name__}>"

    def parse_payload(self, payload: dict[str, Any]) -> Any:
        """The payload as the function takes it: the model's instance, or the dict itself."""
        return payload if self.model is None else self.model.model_validate(payload)

    def run(self, ctx: TaskContext) -> Any:
        """Run one attempt and return its result; an ``async`` function gets its own loop.

        A payload its model refuses fails the task at once: no attempt would take it.
        """
        try:
            payload = self.parse_payload(ctx.payload)
        except Exception as exc:
            raise TaskFailed(
                f"the payload does not fit {self.name}: {exc}", code="invalid_payload"
            ) from exc
        result = self.function(ctx, payload)
        if inspect.isawaitable(result):
            return asyncio.run(_awaited(result))
        return result


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def task(
    name: str,
    *,
    payload: Mapping[str, Any] | type | None = None,
    description: str | None = None,
    # The defaults are TaskType's, so that they are written in one place.
    queue: str = TaskType.queue,
    priority: Priority | str = TaskType.priority,
    max_attempts: int = TaskType.max_attempts,
    timeout_s: int = TaskType.timeout_s,
    retry_base_s: int = TaskType.retry_base_s,
    retry_cap_s: int = TaskType.retry_cap_s,
    queue_timeout_s: int = TaskType.queue_timeout_s,
    attempts_limit: int = TaskType.attempts_limit,
    timeout_limit_s: int = TaskType.timeout_limit_s,
    delay_limit_s: int = TaskType.delay_limit_s,
    shortcut: str | None = None,
    isolated: bool = False,
) -> Callable[[TaskFunction], TaskDefinition]:
    """Declare the decorated ``function(ctx, payload)`` as the task type ``name``.

    ``payload`` is a JSON Schema (a dict) or a pydantic model class; the edge validates every
    submission against it and fills in its top-level defaults. ``max_attempts``, ``timeout_s``
    and ``priority`` are defaults a call may change, up to ``attempts_limit``,
    ``timeout_limit_s`` and ``delay_limit_s``. ``queue`` picks the workers that run it.
    ``shortcut="images"`` also accepts ``POST /images`` with the payload as the whole body.
    ``isolated=True`` runs each attempt in a process forked for it, so that a crash, a leak or
    a change to the process's state ends with the attempt (about 18 ms of CPU more per
    attempt; other types run in the worker's own process). ``ValueError`` at import if anything
    is out of range.
    """

    def declare(function: TaskFunction) -> TaskDefinition:
        if not callable(function):
            raise TypeError(f"@task({name!r}) must decorate a function")
        model: Any = None
        schema: Mapping[str, Any]
        if isinstance(payload, type):
            if not isinstance(payload, _PayloadModel):
                raise TypeError(f"@task({name!r}): payload must be a JSON Schema or pydantic model")
            model, schema = payload, payload.model_json_schema()
        else:
            schema = payload if payload is not None else dict(ANY_OBJECT)
        summary = description
        if summary is None:
            summary = (inspect.getdoc(function) or "").split("\n\n")[0].replace("\n", " ")
        task_type = TaskType(
            name=name,
            description=summary,
            payload_schema=schema,
            queue=queue,
            priority=Priority(priority),
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            retry_base_s=retry_base_s,
            retry_cap_s=retry_cap_s,
            queue_timeout_s=queue_timeout_s,
            attempts_limit=attempts_limit,
            timeout_limit_s=timeout_limit_s,
            delay_limit_s=delay_limit_s,
            shortcut=shortcut,
        )
        if not isinstance(isolated, bool):
            raise TypeError(f"@task({name!r}): isolated must be True or False")
        return TaskDefinition(task_type, function, model, isolated=isolated)

    return declare


def load(modules: Iterable[str]) -> dict[str, TaskDefinition]:
    """Import ``modules`` and return every task they declare, by type name.

    A module declares the :class:`TaskDefinition` objects among its attributes. Importing is
    all it takes: no registry is global, so loading twice gives the same answer.
    :class:`TaskModuleError` names the module that cannot be imported, declares nothing, or
    declares a type another module declares too.
    """
    found: dict[str, TaskDefinition] = {}
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise TaskModuleError(
                f"task module {module_name!r} cannot be imported: {type(exc).__name__}: {exc}"
            ) from exc
        declared = {d.name: d for d in vars(module).values() if isinstance(d, TaskDefinition)}
        if not declared:
            raise TaskModuleError(f"task module {module_name!r} declares no task (use @task)")
        for type_name, definition in declared.items():
            other = found.get(type_name)
            if other is not None and other is not definition:
                raise TaskModuleError(
                    f"task type {type_name!r} is declared twice: {other!r} and {definition!r}"
                )
            found[type_name] = definition
    return found


def catalogue(modules: Iterable[str]) -> Catalogue:
    """The catalogue of the task types ``modules`` declare (what ``taskcast tasks export``
    writes); :class:`TaskModuleError` as :func:`load`."""
    return Catalogue(d.task_type for d in load(modules).values())
