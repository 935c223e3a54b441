"""The realtime service: websockets server, shared hub and stores, health, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from http import HTTPStatus

import boto3
import redis.asyncio as aioredis
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Origin

from taskcore import logs, protocol
from taskcore.config import LOCALHOST, REALTIME_PORT, Config, add_metrics_arguments, serve_metrics
from taskcore.store import TaskStore

from . import metrics
from .eventlog import EventLogReader
from .hub import Hub
from .session import MAX_BUFFERED, WRITE_LIMIT, Limits, Session

log = logging.getLogger(__name__)

REDIS_CONNECTIONS = 32
"""Connections to Redis per instance: one for pub/sub, the rest shared by every watch's reads."""


class RealtimeService:
    def __init__(
        self, config: Config, limits: Limits | None = None, max_buffered: int = MAX_BUFFERED
    ) -> None:
        self._config = config
        self._limits = limits or Limits()
        self._max_buffered = max_buffered
        # Thousands of watches share a few connections: a request waits for a free one rather
        # than failing when they are all busy (the default pool raises).
        pool = aioredis.BlockingConnectionPool.from_url(
            config.redis, max_connections=REDIS_CONNECTIONS, timeout=30
        )
        self._redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        dynamodb = boto3.client("dynamodb", **config.aws_client_kwargs())  # type: ignore[call-overload]
        self._store = TaskStore(dynamodb, config.names.tasks_table)
        self._reader = EventLogReader(self._redis, config.names)
        self.hub = Hub(self._redis, config.names)

    async def _handle(self, websocket: ServerConnection) -> None:
        # The handshake's headers have been read (the origin checked): kept, they would be
        # some 4 KiB of every connection for as long as it lasts.
        assert websocket.request is not None
        websocket.request.headers.clear()
        websocket.response = None
        session = Session(
            websocket,
            self.hub,
            self._store,
            self._reader,
            self._config.secret,
            self._limits,
            self._max_buffered,
        )
        with metrics.connection():
            await session.run()

    def _health(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    async def serve(
        self, host: str, port: int, stop: asyncio.Event, ready: asyncio.Event | None = None
    ) -> None:
        await self.hub.start()
        try:
            async with serve(
                self._handle,
                host,
                port,
                # None admits clients that send no Origin: the CLI and SDK, which are not browsers.
                origins=[*map(Origin, self._config.allowed_origins), None],
                max_size=protocol.MAX_MESSAGE_BYTES,
                # No permessage-deflate: its zlib state is most of a connection's memory, and
                # the frames are small (see docs/decisions.md).
                compression=None,
                write_limit=WRITE_LIMIT,
                process_request=self._health,
                # The session pings, from the connection's own task: websockets' keepalive
                # would be a task more for every connection.
                ping_interval=None,
                ping_timeout=None,
            ) as server:
                log.info("realtime listening on ws://%s:%d", host, port)
                if ready is not None:
                    ready.set()
                await stop.wait()
                await self._shutdown(server)
        finally:
            await self.hub.close()
            await self._redis.aclose()

    async def _shutdown(self, server: Server) -> None:
        log.info("shutting down: closing %d connection(s) with 1001", len(server.connections))
        server.close()  # closes every connection with 1001 so clients resume elsewhere
        await server.wait_closed()


async def _main(host: str, port: int) -> None:
    config = Config.from_env(need=("redis", "watch_secret"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await RealtimeService(config).serve(host, port, stop)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="taskcast's websocket fan-out service")
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--port", type=int, default=REALTIME_PORT)
    add_metrics_arguments(parser)
    args = parser.parse_args()
    logs.setup()
    serve_metrics(parser, args, metrics.serve)
    asyncio.run(_main(args.host, args.port))
