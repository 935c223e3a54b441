"""Servers for the image task's tests, all on loopback: an origin serving real images and
hostile answers, and canaries that count every connection the fetch guard must never let out.

A pytest plugin of the root conftest: its fixtures ``server`` and ``birds`` are everyone's.
"""

from __future__ import annotations

import gzip
import io
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image


def png(width: int = 320, height: int = 200) -> bytes:
    """A real PNG: a colour gradient, so every filter changes something."""
    image = Image.new("RGB", (width, height))
    image.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


def pixel_bomb(side: int = 10_000) -> bytes:
    """A PNG of a few KiB that declares ``side`` x ``side`` grey pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


GZIP_BOMB = gzip.compress(b"\0" * (30 * 1024 * 1024), 9)
"""30 MiB of zeros in about 30 KiB: over the 20 MB limit only once decoded."""


class Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), OriginHandler)
        self.canary_url = ""
        self.requests: list[str] = []
        self.gate = threading.Event()
        """``/gated-cat.png`` answers once this is set (at most 30 s later): a test that must
        watch a task before it runs on holds it at its download."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the timeout tests do) is not the server's error.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class OriginHandler(BaseHTTPRequestHandler):
    server: Origin
    PNG = png()
    JPEG = jpeg()
    BOMB = pixel_bomb()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        path = self.path.split("?")[0]
        if path == "/cat.png":
            self._send(200, self.PNG, "image/png")
        elif path == "/gated-cat.png":
            self.server.gate.wait(30)
            self._send(200, self.PNG, "image/png")
        elif path == "/photo.jpg":
            self._send(200, self.JPEG, "image/jpeg")
        elif path == "/page.html":
            self._send(200, b"<html><body>not an image</body></html>", "text/html")
        elif path == "/pixels.png":
            self._send(200, self.BOMB, "image/png")
        elif path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(25 * 1024 * 1024))
            self.end_headers()
        elif path == "/gzip-bomb":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(GZIP_BOMB)))
            self.end_headers()
            self.wfile.write(GZIP_BOMB)
        elif path == "/missing":
            self._send(404, b"no", "text/plain")
        elif path == "/broken":
            self._send(503, b"later", "text/plain")
        elif path == "/slow":
            time.sleep(3)
            self._send(200, self.PNG, "image/png")
        elif path == "/to-canary":
            self._redirect(self.server.canary_url)
        elif path.startswith("/hop/"):
            hops = int(path.rsplit("/", 1)[1])
            self._redirect(f"{self.server.base}/hop/{hops + 1}" if hops < 20 else "/cat.png")
        elif path == "/via-redirect":
            self._redirect("/cat.png")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/bad-gzip":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "20")
            self.end_headers()
            self.wfile.write(b"this is not gzip at all"[:20])
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def origin() -> Iterator[Origin]:
    server = Origin()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Canary:
    """Listens where the guard must never connect, and counts the connections it gets."""

    family: socket.AddressFamily
    host: str
    connections: int = 0
    _socket: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self._socket = socket.socket(self.family, socket.SOCK_STREAM)
        self._socket.bind((self.host, 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._socket.close()


@contextmanager
def canaries() -> Iterator[list[Canary]]:
    """Canaries on 127.0.0.1 (another port), 127.0.0.2 and [::1]."""
    birds = [
        Canary(socket.AF_INET, "127.0.0.1"),
        Canary(socket.AF_INET, "127.0.0.2"),
        Canary(socket.AF_INET6, "::1"),
    ]
    try:
        yield birds
    finally:
        for bird in birds:
            bird.close()


@pytest.fixture
def server() -> Iterator[Origin]:
    """The origin, on 127.0.0.1 and a port of its own."""
    with origin() as running:
        yield running


@pytest.fixture
def birds(server: Origin) -> Iterator[list[Canary]]:
    """Canaries, with the origin's ``/to-canary`` redirecting to the first; none may be reached."""
    with canaries() as flock:
        server.canary_url = f"http://127.0.0.1:{flock[0].port}/stolen"
        yield flock
        assert [bird.connections for bird in flock] == [0, 0, 0], "the guard let a fetch out"
