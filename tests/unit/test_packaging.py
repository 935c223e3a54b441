"""The packages as a user installs them: the client alone, and the stack's parts as package data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SERVER_LIBRARIES = ("chalice", "aio_pika", "aiormq", "boto3", "redis", "rq", "moto", "jsonschema")
"""What the edge, the workers and the emulator need, and ``pip install taskcast`` does not bring."""

_WITHOUT_SERVER_LIBRARIES = f"""
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {SERVER_LIBRARIES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Absent())
"""


PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")
PACKAGES = ("taskcore", "worker_container", "realtime", "infra", "taskcast", "console")
PACKAGES += ("taskcast_demo", "taskcast_images")
NOT_SOURCE = (
    ".git",
    ".venv",
    ".hypothesis",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "vendor",
)


def client_only(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where none of the server libraries can be imported."""
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_SERVER_LIBRARIES + code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_the_sdk_and_cli_work_without_the_server_libraries() -> None:
    done = client_only(
        "import taskcast\n"
        "from taskcast import Client, task\n"
        "from taskcast.cli import main\n"
        "sys.argv = ['taskcast', '--help']\n"
        "main()\n"
    )
    assert done.returncode == 0, done.stderr
    assert "usage: taskcast" in done.stdout


def test_the_server_libraries_are_really_blocked_in_that_check() -> None:
    done = client_only("import chalice")
    assert done.returncode == 1
    assert "No module named 'chalice'" in done.stderr


def test_taskcast_up_without_the_local_extra_says_what_to_install() -> None:
    done = client_only(
        "from taskcast.cli import main\n"
        "sys.argv = ['taskcast', 'up', '--tasks', 'taskcast_demo.tasks']\n"
        "sys.exit(main())\n"
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'taskcast[local]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy, so the build leaves nothing in the checkout and finds nothing stale there.
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("taskcast-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_every_module_of_every_part(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for part in PACKAGES
        for path in (ROOT / part).rglob("*.py")
    }
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (list the package in pyproject.toml): {missing}"


def test_the_wheel_carries_the_edge_project_for_taskcast_up(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    project = "taskcast/local/edge_app/"
    functions = ROOT / "functions"
    expected = {
        project + path.relative_to(functions).as_posix()
        for path in functions.rglob("*")
        if path.is_file()
        and "vendor" not in path.parts
        and "__pycache__" not in path.parts
        and path.name not in ("Dockerfile", "catalogue.json")
    }
    assert project + ".chalice/config.json" in expected
    missing = sorted(expected - names)
    assert not missing, f"the edge's project is incomplete in the wheel: {missing}"
    assert any(name.startswith("console/static/") for name in names)


def test_each_part_has_an_entry_point_named_for_what_it_runs(wheel: zipfile.ZipFile) -> None:
    [entry_points] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    for script, target in {
        "taskcast": "taskcast.cli:main",
        "taskcast-edge": "taskcast.local.edge:run",
        "taskcast-relay": "worker_container.relay:main",
        "taskcast-worker": "worker_container.worker:main",
        "taskcast-sweeper": "worker_container.sweeper:main",
        "taskcast-realtime": "realtime.server:main",
        "taskcast-provision": "infra.__main__:main",
        "taskcast-console": "console.__main__:main",
    }.items():
        assert f"{script} = {target}" in text


@pytest.mark.parametrize(
    "dockerfile", sorted(ROOT.glob("*/Dockerfile")), ids=lambda path: path.parent.name
)
def test_an_image_that_installs_taskcast_copies_every_listed_package(dockerfile: Path) -> None:
    """pyproject.toml lists its packages, and setuptools fails on one that is not there: an
    image must install from the whole build context, not from a few folders of it."""
    stages = dockerfile.read_text().split("\nFROM ")
    for stage in stages:
        if re.search(r"pip install '/src\[", stage):
            assert "COPY . /src" in stage, f"{dockerfile}: installs from a partial copy"
        assert not re.search(r"pip install '\.\[", stage), (
            f"{dockerfile}: installs from the working directory, which holds only what was copied"
        )


@pytest.mark.parametrize(
    "dockerfile", sorted(ROOT.glob("*/Dockerfile")), ids=lambda path: path.parent.name
)
def test_an_image_runs_an_entry_point_that_exists(dockerfile: Path) -> None:
    cmd = re.search(r'^CMD \["([^"]+)"', dockerfile.read_text(), re.M)
    assert cmd is not None
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[1] in {*scripts, "python"}
