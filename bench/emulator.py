"""The bench's AWS emulator: the moto server, counting the DynamoDB calls it answers.

``python -m bench.emulator -p PORT`` serves exactly what ``python -m moto.server`` serves (the
stack's own emulator), through a WSGI middleware that counts each DynamoDB request by operation
(its ``X-Amz-Target`` header) and by caller: the access key id it was signed with, which moto
accepts whatever it is, so the bench gives each part of the stack its own. ``GET
/_bench/dynamodb-calls`` answers the counts so far; the bench reads them before and after a run
and subtracts. No product code is touched: the parts only have ``AWS_ENDPOINT_URL`` pointed
here, as they would at LocalStack.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

COUNTS_PATH = "/_bench/dynamodb-calls"
TARGET_PREFIX = "DynamoDB_"
"""``X-Amz-Target`` of DynamoDB's API: ``DynamoDB_20120810.PutItem`` and the like."""
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class CountingApp:
    """A WSGI middleware that counts DynamoDB calls by operation and access key id."""

    def __init__(self, app: WSGIApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            body = json.dumps(self.report()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(TARGET_PREFIX):
            key = (target.partition(".")[2], access_key_id(environ.get("HTTP_AUTHORIZATION", "")))
            with self._lock:
                self._counts[key] += 1
        return self._app(environ, start_response)

    def report(self) -> dict[str, Any]:
        """The counts so far: ``{"calls": [{"operation", "caller", "count"}, ...]}``."""
        with self._lock:
            counts = list(self._counts.items())
        return {
            "calls": [
                {"operation": operation, "caller": caller, "count": n}
                for (operation, caller), n in counts
            ]
        }


def access_key_id(authorization: str) -> str:
    """The access key id of a SigV4 ``Authorization`` header (``""`` if it has none):
    ``AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request, ...``."""
    _, found, rest = authorization.partition("Credential=")
    return rest.partition("/")[0] if found else ""


@dataclass(frozen=True)
class Calls:
    """DynamoDB calls counted by the emulator: ``(operation, caller) -> count``."""

    counts: Counter[tuple[str, str]]

    def __sub__(self, earlier: Calls) -> Calls:
        return Calls(self.counts - earlier.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_operation(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (operation, _), n in self.counts.items():
            totals[operation] += n
        return totals

    def by_caller(self) -> dict[str, Counter[str]]:
        callers: dict[str, Counter[str]] = {}
        for (operation, caller), n in self.counts.items():
            callers.setdefault(caller, Counter())[operation] += n
        return callers

    def without(self, caller: str) -> Calls:
        return Calls(Counter({key: n for key, n in self.counts.items() if key[1] != caller}))


def read_calls(url: str) -> Calls:
    """The counts of the emulator at ``url`` so far."""
    response = httpx.get(url.rstrip("/") + COUNTS_PATH, timeout=10)
    response.raise_for_status()
    counts: Counter[tuple[str, str]] = Counter()
    for row in response.json()["calls"]:
        counts[row["operation"], row["caller"]] += row["count"]
    return Calls(counts)


class Emulator:
    """``python -m bench.emulator`` as a child process on a free port, stopped on exit."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = int(s.getsockname()[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the emulator is not running"
        return self._process.pid

    def calls(self) -> Calls:
        """The DynamoDB calls answered so far, by operation and caller."""
        return read_calls(self.url)

    def __enter__(self) -> Emulator:
        argv = [sys.executable, "-m", "bench.emulator", "-H", self.host, "-p", str(self.port)]
        # Its request log would be a line a call: nobody reads it.
        self._process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"the emulator did not start on port {self.port}") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from taskcast.local.emulator import server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    # As moto.server does: moto builds some URLs from it, and SIGTERM ends the server cleanly.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    # The stack's own emulator server (kept-alive connections, one request at a time), serving
    # moto's app through the counter: what is measured is what `taskcast up` runs.
    server(
        args.host, args.port, CountingApp(DomainDispatcherApplication(create_backend_app))
    ).serve_forever()


if __name__ == "__main__":
    main()
