"""A lean HTTP/1.1 client for the gateway's calls to replicas: keep-alive connections per
replica address, kept idle in a list and reused last-in first-out; a response's body read
as it comes (by Content-Length, chunked, or to the end). httpx's general pool costs more
per request than the whole rest of the gateway; this one does only what the gateway needs.

A connection reused from the pool that fails before any answer came (the replica closed it
while idle) is retried once on a fresh connection. Closing a response before its end
closes its connection: the replica sees its client gone and stops generating.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5.0
READ_CHUNK = 65_536
MAX_IDLE_PER_ADDRESS = 64


class UpstreamError(Exception):
    """The replica could not be reached, or broke the connection."""


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


class Response:
    """A replica's answer: status and headers read; the body read with `chunks()`/`read()`;
    `close()` at the end (the connection goes back to the pool when the body was read whole)."""

    def __init__(self, pool: Pool, address: tuple[str, int], conn: _Conn, status: int,
                 headers: list[tuple[bytes, bytes]], length: int | None, chunked: bool,
                 keep_alive: bool) -> None:  # fmt: skip
        self._pool, self._address, self._conn = pool, address, conn
        self.status, self.headers = status, headers
        self._length, self._chunked, self._keep_alive = length, chunked, keep_alive
        self._complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (UpstreamError when the connection breaks first)."""
        reader = self._conn.reader
        try:
            if self._chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")
                        break
                    data = await reader.readexactly(size + 2)
                    yield data[:-2]
            elif self._length is not None:
                left = self._length
                while left > 0:
                    data = await reader.read(min(left, READ_CHUNK))
                    if not data:
                        raise UpstreamError("the replica closed the connection mid-answer")
                    left -= len(data)
                    yield data
            else:
                self._keep_alive = False
                while data := await reader.read(READ_CHUNK):
                    yield data
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise UpstreamError(f"the replica broke the connection: {exc!r}") from exc
        self._complete = True

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    def close(self) -> None:
        if self._complete and self._keep_alive:
            self._pool._release(self._address, self._conn)
        else:
            self._conn.close()


class Pool:
    """Keep-alive connections to replicas, by address."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        """POST `body` to `url`; the answer's head read, its body not yet."""
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        idle = self._idle.get(address)
        while idle and (idle[-1].reader.at_eof() or idle[-1].writer.is_closing()):
            idle.pop().close()
        if idle:
            conn = idle.pop()
            try:
                return await self._exchange(address, conn, request)
            except UpstreamError:
                conn.close()  # closed by the replica while idle: once more, fresh
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*address, limit=2**20), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"cannot reach the replica at {address[0]}:{address[1]}: {exc!r}"
            ) from exc
        conn = _Conn(reader, writer)
        try:
            return await self._exchange(address, conn, request)
        except UpstreamError:
            conn.close()
            raise

    async def _exchange(self, address: tuple[str, int], conn: _Conn, request: bytes) -> Response:
        try:
            conn.writer.write(request)
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise UpstreamError(f"the replica did not answer: {exc!r}") from exc
        lines = head[:-4].split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise UpstreamError(f"the replica's answer is not HTTP: {lines[0]!r}") from exc
        headers: list[tuple[bytes, bytes]] = []
        length, chunked, keep_alive = None, False, True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            headers.append((name, value))
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep_alive = b"close" not in value.lower()
        return Response(self, address, conn, status, headers, length, chunked, keep_alive)

    def _release(self, address: tuple[str, int], conn: _Conn) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) >= MAX_IDLE_PER_ADDRESS or conn.reader.at_eof():
            conn.close()
        else:
            idle.append(conn)

    def prune(self) -> None:
        """Close idle connections the replica closed (a replica that ended, or its idle
        timeout), so that the pool keeps no dead sockets of replicas long gone."""
        for address in list(self._idle):
            alive = []
            for conn in self._idle[address]:
                if conn.reader.at_eof() or conn.writer.is_closing():
                    conn.close()
                else:
                    alive.append(conn)
            if alive:
                self._idle[address] = alive
            else:
                del self._idle[address]

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
