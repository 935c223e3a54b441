"""``python -m console --api URL``: serve the console's files, and ``config.json`` naming the API.

A static file server (the standard library's) and one generated file: ``/config.json`` tells the
page where the API is, so the same files work against any deployment.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from taskcore import logs
from taskcore.config import CONSOLE_PORT, LOCALHOST, parse_url
from taskcore.errors import ConfigError

from . import STATIC_DIR

log = logging.getLogger("console")


class ConsoleHandler(SimpleHTTPRequestHandler):
    config_body: bytes = b"{}"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/config.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config_body)))
            self.end_headers()
            self.wfile.write(self.config_body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        # The page changes with each release and is small: never serve a stale copy.
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def serve(host: str, port: int, api_url: str) -> ThreadingHTTPServer:
    """A server of the console for the API at ``api_url``; call ``serve_forever`` on it."""
    handler = type(
        "Handler",
        (ConsoleHandler,),
        {"config_body": json.dumps({"api": api_url.rstrip("/")}).encode()},
    )
    return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(STATIC_DIR)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve taskcast's console")
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=CONSOLE_PORT)
    parser.add_argument("--api", required=True, help="the edge's URL, e.g. http://127.0.0.1:8000")
    args = parser.parse_args(argv)
    logs.setup()
    try:
        parse_url(args.api, "--api", {"http", "https"})
    except ConfigError as exc:
        parser.error(str(exc))
    server = serve(args.host, args.port, args.api)
    # serve_forever blocks; shutdown() must come from another thread.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("console on http://%s:%d/ for the API at %s", args.host, args.port, args.api)
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
