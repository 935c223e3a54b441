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
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from taskcore import protocol
from taskcore.event import Cursor
from taskcore.protocol import ProtocolError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API refused a request; ``status``, ``code`` and ``message`` say why."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class WatchError(Exception):
    """The realtime service refused the watch (bad token, no such task, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


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


class Client:
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
        response = self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                raise ApiError(
                    response.status_code,
                    str(error.get("code")),
                    str(error.get("message")),
                    error.get("field"),
                )
            raise ApiError(response.status_code, "http_error", response.text[:200])
        return body  # type: ignore[no-any-return]

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
        while True:
            try:
                async with websockets.connect(watch.url, open_timeout=10) as ws:
                    await ws.send(protocol.Subscribe(task_id, watch.token, cursor).encode())
                    async for raw in ws:
                        message = protocol.parse_server(raw)
                        if message.op == "error":
                            code = str(message.data["code"])
                            if code in protocol.RESUMABLE_ERRORS:
                                log.info("watch of %s: %s; resuming", task_id, code)
                                break
                            raise WatchError(code, str(message.data["message"]))
                        failures = 0
                        cursor = message.cursor or cursor
                        yield Update.from_message(message.data)
                        if message.op == "end":
                            return
            except ProtocolError as exc:
                raise WatchError(exc.code, str(exc)) from None
            except ConnectionClosedError as exc:
                if exc.rcvd is not None and protocol.is_refusal(exc.rcvd.code):
                    raise WatchError(
                        exc.rcvd.reason or "refused", f"closed with {exc.rcvd.code}"
                    ) from None
                log.info("watch of %s dropped (%s); resuming", task_id, exc)
            except (ConnectionClosed, OSError, InvalidStatus, TimeoutError) as exc:
                log.info("watch of %s failed to connect (%s); retrying", task_id, exc)
            if watch.expires_at - 30 < time.time():
                watch = await asyncio.to_thread(self.watch_token, task_id)
            failures += 1
            await asyncio.sleep(
                min(max_backoff_s, 0.25 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
            )
