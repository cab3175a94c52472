"""The load bench's own parts without a stack: its HTTP client, the open-loop generator's
timing (latency from the due time), the rule that says a rating shows on a passport, and the
step-up search's pass rule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.load_gen import Call, FixedCalls, RunResult, Tally, WorkerSpec, _run, latency_summary
from bench.load_http import Pool
from bench.load_rating import shows
from bench.load_report import step_passes
from services.sci.domain import practice_points

Handler = Callable[[bytes], Awaitable[bytes]]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def serve(handler: Handler, serial: bool = False) -> tuple[asyncio.Server, int]:
    """A loopback HTTP/1.1 server answering each request with ``handler``'s bytes; ``serial``:
    one request at a time across every connection (a server that queues)."""
    gate = asyncio.Lock()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if serial:
                    async with gate:
                        answer = await handler(head)
                else:
                    answer = await handler(head)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_the_client_reads_sized_and_chunked_answers_on_one_kept_connection() -> None:
    chunked = b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'

    async def handler(head: bytes) -> bytes:
        return chunked if head.startswith(b"POST") else OK

    async def main() -> None:
        server, port = await serve(handler)
        pool = Pool("127.0.0.1", port)
        try:
            first = await pool.request("GET", "/x")
            second = await pool.request(
                "POST", "/y", json_body={"b": 2}, headers={"Authorization": "Bearer t"}
            )
            assert (first.status, first.json()) == (200, {})
            assert (second.status, second.json()) == (201, {"a": 1})
            assert pool.count == 1  # the second request reused the first one's connection
        finally:
            pool.close()
            await asyncio.sleep(0.05)
            server.close()

    asyncio.run(main())


def test_open_loop_latency_counts_from_the_due_time_so_a_queueing_server_shows_its_queue() -> None:
    """A server that answers one request at a time in 20 ms, asked 100 times a second: a
    closed-loop client would see 20 ms each (and send less); the open-loop one keeps to its
    schedule and sees the queue grow (coordinated omission avoided)."""

    async def handler(head: bytes) -> bytes:
        await asyncio.sleep(0.02)
        return OK

    async def main() -> RunResult:
        server, port = await serve(handler, serial=True)
        try:
            call = Call("GET /slow", 0, Pool("127.0.0.1", port).build("GET", "/slow"))
            spec = WorkerSpec(
                (f"http://127.0.0.1:{port}",), 100, 0.5, time.monotonic() + 0.1, 0, 1, FixedCalls([call])
            )
            return await _run(spec)
        finally:
            await asyncio.sleep(0.05)  # the server's side sees the connections close
            server.close()

    res = asyncio.run(main())
    assert res.arrivals == res.sent == 50
    # (the client's own lag is not asserted: a busy machine may delay a few sends)
    lat = res.kinds["GET /slow"].latencies_ms
    assert len(lat) == 50 and min(lat) >= 19
    # 50 requests of 20 ms take 1 s; the last was due at 0.49 s, so it waited about 0.5 s
    assert max(lat) > 400, max(lat)


def test_a_rating_shows_once_the_passport_has_its_session_and_the_practice_it_gives() -> None:
    k = 3
    practice = round(practice_points(k), 2)
    assert shows(None, k) == (False, False)
    assert shows({"sessions": 2, "practice": practice}, k) == (False, False)
    assert shows({"sessions": 3, "practice": round(practice_points(2), 2)}, k) == (True, False)
    assert shows({"sessions": 3, "practice": practice}, k) == (True, True)
    assert shows({"sessions": 4, "practice": round(practice_points(4), 2)}, k) == (True, True)


def test_a_step_passes_on_p99_under_100_ms_without_5xx_or_unanswered_requests() -> None:
    def run(latencies: list[float], statuses: dict[int, int], lost: int = 0) -> RunResult:
        tally = Tally(latencies_ms=latencies)
        tally.statuses.update(statuses)
        if lost:
            tally.failures["TimeoutError"] = lost
        res = RunResult(100, 1.0, arrivals=len(latencies) + lost, sent=len(latencies) + lost)
        res.lag_ms = [0.5] * res.sent
        res.kinds["GET /v1/passports/{id}"] = tally
        slow = Tally(latencies_ms=[900.0] * 5)  # left out of the p99: it waits for the log
        slow.statuses[202] = 5
        res.kinds["POST /v1/match-requests"] = slow
        res.arrivals += 5
        res.sent += 5
        return res

    assert step_passes(run([5.0] * 200, {200: 200})) == (True, "")
    assert step_passes(run([5.0] * 190 + [150.0] * 10, {200: 200}))[0] is False
    assert "5xx" in step_passes(run([5.0] * 200, {200: 199, 502: 1}))[1]
    assert "answered" in step_passes(run([5.0] * 190, {200: 190}, lost=10))[1]
    assert (
        latency_summary(run([5.0] * 98, {200: 98}, lost=2).kinds["GET /v1/passports/{id}"])["p99_ms"] is None
    )
