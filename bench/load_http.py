"""A small HTTP/1.1 client for the load bench: keep-alive connections over asyncio, little CPU.

httpx spends several times the CPU of the request itself per call (its pool scans every
connection, it builds rich request and response objects). On a 2-core machine where the
generator shares the cores with the stack, that cost decides how much load one process can
offer, so the bench speaks HTTP/1.1 itself: a request is one ``write`` of prebuilt bytes, an
answer is parsed for its status, ``Content-Length`` (or chunked body) and ``Connection``.
Only what the stack's gateway (Caddy) and services (uvicorn) answer is handled.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_HEADER = 64 * 1024


class HttpError(Exception):
    """No answer: the connection failed, closed early or the answer was malformed."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.open = False
        self.used = 0  # answers received on it
        self.keep = True  # false once the server said Connection: close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection closed ({exc or 'by the server'})"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            answer = self._parse()
        except HttpError as exc:
            self.waiter.set_exception(exc)
            self.keep = False
            return
        if answer is not None:
            self.used += 1
            self.waiter.set_result(answer)

    def _parse(self) -> Answer | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER:
                raise HttpError("header too long")
            return None
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(head[0].split(" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise HttpError(f"bad status line {head[0]!r}") from exc
        length: int | None = None
        chunked = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                self.keep = False
        start = end + 4
        if chunked:
            parsed = _dechunk(self.buf, start)
            if parsed is None:
                return None
            body, used = parsed
            del self.buf[:used]
            return Answer(status, body)
        if length is None:
            length = 0 if status in (204, 304) or 100 <= status < 200 else -1
        if length < 0:
            raise HttpError("an answer without Content-Length")
        if len(self.buf) < start + length:
            return None
        body = bytes(self.buf[start : start + length])
        del self.buf[: start + length]
        return Answer(status, body)


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """The body of a chunked answer starting at ``pos`` and where it ends; None if incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            trailer = buf.find(b"\r\n", pos)
            return None if trailer < 0 else (bytes(out), trailer + 2)
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


def request_bytes(
    host: bytes, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> bytes:
    """An HTTP/1.1 request to ``host`` (``b"127.0.0.1:8000"``); a body is sent as JSON."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}".encode())
    if body is not None:
        lines.append(b"Content-Type: application/json")
        lines.append(b"Content-Length: " + str(len(body)).encode())
    elif method in ("POST", "PUT", "DELETE"):
        lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


class Pool:
    """Keep-alive connections to one ``host:port``, at most ``limit`` open; callers past the
    limit queue for a free connection (their wait counts in their latency)."""

    def __init__(self, host: str, port: int, limit: int = 256, timeout: float = 10.0) -> None:
        self.host, self.port, self.limit, self.timeout = host, port, limit, timeout
        self.idle: deque[_Conn] = deque()
        self.count = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.retries = 0  # requests sent again after a reused connection closed unanswered
        self.host_header = f"{host}:{port}".encode()
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def of(cls, url: str, **options: Any) -> Pool:
        """A pool for ``http://host:port``."""
        rest = url.removeprefix("http://").rstrip("/")
        host, _, port = rest.partition(":")
        return cls(host, int(port or 80), **options)

    async def _acquire(self) -> _Conn:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # connections of an earlier loop (asyncio.run) are of no use here
            self.idle.clear()
            self.waiters.clear()
            self.count = 0
            self.loop = loop
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.open and conn.keep:
                    return conn
                self._drop(conn)
            if self.count < self.limit:
                self.count += 1
                try:
                    loop = asyncio.get_running_loop()
                    _, conn = await loop.create_connection(_Conn, self.host, self.port)
                except BaseException:
                    self.count -= 1
                    self._wake()
                    raise
                return conn
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _drop(self, conn: _Conn) -> None:
        if conn.transport is not None:
            conn.transport.close()
        self.count -= 1
        self._wake()

    def _release(self, conn: _Conn, ok: bool) -> None:
        if ok and conn.open and conn.keep:
            self.idle.append(conn)
            self._wake()
        else:
            self._drop(conn)

    def build(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> bytes:
        """The bytes of a request (build once and send many times where it repeats)."""
        return request_bytes(self.host_header, method, path, body, headers)

    async def send(self, raw: bytes) -> Answer:
        """Send a prebuilt request and return the answer; ``HttpError`` or ``TimeoutError``
        when there is none. A reused connection that closes before any byte of the answer is
        tried once more on a new one (the server closed it as idle as the request went out)."""
        for attempt in (1, 2):
            conn = await self._acquire()
            reused = conn.used > 0
            waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            conn.waiter = waiter
            assert conn.transport is not None
            conn.transport.write(raw)
            try:
                answer: Answer = await asyncio.wait_for(waiter, self.timeout)
            except HttpError:
                self._release(conn, ok=False)
                if reused and attempt == 1:
                    self.retries += 1
                    continue
                raise
            except BaseException:
                self._release(conn, ok=False)
                raise
            conn.waiter = None
            self._release(conn, ok=True)
            return answer
        raise HttpError("unreachable")

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        body = None if json_body is None else json.dumps(json_body).encode()
        return await self.send(self.build(method, path, body, headers))

    async def get_json(self, path: str) -> Any:
        answer = await self.request("GET", path)
        if answer.status != 200:
            raise HttpError(f"GET {path}: {answer.status} {answer.body[:200]!r}")
        return answer.json()

    def close(self) -> None:
        """Close the idle connections (if their loop still runs)."""
        while self.idle:
            conn = self.idle.pop()
            if conn.transport is not None and self.loop is not None and not self.loop.is_closed():
                conn.transport.close()
        self.count = 0
