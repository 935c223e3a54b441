"""``taskcast up``: the whole local stack as child processes, supervised in the foreground.

The moto server as AWS emulator (:mod:`taskcast.local.emulator`, unless ``AWS_ENDPOINT_URL``
points elsewhere), provisioning, the catalogue exported from the user's task modules, the edge
under ``chalice local``, the relay, N RQ workers with the task modules loaded, and the realtime
service, against RabbitMQ and Redis on localhost. Each child's output is prefixed with its name; Ctrl-C (or SIGTERM) stops
every child, newest first, each with SIGTERM and then, if it lingers, SIGKILL.

Once the stack is up, :meth:`Stack.supervise` restarts a part that exits, after a backoff
(1 s, doubling to 30 s; back to 1 s for a part that had run a minute), and says so. A part that
dies while the stack starts stops it: that is a configuration to fix, not a crash to ride out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import IO, TextIO
from urllib.parse import urlsplit

import httpx

from taskcore.catalogue import Catalogue
from taskcore.config import (
    EDGE_PORT,
    EMULATOR_PORT,
    LOCAL_API_KEY,
    LOCALHOST,
    REALTIME_PORT,
    Config,
    parse_modules,
)

log = logging.getLogger(__name__)

FUNCTIONS_DIR = Path(str(files("taskcast.local.edge_app")))
"""The edge's Chalice project, where it is installed: package data, not a path into a checkout."""

DEFAULTS = {
    "TASKCAST_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "TASKCAST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "TASKCAST_API_KEYS": f"{LOCAL_API_KEY}=dev",
    # The local key may operate: the console's operations tab and `taskcast dlq`.
    "TASKCAST_OPERATORS": "dev",
    # moto and LocalStack accept any credentials; boto3 insists on having some.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
RESTART_STABLE_S = 60.0
"""A part that ran this long before it exited is restarted after ``RESTART_FIRST_S`` again."""
NOT_RESTARTED = frozenset({"moto"})
"""Parts whose state dies with them: the moto server keeps the emulated AWS in memory."""


class StackError(Exception):
    """The stack cannot start, or cannot go on; the message tells the user what to do."""


@dataclass(frozen=True)
class Ports:
    edge: int = EDGE_PORT
    realtime: int = REALTIME_PORT
    moto: int = EMULATOR_PORT
    console: int | None = None
    """The console's port; ``None`` serves no console."""
    metrics: int | None = None
    """The first of the ports the parts serve Prometheus metrics on, one each, in the order of
    :meth:`Stack.metrics_ports`; ``None`` serves none."""


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[str]
    pump: threading.Thread
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class Restarts:
    """How a part has been restarted: how often, the last backoff, when the next start is due."""

    count: int = 0
    delay_s: float = 0.0
    due: float | None = None


def stack_environment(
    base: Mapping[str, str], ports: Ports, host: str, use_moto: bool
) -> dict[str, str]:
    """The environment every child gets: the caller's, with local defaults for what is unset."""
    env = dict(base)
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    env.setdefault("TASKCAST_WATCH_SECRET", secrets.token_urlsafe(32))
    env.setdefault("TASKCAST_REALTIME_URL", f"ws://{host}:{ports.realtime}")
    env.setdefault("TASKCAST_ALLOWED_ORIGINS", ",".join(_page_origins(host, ports)))
    if use_moto:
        env["AWS_ENDPOINT_URL"] = f"http://{host}:{ports.moto}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _page_origins(host: str, ports: Ports) -> list[str]:
    """The origins of the stack's own pages (the console's, the edge's): they may call the API."""
    # A page is opened by a name for the host: on loopback or all interfaces, by either of these.
    local = host in ("127.0.0.1", "localhost", "0.0.0.0", "::")
    hosts = ["127.0.0.1", "localhost"] if local else [host]
    served = [p for p in (ports.console, ports.edge) if p is not None]
    return [f"http://{h}:{port}" for port in served for h in hosts]


def check_reachable(config: Config) -> None:
    """Fail with instructions if RabbitMQ or Redis does not accept connections."""
    for variable, url, default_port, start in (
        ("TASKCAST_RABBITMQ_URL", config.rabbitmq, 5672, "rabbitmq-server -detached"),
        ("TASKCAST_REDIS_URL", config.redis, 6379, "redis-server --daemonize yes"),
    ):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or default_port
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as exc:
            raise StackError(
                f"cannot reach {host}:{port} ({variable}={url}): {exc.strerror or exc}.\n"
                f"  Start it (for example `{start}`, or `docker compose up -d` for the containers),\n"
                f"  or point {variable} at a running server."
            ) from None


def _wait_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


PARTS_NEED = {
    "the edge": ("chalice", "aio_pika", "jsonschema", "boto3"),
    "the relay and workers": ("rq", "redis", "aio_pika", "prometheus_client"),
    "the realtime service": ("redis", "websockets", "prometheus_client"),
    "the AWS emulator": ("moto",),
}
"""What the parts ``taskcast up`` runs import: all of it comes with ``taskcast[local]``."""


def check_installed(use_moto: bool = True) -> None:
    """Fail with the install command if a part's libraries are missing (a client-only install)."""
    missing = sorted(
        {
            module
            for part, modules in PARTS_NEED.items()
            if use_moto or part != "the AWS emulator"
            for module in modules
            if not _importable(module)
        }
    )
    if missing:
        raise StackError(
            f"the local stack's parts are not installed (missing: {', '.join(missing)}).\n"
            "  Install them with: pip install 'taskcast[local]'"
        )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or one blocked in sys.modules
        return False


def entry(target: str, *args: str) -> list[str]:
    """The command of a part that runs ``module:function``, as its entry point (``taskcast-relay``
    and the like) does, with this interpreter.

    Not ``python -m module``: that runs the module's file as ``__main__``, a second copy beside
    the imported one, with its loggers named ``__main__``.
    """
    module, function = target.split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code, *args]


class Stack:
    def __init__(
        self,
        env: Mapping[str, str],
        *,
        host: str = LOCALHOST,
        ports: Ports = Ports(),
        workers: int = 2,
        tasks: str | None = None,
        queues: str | None = None,
        output: TextIO | None = None,
        restart_stable_s: float = RESTART_STABLE_S,
    ) -> None:
        self.use_moto = not env.get("AWS_ENDPOINT_URL")
        check_installed(self.use_moto)
        self.host = host
        self.ports = ports
        self.workers = workers
        self.queues = queues
        """The queues the workers serve (``--queues``); ``None``: every queue of the task types."""
        self.env = stack_environment(env, ports, host, self.use_moto)
        if tasks is not None:
            self.env["TASKCAST_TASKS"] = ",".join(parse_modules(tasks, "--tasks"))
        if not self.env.get("TASKCAST_TASKS", "").strip():
            raise StackError(
                "name the modules that declare your tasks: taskcast up --tasks myapp.tasks "
                "(or TASKCAST_TASKS); --tasks taskcast_demo.tasks runs the demo tasks"
            )
        # The user's modules are imported from where taskcast was started, as `python -m` would.
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.getcwd(), self.env.get("PYTHONPATH", "")) if p
        )
        self.config = Config.from_env(
            self.env, need=("rabbitmq", "redis", "watch_secret", "api_keys")
        )
        self.catalogue = Catalogue()
        self._state_dir: str | None = None
        self._output = output or sys.stdout
        self._children: list[Child] = []
        self._lock = threading.Lock()
        self._restarts: dict[str, Restarts] = {}
        self._restart_stable_s = restart_stable_s
        self._stopping = False

    @property
    def edge_url(self) -> str:
        return f"http://{self.host}:{self.ports.edge}"

    @property
    def realtime_url(self) -> str:
        return self.config.realtime_url

    @property
    def api_key(self) -> str:
        """The first API key of ``TASKCAST_API_KEYS``: the one the stack's own messages name."""
        return self.env["TASKCAST_API_KEYS"].split(",")[0].split("=")[0].strip()

    @property
    def metrics_ports(self) -> dict[str, int]:
        """The port of each part's metrics, by part: consecutive from ``ports.metrics``, the
        workers last, so that any number of workers never takes another part's port."""
        first = self.ports.metrics
        if first is None:
            return {}
        workers = [f"worker-{n}" for n in range(1, self.workers + 1)]
        parts = ["relay", "sweeper", "realtime", *workers]
        return {part: first + n for n, part in enumerate(parts)}

    def _metrics_options(self, part: str) -> list[str]:
        port = self.metrics_ports.get(part)
        return [] if port is None else ["--metrics-port", str(port), "--metrics-host", self.host]

    @property
    def console_url(self) -> str | None:
        return None if self.ports.console is None else f"http://{self.host}:{self.ports.console}/"

    def start(self, timeout_s: float = 60) -> None:
        """Start every part and return once the edge and realtime service answer."""
        check_reachable(self.config)
        python = sys.executable
        if self.use_moto:
            # moto's server, on connections kept alive (see taskcast.local.emulator).
            self._spawn(
                "moto",
                entry("taskcast.local.emulator:main", "-H", self.host, "-p", str(self.ports.moto)),
            )
            if not _wait_port(self.host, self.ports.moto, timeout_s):
                raise StackError(f"the moto server did not start on port {self.ports.moto}")
        self._run_once("provision", [python, "-m", "infra"], timeout_s)
        self._export_catalogue(timeout_s)
        self._spawn(
            "edge",
            [
                python,
                "-m",
                "taskcast.local.edge",
                "--project-dir",
                str(FUNCTIONS_DIR),
                "local",
                "--host",
                self.host,
                "--port",
                str(self.ports.edge),
                "--stage",
                "local",
                "--no-autoreload",
            ],
        )
        self._spawn("relay", entry("worker_container.relay:main", *self._metrics_options("relay")))
        for n in range(1, self.workers + 1):
            options = [] if self.queues is None else ["--queues", self.queues]
            options += self._metrics_options(f"worker-{n}")
            self._spawn(f"worker-{n}", entry("worker_container.worker:main", *options))
        self._spawn(
            "sweeper", entry("worker_container.sweeper:main", *self._metrics_options("sweeper"))
        )
        realtime = [
            python,
            "-m",
            "realtime",
            "--host",
            self.host,
            "--port",
            str(self.ports.realtime),
        ]
        self._spawn("realtime", realtime + self._metrics_options("realtime"))
        if self.ports.console is not None:
            self._spawn(
                "console",
                [
                    python,
                    "-m",
                    "console",
                    "--host",
                    self.host,
                    "--port",
                    str(self.ports.console),
                    "--api",
                    self.edge_url,
                ],
            )
        self._wait_healthy(timeout_s)

    def _export_catalogue(self, timeout_s: float) -> None:
        """Export the task types for the edge, which never imports the task modules itself."""
        self._state_dir = tempfile.mkdtemp(prefix="taskcast-stack-")
        path = os.path.join(self._state_dir, "catalogue.json")
        modules = self.env["TASKCAST_TASKS"]
        self._run_once(
            "tasks",
            [sys.executable, "-m", "taskcast.cli", "tasks", "export", modules, "-o", path],
            timeout_s,
        )
        self.env["TASKCAST_CATALOGUE"] = path
        self.catalogue = Catalogue.load(path)

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        probes = {
            "edge": f"{self.edge_url}/health",
            "realtime": f"http://{self.host}:{self.ports.realtime}/healthz",
        }
        if self.console_url is not None:
            probes["console"] = f"{self.console_url}config.json"
        while probes:
            self.check_children()
            for name, url in list(probes.items()):
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        del probes[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise StackError(f"{', '.join(probes)} did not become healthy in {timeout_s:.0f} s")
            time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        """The process id of each running part, by name."""
        return {child.name: child.process.pid for child in self._children}

    def send_signal(self, name: str, sig: signal.Signals) -> None:
        """Send ``sig`` to the part ``name`` and the processes in its group."""
        os.killpg(self._child(name).process.pid, sig)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, timeout_s: float = 30) -> int:
        """Send ``sig`` to the part ``name``, wait for it to exit, and return its exit code."""
        self.send_signal(name, sig)
        child = self._child(name)
        code = child.process.wait(timeout_s)
        child.pump.join(timeout=2)
        return code

    def returncode(self, name: str) -> int | None:
        """The exit code of the part ``name``, or ``None`` while it runs."""
        return self._child(name).process.poll()

    def restart(self, name: str, env: Mapping[str, str] | None = None) -> None:
        """Start the part ``name`` again (after it exited), with ``env`` changed if given."""
        child = self._child(name)
        if child.process.poll() is None:
            raise StackError(f"{name} is still running")
        self._children.remove(child)
        self._spawn(name, child.argv, env)

    def _child(self, name: str) -> Child:
        for child in self._children:
            if child.name == name:
                return child
        raise StackError(f"no part called {name}; the parts are {', '.join(self.pids())}")

    def supervise(self, now: float | None = None) -> None:
        """Restart the parts that exited, each once its backoff is over; say what happens.

        Call it every half second or so. Raises :class:`StackError` for a part that cannot be
        restarted (``NOT_RESTARTED``). Does nothing once :meth:`stop` has begun.
        """
        now = time.monotonic() if now is None else now
        for child in list(self._children):
            code = child.process.poll()
            if code is None or self._stopping:
                continue
            state = self._restarts.setdefault(child.name, Restarts())
            if state.due is None:
                self._end_group(child)
                if child.name in NOT_RESTARTED:
                    raise StackError(
                        f"{child.name} exited with code {code}, and what it held went with it; "
                        "start the stack again"
                    )
                stable = now - child.started_at >= self._restart_stable_s
                state.delay_s = (
                    RESTART_FIRST_S
                    if stable or state.count == 0
                    else min(RESTART_MAX_S, state.delay_s * 2)
                )
                state.count += 1
                state.due = now + state.delay_s
                self._say(
                    f"{child.name} exited with code {code}; restarting in {state.delay_s:g} s "
                    f"(restart {state.count})"
                )
            elif now >= state.due:
                state.due = None
                child.pump.join(timeout=2)
                self._children.remove(child)
                again = self._spawn(child.name, child.argv)
                again.started_at = now
                self._say(f"{child.name} started again (pid {again.process.pid})")

    @staticmethod
    def _end_group(child: Child) -> None:
        """Kill what the exited part left in its process group (a worker's RQ scheduler): the
        part is dead, its work is repaired as any dead part's, and nothing outlives the stack."""
        # Right after poll() reaped the leader: the group id cannot have been reused yet.
        with contextlib.suppress(ProcessLookupError):  # nothing was left
            os.killpg(child.process.pid, signal.SIGKILL)

    def restart_count(self, name: str) -> int:
        """How many times :meth:`supervise` has restarted (or is about to restart) ``name``."""
        return self._restarts[name].count if name in self._restarts else 0

    def _say(self, message: str) -> None:
        """A line of the supervisor's own, among the parts' lines."""
        with self._lock:
            self._output.write(f"{'taskcast':<9}| {message}\n")
            self._output.flush()

    def check_children(self) -> None:
        """Raise :class:`StackError` if any child has exited."""
        for child in self._children:
            code = child.process.poll()
            if code is not None:
                raise StackError(f"{child.name} exited with code {code}; see its log lines above")

    def _run_once(self, name: str, argv: list[str], timeout_s: float) -> None:
        child = self._spawn(name, argv)
        try:
            code = child.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise StackError(f"{name} did not finish in {timeout_s:.0f} s") from None
        child.pump.join()
        self._children.remove(child)
        if code != 0:
            raise StackError(f"{name} failed with code {code}; see its log lines above")

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Child:
        process = subprocess.Popen(
            argv,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches us; we stop children in order
        )
        assert process.stdout is not None
        pump = threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True)
        pump.start()
        child = Child(name, argv, process, pump)
        self._children.append(child)
        return child

    def _pump(self, name: str, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                with self._lock:
                    self._output.write(f"{name:<9}| {line}")
                    self._output.flush()

    def stop(self, grace_s: float = 10) -> None:
        """Stop every child, newest first: SIGTERM, then SIGKILL after ``grace_s``.

        No part is restarted from then on, whatever :meth:`supervise` is asked.
        """
        self._stopping = True
        for child in reversed(self._children):
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in reversed(self._children):
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name, grace_s)
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
            child.pump.join(timeout=2)
        self._children.clear()
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def metrics_lines(stack: Stack) -> str:
    """Where each part serves its Prometheus metrics, for ``taskcast up`` to print."""
    ports = stack.metrics_ports
    if not ports:
        return ""
    each = ", ".join(f"{part} {port}" for part, port in ports.items())
    return f"  metrics at http://{stack.host}:<port>/metrics: {each}\n"


def up(
    env: Mapping[str, str], *, host: str, ports: Ports, workers: int, tasks: str | None = None
) -> int:
    """Run the stack until Ctrl-C or SIGTERM, restarting a part that dies (see the module)."""
    stop = threading.Event()
    # Both explicitly: a shell that starts us in the background sets SIGINT to "ignore".
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stack = Stack(env, host=host, ports=ports, workers=workers, tasks=tasks)
    except Exception as exc:
        log.error("%s", exc)
        return 2
    try:
        with stack:
            first = next(iter(sorted(stack.catalogue)))
            console = "" if stack.console_url is None else f"  console {stack.console_url}\n"
            print(
                f"\ntaskcast is up: API {stack.edge_url}  realtime {stack.realtime_url}\n"
                f"{console}"
                f"{metrics_lines(stack)}"
                f"  task types: {', '.join(sorted(stack.catalogue))}\n"
                f"  try: taskcast --url {stack.edge_url} --api-key {stack.api_key} submit {first} --watch\n"
                "  A part that dies is restarted. Ctrl-C stops everything.\n",
                flush=True,
            )
            while not stop.wait(0.5):
                stack.supervise()
            print("\nstopping...", flush=True)
    except StackError as exc:
        log.error("%s", exc)
        return 1
    return 0
