"""A TCP load balancer for tests: each new connection goes to the first backend that accepts it.

It stands in for what fronts realtime instances in production, so a client that loses its
instance reconnects to the same address and lands on another.
"""

from __future__ import annotations

import asyncio
import contextlib


class Balancer:
    def __init__(self, backends: list[int], host: str = "127.0.0.1") -> None:
        self._backends = backends
        self._host = host
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self._host, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        for port in self._backends:
            try:
                backend_reader, backend_writer = await asyncio.open_connection(self._host, port)
            except OSError:
                continue
            break
        else:
            client_writer.close()
            return
        for source, sink in ((client_reader, backend_writer), (backend_reader, client_writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
