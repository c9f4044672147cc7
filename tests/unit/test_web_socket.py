"""The board's listening socket: connections accepted from it have Nagle off. With Nagle on,
every request after the first on a kept-alive connection waited ~40 ms for the client's
delayed ACK (asyncio sets TCP_NODELAY only where the socket's proto says TCP)."""

from __future__ import annotations

import asyncio
import socket

from agent.web.server import bind


def test_connections_accepted_by_the_board_socket_have_nagle_off() -> None:
    async def scenario() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = bind(("127.0.0.1", 0), backlog=8)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
        return nodelay

    assert asyncio.run(scenario()) != 0
