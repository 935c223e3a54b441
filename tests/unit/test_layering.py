"""The layering of the code: what each part may import, read from the source of every module.

taskcore is the contract and imports only the standard library. The edge, the workers and the
realtime service each build on taskcore and never on each other, so each can be deployed (and
packaged for Lambda) alone. The SDK and CLI stand alone too: ``pip install taskcast`` gives them
without the edge's or the workers' libraries. Nothing imports the CLI.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PARTS = {
    # part: (its folders, relative to the root)
    "taskcore": ("taskcore",),
    "edge": ("functions/app.py", "functions/chalicelib"),
    "worker": ("worker_container",),
    "realtime": ("realtime",),
    "infra": ("infra",),
    "sdk": ("taskcast",),
    "local": ("taskcast/local",),
    "console": ("console",),
}

OURS = {
    "taskcore": "taskcore",
    "chalicelib": "edge",
    "app": "edge",
    "worker_container": "worker",
    "realtime": "realtime",
    "infra": "infra",
    "taskcast": "sdk",
    "taskcast.local": "local",
    "console": "console",
    "taskcast_demo": "examples",
    "taskcast_images": "examples",
}

MAY_IMPORT: dict[str, tuple[set[str], set[str]]] = {
    # part: (our parts it may import, third-party distributions' top-level modules)
    "taskcore": (set(), set()),
    "edge": ({"taskcore"}, {"chalice", "boto3", "botocore", "aio_pika", "aiormq", "jsonschema"}),
    "worker": (
        {"taskcore"},
        {"boto3", "botocore", "aio_pika", "aiormq", "redis", "rq", "prometheus_client"},
    ),
    "realtime": ({"taskcore"}, {"boto3", "botocore", "redis", "websockets", "prometheus_client"}),
    "infra": (
        {"taskcore"},
        {"boto3", "botocore", "aio_pika", "aiormq", "pamqp", "localstack_client"},
    ),
    "sdk": ({"taskcore"}, {"httpx", "websockets", "rich"}),
    # The local stack runs the edge's own server (chalice local with the edge's error answers)
    # and moto's app on a server of its own (the emulator).
    "local": (
        {"taskcore", "sdk", "edge", "examples"},
        {"httpx", "chalice", "rich", "moto", "werkzeug"},
    ),
    "console": ({"taskcore"}, set()),
}


def modules(part: str) -> Iterator[Path]:
    for place in PARTS[part]:
        path = ROOT / place
        if path.suffix == ".py":
            yield path
        else:
            yield from sorted(path.rglob("*.py"))


def part_of(path: Path) -> str:
    """The part a file belongs to: the longest of the parts' folders that holds it."""
    relative = path.relative_to(ROOT).as_posix()
    matches = [
        (len(place), part)
        for part, places in PARTS.items()
        for place in places
        if relative == place or relative.startswith(place + "/")
    ]
    return max(matches)[1]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute module a file imports, with its line, lazy imports in functions included."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def owner(module: str) -> str | None:
    """Which of our parts a module is, or ``None`` for the standard library and third parties."""
    if module == "taskcast.local" or module.startswith("taskcast.local."):
        return OURS["taskcast.local"]
    return OURS.get(module.partition(".")[0])


@pytest.mark.parametrize("part", sorted(MAY_IMPORT))
def test_each_part_imports_only_what_its_layer_allows(part: str) -> None:
    ours, third_party = MAY_IMPORT[part]
    wrong = []
    for path in modules(part):
        if part_of(path) != part:
            continue  # a subpackage with its own rules
        for line, module in imports(path):
            top = module.partition(".")[0]
            theirs = owner(module)
            if theirs == part or top in sys.stdlib_module_names or top == "__future__":
                continue
            if theirs is not None and theirs in ours:
                continue
            if theirs is None and top in third_party:
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, f"{part} may import only {sorted(ours)} and {sorted(third_party)}:\n" + (
        "\n".join(wrong)
    )


def test_nothing_imports_the_cli() -> None:
    importers = [
        f"{path.relative_to(ROOT)}:{line}"
        for part in PARTS
        for path in modules(part)
        for line, module in imports(path)
        if module == "taskcast.cli" and path != ROOT / "taskcast" / "cli.py"
    ]
    assert not importers


def test_a_forbidden_import_is_found() -> None:
    """The check above can fail: a worker module importing the edge is caught."""
    tree = ast.parse("from chalicelib import services\nimport realtime.hub\n")
    found = [
        owner(node.module if isinstance(node, ast.ImportFrom) else node.names[0].name)
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert found == ["edge", "realtime"]
    assert not {"edge", "realtime"} & MAY_IMPORT["worker"][0]
