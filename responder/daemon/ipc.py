"""Supervisor <-> worker messages: JSON lines over a socketpair.

One message per line (``json.dumps`` never emits a raw newline), UTF-8, at most
:data:`MAX_LINE` bytes. Every message is an object with an ``op``. A request carries
an ``id`` and gets exactly one reply ``{"op": "reply", "id": ..., ...}``; anything
else is a notification. Both sides use the same :class:`Channel`.

    channel = Channel(reader, writer, handler)   # handler(message) -> reply dict | None
    task = asyncio.create_task(channel.serve())  # returns at EOF
    reply = await channel.request({"op": "acquire", ...}, timeout=5)
    channel.notify({"op": "release", ...})

A handler may be a coroutine function; the reply is sent when it returns. At EOF
every pending request fails with :class:`ChannelClosed`.

The first line the supervisor sends a new worker is ``{"op": "configure", "snapshot":
...}`` (responder/config/snapshot.py: the configuration, secrets included, so never on
the command line or in the environment); the worker reads it with
:func:`read_first_message` before its event loop runs. A reload sends ``{"op":
"reload", "snapshot": ..., "summary": ...}`` as a request.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import socket
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

__all__ = ["Channel", "ChannelClosed", "IpcError", "MAX_LINE", "encode", "decode",
           "open_channel", "read_first_message", "CONFIGURE"]

#: a whole ``show subscribers`` answer for 10k subscribers fits
MAX_LINE = 16 << 20
#: the op of the first line to a worker: its configuration snapshot
CONFIGURE = "configure"
#: bytes looked at per read while the first line is read before the event loop
_PEEK = 1 << 16

Message = dict[str, Any]
Handler = Callable[[Message], "Message | None | Awaitable[Message | None]"]


class IpcError(Exception):
    """A malformed message, or a request the other side answered with an error."""


class ChannelClosed(IpcError):
    """The other process went away (EOF) while a request was outstanding."""


def encode(message: Message) -> bytes:
    if not isinstance(message, dict) or "op" not in message:
        raise IpcError(f"an IPC message is an object with an 'op': {message!r}")
    data = json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"
    if len(data) > MAX_LINE:
        raise IpcError(f"IPC message of {len(data)} bytes exceeds {MAX_LINE}")
    return data


def decode(line: bytes) -> Message:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IpcError(f"malformed IPC line: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise IpcError("IPC message without an 'op'")
    return message


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler | None = None, name: str = "ipc") -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self.closed = False

    # -- sending --------------------------------------------------------------------
    def notify(self, message: Message) -> None:
        if self.closed:
            log.debug("%s: closed, dropped %s", self.name, message.get("op"))
            return
        self.writer.write(encode(message))

    async def request(self, message: Message, timeout: float | None = 10.0) -> Message:
        """Send a request and wait for its reply; a reply with ``error`` raises IpcError."""
        if self.closed:
            raise ChannelClosed(f"{self.name}: channel closed")
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            self.writer.write(encode({**message, "id": ident}))
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(ident, None)
        if reply.get("error"):
            raise IpcError(str(reply["error"]))
        return reply

    async def drain(self) -> None:
        if not self.closed:
            try:
                await self.writer.drain()
            except (ConnectionError, RuntimeError):
                pass

    # -- receiving ------------------------------------------------------------------
    async def serve(self) -> None:
        """Read until EOF, dispatching replies and incoming messages."""
        try:
            while True:
                try:
                    line = await self.reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    log.error("%s: IPC line over the limit; closing", self.name)
                    break
                except ConnectionError:
                    break
                try:
                    message = decode(line)
                except IpcError as exc:
                    log.error("%s: %s", self.name, exc)
                    continue
                self._dispatch(message)
        finally:
            self.close()

    def _dispatch(self, message: Message) -> None:
        if message["op"] == "reply":
            future = self._pending.get(message.get("id"))
            if future is not None and not future.done():
                future.set_result(message)
            return
        if self.handler is None:
            return
        task = asyncio.ensure_future(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: Message) -> None:
        try:
            result = self.handler(message)
            if inspect.isawaitable(result):
                result = await result
            error = None
        except Exception as exc:  # noqa: BLE001 - answer the request, keep the channel
            log.exception("%s: handling %s failed", self.name, message.get("op"))
            result, error = None, f"{type(exc).__name__}: {exc}"
        if "id" in message:
            reply = dict(result or {})
            if error:
                reply["error"] = error
            reply.update(op="reply", id=message["id"])
            try:
                self.notify(reply)
            except IpcError as exc:
                self.notify({"op": "reply", "id": message["id"], "error": str(exc)})

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"{self.name}: peer went away"))
        try:
            self.writer.close()
        except RuntimeError:
            pass


async def open_channel(sock: socket.socket, handler: Handler | None = None,
                       name: str = "ipc") -> Channel:
    """A Channel over a connected stream socket (one end of a socketpair)."""
    reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_LINE)
    return Channel(reader, writer, handler, name)


def read_first_message(sock: socket.socket) -> Message:
    """One message read from a blocking stream socket, and not a byte more: the bytes
    after its newline stay in the socket for the :class:`Channel` opened next."""
    sock.setblocking(True)
    line = bytearray()
    while True:
        ahead = sock.recv(_PEEK, socket.MSG_PEEK)
        if not ahead:
            raise ChannelClosed("peer went away before the first message")
        end = ahead.find(b"\n")
        take = len(ahead) if end < 0 else end + 1
        got = sock.recv(take)
        line += got
        if end >= 0 and len(got) == take:
            return decode(bytes(line))
        if len(line) > MAX_LINE:
            raise IpcError(f"first IPC message exceeds {MAX_LINE} bytes")
