"""``python -m taskcast.local.emulator -H HOST -p PORT``: the moto server, fit for load.

The very app ``python -m moto.server`` serves (moto's ``DomainDispatcherApplication``: every
service, the same state and answers), on a server that keeps connections open. ``moto.server``
runs werkzeug's development server, which closes the connection after every answer ("keep-alive
connections aren't handled well by http.server"), so each DynamoDB call of the edge, the relay
and the workers opened a TCP connection, and a thread, of its own; it writes a log line per call
to the stack's output; and it sends each answer's headers and body in two TCP segments without
``TCP_NODELAY``. Here:

- :class:`KeepAliveHandler` reads each request's whole body before the app sees it (so nothing
  of it is left to be mistaken for the next request), and writes status, headers and the whole
  body in one ``send`` with ``TCP_NODELAY``, with a ``Content-Length``: the connection stays open
  for the client's next call (boto3 keeps a pool of them).
- moto's dispatcher looks up which backend answers a request by listing moto's installed
  package folder, on every request and under one lock; the listing cannot change while the
  process runs, so it is listed once (:func:`_list_moto_modules_once`).
- moto's app handles one request at a time (:data:`_ONE_AT_A_TIME`); the threads only read
  and write the connections. moto has no locks of its own: a conditional write checks, then
  writes, and two threads could both pass the check, where DynamoDB applies the write
  atomically. And the app is all Python under the GIL, so running it on many threads at once
  gained nothing: 50 of them fought for the GIL (twice the context switches per request, and
  more CPU, than one at a time).
- A request is logged only when it fails with a ``5xx``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from moto import backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer

from taskcore import logs

log = logging.getLogger("taskcast.local.emulator")

BACKLOG = 1024
"""Connections the kernel holds for the server before it accepts them (Python's default is 5)."""
IDLE_TIMEOUT_S = 120.0
"""A connection idle for this long is closed, and its thread ends (boto3 opens another)."""
MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest request body read whole (the image task's S3 uploads are far smaller)."""
READ_BYTES = 64 * 1024
"""A chunked body is read this much at a time (a read of N bytes sets N bytes aside first)."""


_ONE_AT_A_TIME = threading.Lock()
"""Held while moto's app handles a request (see the module's docstring)."""


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler (its environ keeps headers with underscores, for S3), answering
    on a connection that stays open, in one write."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S

    def run_wsgi(self) -> None:
        """Call the app with the request's whole body read; send its whole answer at once."""
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        try:
            body = _read_body(environ)
        except (ValueError, OSError) as exc:  # OSError: werkzeug's, for a bad chunk header
            self.close_connection = True  # what is left of the body cannot be told from a request
            self._answer(
                HTTPStatus.BAD_REQUEST, [("Content-Type", "text/plain")], str(exc).encode()
            )
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        started: list[tuple[str, list[tuple[str, str]]]] = []
        written = io.BytesIO()

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            started[:] = [(status, headers)]
            return written.write  # WSGI's legacy write(), before the returned body

        try:
            with _ONE_AT_A_TIME:
                chunks = self.server.app(environ, start_response)
                try:
                    payload = written.getvalue() + b"".join(chunks)
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:
                        close()
        except Exception:
            log.exception("moto failed on %s %.200s", self.command, self.path)
            self.close_connection = True
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, [("Content-Type", "text/plain")], b"")
            return
        status, headers = started[0]
        code = int(status.split(" ", 1)[0])
        if code >= 500:
            log.warning("%s %.200s answered %s", self.command, self.path, status)
        self._answer(code, headers, payload, reason=status.partition(" ")[2])

    def _answer(
        self, code: int, headers: list[tuple[str, str]], payload: bytes, reason: str = ""
    ) -> None:
        no_body = self.command == "HEAD" or code < 200 or code in (204, 304)
        lines = [f"{self.protocol_version} {code} {reason or HTTPStatus(code).phrase}"]
        length = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                length = value
            elif lowered in ("connection", "transfer-encoding", "keep-alive"):
                continue  # this server decides how the connection goes on
            else:
                lines.append(f"{name}: {value}")
        if self.close_connection:
            lines.append("Connection: close")
        # A HEAD's answer keeps the length the app gave (of the body a GET would have).
        lines.append(f"Content-Length: {length if no_body and length else len(payload)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if no_body else head + payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing per request: the failures are logged by :meth:`run_wsgi`."""


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request's whole body: of its ``Content-Length``, or every chunk if it is chunked."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's DechunkedInput
        parts, size = [], 0
        while part := stream.read(READ_BYTES):
            size += len(part)
            if size > MAX_BODY_BYTES:
                raise ValueError(f"the body is over {MAX_BODY_BYTES} bytes")
            parts.append(part)
        return b"".join(parts)
    text = environ.get("CONTENT_LENGTH") or "0"
    if not text.isdigit():
        raise ValueError(f"Content-Length is not a number: {text[:30]!r}")
    length = int(text)
    if length > MAX_BODY_BYTES:
        raise ValueError(f"the body is over {MAX_BODY_BYTES} bytes")
    body = bytes(stream.read(length)) if length else b""
    if len(body) < length:
        raise ValueError("the body ended before its Content-Length")
    return body


def _list_moto_modules_once() -> None:
    """Make moto's listing of its own backends (read from disk per request) a constant.

    Its one caller asks whether a name is among them: a set answers that at once.
    """
    listed = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: listed


class EmulatorServer(ThreadedWSGIServer):
    request_queue_size = BACKLOG


def server(host: str, port: int, app: Any | None = None) -> BaseWSGIServer:
    """The emulator's server on ``host:port``, serving ``app`` (moto's whole app by default).

    ``app`` may be moto's app wrapped in a WSGI middleware (a benchmark counting calls, say).
    """
    _list_moto_modules_once()
    if app is None:
        app = DomainDispatcherApplication(create_backend_app)
    return EmulatorServer(host, port, app, handler=KeepAliveHandler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    logs.setup()
    # As moto.server does: moto builds some URLs (S3 presigned, say) from it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    made = server(args.host, args.port)
    print(f"moto (keep-alive) serving on http://{args.host}:{args.port}", flush=True)
    try:
        made.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        made.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
