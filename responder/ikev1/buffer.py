"""A bounds-checked byte buffer with paired pull_*/push_* methods.

Modelled on aioquic's `_buffer`: decoding reads through `pull_*`, and any read
past the end raises one `DecodeError` carrying the offset, so every short read
in every payload ends in the same place. Encoding appends through `push_*`;
out-of-range values raise `EncodeError` (our fault, not the peer's).

All integers are network byte order (RFC 2408 §2.2 "big endian").
"""

from __future__ import annotations

from .errors import DecodeError, EncodeError

__all__ = ["Buffer"]


class Buffer:
    """Read cursor over immutable bytes, or an append-only writer.

    `Buffer(data)` reads `data`; `Buffer()` starts an empty writer whose
    result is `bytes(buffer)` / `buffer.data`.
    """

    __slots__ = ("_data", "_view", "_pos", "_out")

    def __init__(self, data: bytes = b"") -> None:
        self._data = bytes(data)
        self._view = memoryview(self._data)
        self._pos = 0
        self._out = bytearray()

    # ------------------------------------------------------------- reading
    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def eof(self) -> bool:
        return self._pos >= len(self._data)

    def _take(self, size: int, what: str) -> memoryview:
        if size < 0 or self._pos + size > len(self._data):
            raise DecodeError(
                f"short read: {what} needs {size} bytes, {self.remaining} left",
                offset=self._pos,
            )
        chunk = self._view[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def pull_uint8(self) -> int:
        return self._take(1, "uint8")[0]

    def pull_uint16(self) -> int:
        return int.from_bytes(self._take(2, "uint16"), "big")

    def pull_uint32(self) -> int:
        return int.from_bytes(self._take(4, "uint32"), "big")

    def pull_uint64(self) -> int:
        return int.from_bytes(self._take(8, "uint64"), "big")

    def pull_bytes(self, size: int) -> bytes:
        return bytes(self._take(size, f"{size}-byte field"))

    def pull_rest(self) -> bytes:
        """Everything left (may be empty)."""
        return self.pull_bytes(self.remaining)

    def peek_uint8(self) -> int:
        if self.eof():
            raise DecodeError("short read: uint8 needs 1 byte, 0 left", offset=self._pos)
        return self._data[self._pos]

    def sub_buffer(self, size: int) -> "Buffer":
        """Consume `size` bytes and return a new Buffer reading only those."""
        return Buffer(self._take(size, f"{size}-byte region"))

    # ------------------------------------------------------------- writing
    @staticmethod
    def _check(value: int, bits: int) -> int:
        value = int(value)
        if not 0 <= value < (1 << bits):
            raise EncodeError(f"value {value} does not fit in uint{bits}")
        return value

    def push_uint8(self, value: int) -> None:
        self._out.append(self._check(value, 8))

    def push_uint16(self, value: int) -> None:
        self._out += self._check(value, 16).to_bytes(2, "big")

    def push_uint32(self, value: int) -> None:
        self._out += self._check(value, 32).to_bytes(4, "big")

    def push_uint64(self, value: int) -> None:
        self._out += self._check(value, 64).to_bytes(8, "big")

    def push_bytes(self, value: bytes) -> None:
        self._out += value

    @property
    def data(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._out)

    def __len__(self) -> int:
        return len(self._out)

    def __bytes__(self) -> bytes:
        return self.data
