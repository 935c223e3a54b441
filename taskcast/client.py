"""The Python SDK: submit, read, list, and watch tasks live.

::

    client = Client("http://127.0.0.1:8000", api_key="dev-key")
    submission = client.submit("demo.sleep", {"seconds": 3})
    async for update in client.watch(submission.task_id, submission.watch):
        print(update.status, update.progress)

``watch`` reconnects with backoff after a dropped connection and resumes from its cursor, so a
caller sees every event once, in order, until the task ends.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidHandshake

from taskcore import protocol
from taskcore.event import Cursor

log = logging.getLogger(__name__)

TOKEN_EXPIRED_CLOSE = protocol.CLOSE_CODES[protocol.ErrorCode.TOKEN_EXPIRED]


class TaskcastError(Exception):
    """Base of every error the SDK raises: catch this for "the call did not work"."""


class ApiError(TaskcastError):
    """The API answered with an error; ``status``, ``code`` and ``message`` say why.

    Raised as :class:`ClientError` (4xx: fix the request) or :class:`ServerError` (5xx: the
    service failed; the same request may work later). An answer that is not the API's JSON
    error (a proxy's HTML page, say) has ``code`` ``not_json``.
    """

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class ClientError(ApiError):
    """A 4xx answer: the request is wrong (bad input, key, id or permission); retrying won't help."""


class ServerError(ApiError):
    """A 5xx answer: the service failed or is unavailable; the request may work later."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(status, code, message, field)
        self.retry_after_s = retry_after_s
        """The ``Retry-After`` the service sent (``503``), in seconds, if any."""


class ProtocolError(TaskcastError):
    """A success status with an answer that is not the API's JSON: ``url`` is not the API."""

    def __init__(self, url: str, status: int, content_type: str) -> None:
        super().__init__(f"{url} answered {status} with {content_type or 'no content type'}")
        self.url = url
        self.status = status
        self.content_type = content_type


class WatchError(TaskcastError):
    """The realtime service refused the watch (bad token, no such task, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransportError(TaskcastError):
    """No answer came: the request did not reach the API, or its answer did not arrive.

    ``reason`` is short and readable (``connection refused``); the httpx exception that caused
    it is ``__cause__``.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class ConnectError(TransportError):
    """The API could not be connected to: refused, unknown host, unreachable network."""


class RequestTimeout(TransportError):
    """The API did not answer in time (connecting, sending or reading)."""


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words: the OS's words if an OSError is behind it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip() or type(exc).__name__
    # httpx wraps the OS's error as "[Errno 111] Connection refused": keep the words.
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text).rstrip(".").lower()


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters: error messages end up in terminals."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class Watch:
    """Where and how to watch a task: the websocket URL and a watch token."""

    url: str
    token: str
    expires_at: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Watch:
        return cls(str(data["url"]), str(data["token"]), int(data["expires_at"]))


@dataclass(frozen=True)
class Submission:
    task: dict[str, Any]
    watch: Watch

    @property
    def task_id(self) -> str:
        return str(self.task["task_id"])


@dataclass(frozen=True)
class Page:
    tasks: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class Update:
    """One message of a watch: a ``snapshot``, an ``event`` or the ``end``.

    ``status`` is the task's as of this message; ``progress`` and ``attempt`` come with snapshots
    and events (``end`` repeats the final status with its ``result`` or ``error``); ``data`` is
    the message as the server sent it.
    """

    op: str
    task_id: str
    status: str
    progress: dict[str, Any]
    attempt: int
    data: dict[str, Any] = field(repr=False)

    @property
    def seq(self) -> int | None:
        return int(self.data["event"]["seq"]) if self.op == "event" else None

    @property
    def kind(self) -> str | None:
        """An event's kind: ``status``, ``progress``, or ``custom`` (the task's own events)."""
        return str(self.data["event"]["kind"]) if self.op == "event" else None

    @property
    def name(self) -> str | None:
        """A custom event's name, as the task emitted it (``ctx.emit(name, data)``)."""
        return self.data["event"].get("name") if self.kind == "custom" else None

    @property
    def event_data(self) -> Any:
        """A custom event's data."""
        return self.data["event"].get("data") if self.kind == "custom" else None

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Update:
        source = {"snapshot": message.get("task"), "event": message.get("event")}.get(
            message["op"]
        ) or message
        return cls(
            op=message["op"],
            task_id=str(source["task_id"]),
            status=str(source["status"]),
            progress=dict(source.get("progress") or {}),
            attempt=int(source.get("attempt", 0)),
            data=message,
        )


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


class Client:
    """The API's client; every method raises a :class:`TaskcastError` when the call fails."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"X-Api-Key": api_key}, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call of the API: its JSON, or the :class:`TaskcastError` that says what failed."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RequestTimeout(self._url(path), "no answer in time") from exc
        except httpx.ConnectError as exc:
            raise ConnectError(self._url(path), _reason(exc)) from exc
        except httpx.TransportError as exc:
            raise TransportError(self._url(path), _reason(exc)) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code, message = str(error.get("code")), _one_line(str(error.get("message")))
                field = error.get("field")
            else:
                content_type = response.headers.get("content-type", "").split(";")[0]
                code = "not_json"
                message = (
                    f"{response.reason_phrase or 'error'}, "
                    f"answered with {content_type or 'no content type'}, not the API's JSON"
                )
                field = None
            if response.status_code >= 500 or response.status_code < 400:
                raise ServerError(
                    response.status_code, code, message, field, _retry_after(response)
                )
            raise ClientError(response.status_code, code, message, field)
        if not isinstance(body, dict):
            raise ProtocolError(
                self._url(path),
                response.status_code,
                response.headers.get("content-type", "").split(";")[0],
            )
        return body

    def _url(self, path: str) -> str:
        return str(self._http.base_url).rstrip("/") + path

    def submit(
        self,
        task_type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: str | None = None,
        delay_seconds: int | None = None,
        max_attempts: int | None = None,
        timeout_s: int | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Submit a task; returns it (``pending``) with a watch token.

        ``priority``, ``delay_seconds``, ``max_attempts`` and ``timeout_s`` change the type's
        defaults within its limits; the returned task states the values in force. With
        ``idempotency_key``, sending the same submission again (after a timeout, say) returns
        the task the first one made instead of making another.
        """
        body: dict[str, Any] = {"type": task_type, "payload": payload or {}}
        options = {
            "priority": priority,
            "delay_seconds": delay_seconds,
            "max_attempts": max_attempts,
            "timeout_s": timeout_s,
        }
        body |= {name: value for name, value in options.items() if value is not None}
        headers = {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}
        data = self._request("POST", "/tasks", json=body, headers=headers)
        return Submission(data["task"], Watch.from_json(data["watch"]))

    def get(self, task_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/tasks/{task_id}")["task"])

    def task_types(self) -> list[dict[str, Any]]:
        """The task types the API accepts: name, payload JSON Schema, defaults and limits."""
        return list(self._request("GET", "/task-types")["task_types"])

    def list(
        self,
        *,
        status: str | None = None,
        task_type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """The caller's tasks, newest first."""
        params = {"status": status, "type": task_type, "limit": limit, "cursor": cursor}
        data = self._request(
            "GET", "/tasks", params={k: v for k, v in params.items() if v is not None}
        )
        return Page(list(data["tasks"]), data.get("next_cursor"))

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Ask for a task to be cancelled; returns it as it is now.

        Idempotent. A waiting task becomes ``cancelled`` at once; a running one is asked to stop
        (and stopped by force after a grace period); a task that has ended stays as it ended.
        Watchers see the ``cancelled`` status when it happens.
        """
        return dict(self._request("POST", f"/tasks/{task_id}/cancel")["task"])

    def resubmit(self, task_id: str) -> Submission:
        """Submit a failed or cancelled task again as a new one, with the options it ran with.

        Idempotent: resubmitting the same task twice returns the one new task both times.
        """
        data = self._request("POST", f"/tasks/{task_id}/resubmit")
        return Submission(data["task"], Watch.from_json(data["watch"]))

    def overview(self) -> dict[str, Any]:
        """Operators: queue depths, workers and tasks in flight, as last reported."""
        return dict(self._request("GET", "/ops/overview")["overview"])

    def dead_letters(self) -> builtins.list[dict[str, Any]]:
        """Operators: the dead messages, oldest first (each taken from the queue and put back)."""
        return builtins.list(self._request("GET", "/ops/dead-letters")["dead_letters"])

    def replay_dead_letters(self, message_ids: builtins.list[str] | None = None) -> dict[str, Any]:
        """Operators: replay these dead messages (all if ``None``).

        A message whose task ended failed or cancelled is resubmitted as a new task instead:
        the answer's ``resubmitted`` lists those with their new task ids.
        """
        body: dict[str, Any] = {"all": True} if message_ids is None else {"ids": message_ids}
        return self._request("POST", "/ops/dead-letters/replay", json=body)

    def purge_dead_letters(self) -> int:
        """Operators: drop every dead message; returns how many there were."""
        return int(self._request("POST", "/ops/dead-letters/purge")["purged"])

    def watch_token(self, task_id: str) -> Watch:
        """A fresh watch token for one of the caller's tasks."""
        return Watch.from_json(self._request("POST", f"/tasks/{task_id}/watch")["watch"])

    async def watch(
        self, task_id: str, watch: Watch | None = None, *, max_backoff_s: float = 10.0
    ) -> AsyncIterator[Update]:
        """Every update of ``task_id``, in order, until its ``end``; survives disconnects."""
        if watch is None:
            watch = await asyncio.to_thread(self.watch_token, task_id)
        cursor: Cursor | None = None
        failures = 0
        expired = False
        while True:
            try:
                async with websockets.connect(watch.url, open_timeout=10) as ws:
                    await ws.send(protocol.Subscribe(task_id, watch.token, cursor).encode())
                    async for raw in ws:
                        message = protocol.parse_server(raw)
                        if message.op == "error":
                            code = str(message.data["code"])
                            if code in protocol.RESUMABLE_ERRORS:
                                expired = code == protocol.ErrorCode.TOKEN_EXPIRED
                                log.info("watch of %s: %s; resuming", task_id, code)
                                break
                            raise WatchError(code, str(message.data["message"]))
                        failures = 0
                        cursor = message.cursor or cursor
                        yield Update.from_message(message.data)
                        if message.op == "end":
                            return
            except protocol.ProtocolError as exc:
                raise WatchError(exc.code, str(exc)) from None
            except ConnectionClosedError as exc:
                if exc.rcvd is not None and protocol.is_refusal(exc.rcvd.code):
                    raise WatchError(
                        exc.rcvd.reason or "refused", f"closed with {exc.rcvd.code}"
                    ) from None
                expired = exc.rcvd is not None and exc.rcvd.code == TOKEN_EXPIRED_CLOSE
                log.info("watch of %s dropped (%s); resuming", task_id, exc)
            # A handshake that failed (InvalidStatus, or a connection dropped mid-handshake by
            # a restarting server: InvalidMessage) is retried like a refused connection.
            except (ConnectionClosed, OSError, InvalidHandshake, TimeoutError) as exc:
                log.info("watch of %s failed to connect (%s); retrying", task_id, exc)
            failures += 1
            await asyncio.sleep(
                min(max_backoff_s, 0.25 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
            )
            # Refreshed when the server said so, whatever this machine's clock says.
            if expired or watch.expires_at - 30 < time.time():
                try:
                    watch = await asyncio.to_thread(self.watch_token, task_id)
                    expired = False
                except (ServerError, TransportError) as exc:
                    log.info("watch of %s: no fresh token yet (%s); retrying", task_id, exc)
