"""``python -m taskcast.local.edge ARGS``: ``chalice local ARGS``, fit for load and for any client.

Two changes to the very same ``chalice local`` command:

- It listens with a backlog of :data:`BACKLOG` rather than Python's default of 5: under 50
  concurrent clients the kernel dropped the rest, and they saw reset connections.
- Its request handler, :class:`EdgeRequestHandler`, answers every request in the API's words.
  ``chalice local`` (and ``http.server`` under it) answer some requests themselves, before the
  app: an unknown route (``403 Missing Authentication Token``, as API Gateway does), a method
  ``http.server`` has no ``do_`` method for (an HTML ``501``), a bad request line, an over-long
  line or too many headers (HTML ``400``/``414``/``431``/``505``), and a ``Content-Length`` that
  is not a number (an exception: the connection dropped with no answer). Here each of those is
  the API's JSON error with a ``4xx``, the URL and headers have the limits API Gateway has, and
  the body is read only when its length is a number within :data:`~taskcore.limits.MAX_BODY_BYTES`.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from chalice import local
from chalice.cli import main

from taskcore import limits
from taskcore.errors import ValidationError

if TYPE_CHECKING:
    from chalicelib.errors import HttpError

log = logging.getLogger("taskcast.local.edge")

BACKLOG = 1024
READ_TIMEOUT_S = 30.0
"""How long a connection may keep the server waiting for the rest of a request (or the next).

Like API Gateway's 29 s; without it, a client that stops sending holds a thread for ever."""
LINGER_S = 1.0
LINGER_BYTES = 1024 * 1024
"""After refusing a request whose body it did not read, the server reads (and drops) this much
for this long before closing: closing with unread data sends a reset, which can destroy the
answer before the client reads it."""

_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP method is a token (RFC 9110, section 5.6.2)."""


class _Refused(Exception):
    """A request answered with an API error by the handler itself, before the app."""

    def __init__(self, error: HttpError) -> None:
        super().__init__(error.message)
        self.error = error


class EdgeRequestHandler(local.ChaliceRequestHandler):
    """``chalice local``'s handler, answering what it used to answer itself as the API does."""

    timeout = READ_TIMEOUT_S  # socketserver sets it on each connection's socket
    # http.server writes an answer's headers and its body in two sends. Without TCP_NODELAY the
    # body waits for the client to acknowledge the headers, which it delays (by up to 40 ms on
    # Linux): every answer on a kept-alive connection took 40 ms more than its work.
    disable_nagle_algorithm = True

    def parse_request(self) -> bool:
        """``http.server``'s parse, refusing what it would let through and routing every method.

        A valid method without a ``do_`` method goes to the app like the others, which answers
        ``405`` with ``Allow`` (or ``404`` for no route) instead of ``http.server``'s ``501``.
        """
        if not self.raw_requestline.strip():
            self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"
            self.send_error(HTTPStatus.BAD_REQUEST, "the request line is empty")
            return False
        if not super().parse_request():
            return False  # answered by send_error
        if self.request_version == "HTTP/0.9":
            # Its answer would be a bare body, with no status line; nobody speaks it any more.
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 is not supported")
            return False
        if not _METHOD.fullmatch(self.command):
            self.send_error(HTTPStatus.BAD_REQUEST, "the method is not an HTTP token")
            return False
        if not hasattr(self, f"do_{self.command}"):
            setattr(self, f"do_{self.command}", self._generic_handle)
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """``http.server``'s own refusals, as the API's errors: a bad request line (``400``, and
        ``505`` for a version it does not speak), an over-long line (``414``), too many or too
        long headers (``431``)."""
        from chalicelib.errors import BadRequest, HeadersTooLarge, UriTooLong

        text = message or HTTPStatus(code).phrase
        if code == HTTPStatus.REQUEST_URI_TOO_LONG:
            error: HttpError = UriTooLong(f"the request line is over 65536 bytes: {text}")
        elif code == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
            error = HeadersTooLarge(f"the headers are too large: {text}")
        else:
            error = BadRequest(f"the request is not HTTP/1.1 this server reads: {text}")
        self._refuse(error)

    def _generic_handle(self) -> None:
        """Every method: check the limits, then chalice's own handling (route, app, answer)."""
        from chalicelib.errors import INTERNAL_MESSAGE, Internal, RequestTimeout

        self._answered = False
        try:
            self._check_limits()
            super()._generic_handle()
        except _Refused as refused:
            self._refuse(refused.error)
        except TimeoutError:
            # A read timed out (a body shorter than its Content-Length, say): say so, and close.
            if not self._answered:
                self._refuse(RequestTimeout(f"the request was not complete in {READ_TIMEOUT_S} s"))
            self.close_connection = True
        except OSError:
            self.close_connection = True  # the client has gone: there is no one to answer
        except Exception:
            log.exception("unexpected error answering %s %.200s", self.command, self.path)
            if not self._answered:
                self._refuse(Internal(INTERNAL_MESSAGE))
            self.close_connection = True

    # chalice's do_GET and the others are its _generic_handle itself, not a lookup of it.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _check_limits(self) -> None:
        """Refuse, before reading the body, a request beyond :mod:`taskcore.limits`."""
        from chalicelib.errors import (
            BadRequest,
            HeadersTooLarge,
            LengthRequired,
            TooLarge,
            UriTooLong,
        )

        url_bytes = len(self.path)  # the request line is decoded as Latin-1: a byte a character
        if url_bytes > limits.MAX_URL_BYTES:
            raise _Refused(
                UriTooLong(f"the URL is {url_bytes} bytes; the limit is {limits.MAX_URL_BYTES}")
            )
        header_bytes = sum(len(name) + len(value) + 4 for name, value in self.headers.items())
        if header_bytes > limits.MAX_HEADER_BYTES:
            raise _Refused(
                HeadersTooLarge(
                    f"the headers are {header_bytes} bytes; the limit is {limits.MAX_HEADER_BYTES}"
                )
            )
        if "transfer-encoding" in self.headers:
            raise _Refused(LengthRequired("send the body with a Content-Length, not chunked"))
        lengths = {value.strip() for value in self.headers.get_all("content-length", [])}
        if len(lengths) > 1:
            raise _Refused(BadRequest("Content-Length is given more than once, differently"))
        self._content_length = 0
        if lengths:
            try:
                self._content_length = limits.whole_number(
                    lengths.pop(), "Content-Length", 0, 10**limits.MAX_WHOLE_NUMBER_DIGITS - 1
                )
            except ValidationError:
                raise _Refused(
                    BadRequest(
                        "Content-Length must be the body's size in bytes, at most "
                        f"{limits.MAX_WHOLE_NUMBER_DIGITS} ASCII digits",
                        field="Content-Length",
                    )
                ) from None
        if self._content_length > limits.MAX_BODY_BYTES:
            raise _Refused(
                TooLarge(
                    f"the body is {self._content_length} bytes; "
                    f"the limit is {limits.MAX_BODY_BYTES}"
                )
            )

    def _parse_payload(self) -> tuple[dict[str, Any], bytes | None]:
        """The headers and the body, of the length :meth:`_check_limits` read and checked."""
        from chalicelib.errors import BadRequest

        body = self.rfile.read(self._content_length) if self._content_length else None
        if body is not None and len(body) < self._content_length:
            raise _Refused(
                BadRequest(f"the body ended after {len(body)} of its {self._content_length} bytes")
            )
        return dict(self.headers), body

    def _send_error_response(self, error: local.LocalGatewayException) -> None:
        """``chalice local``'s gateway errors: without authorizers, only an unknown route."""
        from chalicelib.errors import INTERNAL_MESSAGE, Internal, NotFound, Unauthorized

        if error.CODE == HTTPStatus.FORBIDDEN:  # "Missing Authentication Token": no route
            self._refuse(NotFound(f"no route {self.command} {self.path.split('?')[0]:.200}"))
        elif error.CODE == HTTPStatus.UNAUTHORIZED:
            self._refuse(Unauthorized("not authorized"))
        else:
            log.error("chalice local answered %s: %r", error.CODE, error.body)
            self._refuse(Internal(INTERNAL_MESSAGE))

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def _send_http_response_with_body(
        self, code: int, headers: dict[str, Any], body: str | bytes
    ) -> None:
        """chalice's, with no body after the headers of an answer to ``HEAD``."""
        if self.command != "HEAD":
            super()._send_http_response_with_body(code, headers, body)
            return
        self.send_response(code)
        encoded = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)

    def _refuse(self, error: HttpError) -> None:
        """Answer ``error`` in the API's shape, then close the connection gracefully.

        The request's body, if any, may be unread, and could not be told from a next request.
        """
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"  # else http.server writes no status line
        self.close_connection = True
        answer = error.response().to_dict()
        headers = {
            **answer["headers"],
            **answer["multiValueHeaders"],
            "Content-Type": "application/json",
            "Connection": "close",
        }
        try:
            self._send_http_response(error.status, headers, answer["body"])
            self.wfile.flush()
            self._linger()
        except OSError:
            pass  # the client has gone already

    def _linger(self) -> None:
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(LINGER_S)
        dropped = 0
        try:
            while dropped < LINGER_BYTES:
                chunk = self.connection.recv(65536)
                if not chunk:
                    return
                dropped += len(chunk)
        except OSError:
            return


class EdgeServer(local.ThreadedHTTPServer):
    request_queue_size = BACKLOG


def _local_server(app_obj: Any, config: Any, host: str, port: int) -> local.LocalDevServer:
    """``chalice.local.create_local_server``, with this module's handler and server."""
    local.CustomLocalChalice.__bases__ = (local.LocalChalice, app_obj.__class__)
    app_obj.__class__ = local.CustomLocalChalice
    return local.LocalDevServer(
        app_obj, config, host, port, handler_cls=EdgeRequestHandler, server_cls=EdgeServer
    )


def run() -> int:
    local.create_local_server = _local_server
    sys.argv[0] = "chalice"
    return int(main() or 0)


if __name__ == "__main__":
    sys.exit(run())
