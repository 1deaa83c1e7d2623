"""A TCP proxy on loopback that can cut the line: a network partition between the service
and its database, with the real server behind it. It can also stall the line (connections
stay open, nothing gets through), so that a cut lands in the middle of a statement."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.engine import make_url


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    def url(self, database_url: str) -> str:
        """`database_url` by way of this proxy."""
        via = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return via.render_as_string(hide_password=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        """Hold every byte in either direction (connections stay open) until `flow` or `cut`."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    async def cut(self) -> None:
        """Drop every open connection and refuse new ones (a stall ends: the line is down)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._flowing.set()

    async def restore(self) -> None:
        await self.start()  # on the same port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)
