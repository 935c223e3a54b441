"""The catalogue: the task types a deployment accepts, as one JSON document.

Workers import the user's task modules; the edge must not (it would carry their dependencies
into every Lambda). So the types are exported from the modules once, as JSON
(``taskcast tasks export MODULES``), and the edge loads that file at start-up: one read per
instance, none per request. The file is ``{"v": 1, "task_types": [<TaskType.to_json()>, ...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import UnknownTaskType, ValidationError
from .tasktype import TaskType

CATALOGUE_VERSION = 1


class Catalogue(Mapping[str, TaskType]):
    """Task types by name."""

    def __init__(self, types: Iterable[TaskType] = ()) -> None:
        self._types: dict[str, TaskType] = {}
        self._shortcuts: dict[str, TaskType] = {}
        for task_type in types:
            if task_type.name in self._types:
                raise ValueError(f"task type {task_type.name!r} is declared twice")
            self._types[task_type.name] = task_type
            if task_type.shortcut is not None:
                other = self._shortcuts.setdefault(task_type.shortcut, task_type)
                if other is not task_type:
                    raise ValueError(
                        f"task types {other.name!r} and {task_type.name!r} both take the "
                        f"shortcut /{task_type.shortcut}"
                    )

    def __getitem__(self, name: str) -> TaskType:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def lookup(self, name: Any) -> TaskType:
        """The type called ``name``, or :class:`UnknownTaskType` naming the known ones."""
        if not isinstance(name, str):
            raise ValidationError("type must be a string naming a task type", field="type")
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types)) or "none"
            raise UnknownTaskType(
                f"unknown task type {name!r}; known types: {known}", field="type"
            ) from None

    def by_shortcut(self, shortcut: str) -> TaskType | None:
        """The type that ``POST /<shortcut>`` submits, if any."""
        return self._shortcuts.get(shortcut)

    @property
    def queues(self) -> list[str]:
        """Every queue a type of this catalogue names, in name order."""
        return sorted({t.queue for t in self._types.values()})

    def to_json(self) -> dict[str, Any]:
        return {
            "v": CATALOGUE_VERSION,
            "task_types": [self._types[name].to_json() for name in sorted(self._types)],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> Catalogue:
        """Parse a catalogue document; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict) or data.get("v") != CATALOGUE_VERSION:
            raise ValueError(f"not a version {CATALOGUE_VERSION} taskcast catalogue")
        types = data.get("task_types")
        if not isinstance(types, list):
            raise ValueError("task_types must be a list")
        return cls(TaskType.from_json(t) for t in types)

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        """Read the catalogue file at ``path``; ``ValueError`` names the file and the problem."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
