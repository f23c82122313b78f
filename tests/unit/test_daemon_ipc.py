"""Supervisor <-> worker framing: JSON lines, requests and replies, EOF."""
from __future__ import annotations

import asyncio
import socket

import pytest

from responder.daemon import ipc


def test_encode_decode_round_trip():
    message = {"op": "acquire", "key": "0:1", "user": "a\nb", "n": [1, 2]}
    line = ipc.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # newlines inside are escaped
    assert ipc.decode(line) == message


@pytest.mark.parametrize("line", [b"not json\n", b"[1,2]\n", b'{"no_op":1}\n', b"\xff\n"])
def test_malformed_lines_are_refused(line):
    with pytest.raises(ipc.IpcError):
        ipc.decode(line)


def test_encode_needs_an_op():
    with pytest.raises(ipc.IpcError):
        ipc.encode({"x": 1})


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 5))


def test_request_reply_notify_and_errors():
    async def main():
        a, b = socket.socketpair()
        seen = []

        async def handler(message):
            seen.append(message)
            if message["op"] == "add":
                await asyncio.sleep(0.01)
                return {"sum": message["x"] + message["y"]}
            if message["op"] == "boom":
                raise ValueError("no")
            if message["op"] == "slow":
                await asyncio.sleep(10)
            return None

        server = await ipc.open_channel(b, handler, name="server")
        client = await ipc.open_channel(a, None, name="client")
        serving = [asyncio.ensure_future(server.serve()), asyncio.ensure_future(client.serve())]
        # concurrent requests are matched by id
        replies = await asyncio.gather(*(client.request({"op": "add", "x": i, "y": 1})
                                         for i in range(5)))
        assert [r["sum"] for r in replies] == [1, 2, 3, 4, 5]
        client.notify({"op": "note", "v": 1})
        with pytest.raises(ipc.IpcError, match="ValueError: no"):
            await client.request({"op": "boom"})
        await asyncio.sleep(0.05)
        assert {"op": "note", "v": 1} in seen
        # the server goes away: an outstanding request fails, it does not hang
        pending = asyncio.ensure_future(client.request({"op": "slow"}, timeout=None))
        await asyncio.sleep(0.01)
        server.close()
        with pytest.raises(ipc.ChannelClosed):
            await pending
        await asyncio.wait(serving, timeout=1)
        for task in server._tasks:
            task.cancel()
        assert client.closed
        with pytest.raises(ipc.ChannelClosed):
            await client.request({"op": "add", "x": 1, "y": 1})

    run(main())
