"""The service benchmark's own HTTP client (`bench.service._Connection`): what it measures is only right if
it reads each answer whole, however the bytes arrive, and says so when it cannot."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import pytest

from bench.service import _Connection


def _run(work: Coroutine[Any, Any, Any]) -> Any:
    """`asyncio.run(work)` in a thread of its own: the browser tests leave an event loop running in this one."""
    found: dict[str, Any] = {}

    def run() -> None:
        try:
            found["result"] = asyncio.run(work)
        except BaseException as err:
            found["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in found:
        raise found["error"]
    return found["result"]


async def _exchange(pieces: list[bytes], requests: int = 1) -> list[tuple[int, bytes]]:
    """Serve `pieces` (written one by one, flushed apart) for the first request, then one small answer per
    further request; return what the client read."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(requests):
            await reader.readuntil(b"\r\n\r\n")
            for piece in pieces if n == 0 else [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, connection = await asyncio.get_running_loop().create_connection(_Connection, "127.0.0.1", port)
    try:
        return [
            await asyncio.wait_for(connection.request(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"), 5) for _ in range(requests)
        ]
    finally:
        assert connection.transport is not None
        connection.transport.close()
        server.close()


def test_an_answer_in_pieces_is_read_whole_and_the_next_one_after_it() -> None:
    body = b'{"setl_id":"S1","note":"' + b"x" * 5000 + b'"}'
    head = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    whole = head + body
    pieces = [whole[:7], whole[7:40], whole[40 : len(head) + 10], whole[len(head) + 10 :]]
    answers = _run(_exchange(pieces, requests=3))
    assert answers == [(201, body), (200, b"ok"), (200, b"ok")]


def test_a_chunked_answer_is_an_error_not_a_guess() -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    with pytest.raises(ConnectionError, match="content-length"):
        _run(_exchange([chunked]))


def test_a_closed_connection_is_an_error() -> None:
    with pytest.raises(ConnectionError):
        _run(_exchange([b"HTTP/1.1 200 OK\r\ncontent-len"]))


def test_a_connection_the_server_closed_between_requests_is_an_error_at_once() -> None:
    async def closed_after_one() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, connection = await asyncio.get_running_loop().create_connection(_Connection, "127.0.0.1", port)
        assert await connection.request(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n") == (200, b"ok")
        await asyncio.sleep(0.1)  # the close reaches the client
        try:
            await asyncio.wait_for(connection.request(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"), 5)
        finally:
            server.close()

    with pytest.raises(ConnectionError):
        _run(closed_after_one())
