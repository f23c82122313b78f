"""Inbound demultiplexing: SPI -> InboundSA, bounded (RFC 4303 §2.1, §3.4.2).

During a rekey both the old and the new inbound SA are in the table, so packets the
peer still sends with the old SPI keep decrypting until the old SA is removed.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

from .errors import DropReason, EspDrop
from .packet import esp_spi
from .sa import InboundSA

DEFAULT_CAPACITY = 65536
_FIRST_FREE_SPI = 256  # §2.1: 0 is reserved, 1-255 reserved by IANA
_SPI_ATTEMPTS = 64


class SpiTableError(Exception):
    """An SA could not be added (table full, SPI taken) or an SPI not allocated."""


class SpiTable:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("SPI table capacity must be positive")
        self.capacity = capacity
        self._by_spi: dict[int, InboundSA] = {}
        self.unknown_spi_drops = 0

    def __len__(self) -> int:
        return len(self._by_spi)

    def __contains__(self, spi: int) -> bool:
        return spi in self._by_spi

    def __iter__(self) -> Iterator[InboundSA]:
        return iter(list(self._by_spi.values()))

    def add(self, sa: InboundSA) -> None:
        if sa.spi in self._by_spi:
            raise SpiTableError(f"SPI {sa.spi:#010x} is already in use")
        if len(self._by_spi) >= self.capacity:
            raise SpiTableError(f"SPI table is full ({self.capacity} inbound SAs)")
        self._by_spi[sa.spi] = sa

    def remove(self, spi: int) -> InboundSA | None:
        """Forget an SA; returns it, or None if it was not there (removal is idempotent)."""
        return self._by_spi.pop(spi, None)

    def get(self, spi: int) -> InboundSA:
        sa = self._by_spi.get(spi)
        if sa is None:
            self.unknown_spi_drops += 1
            raise EspDrop(DropReason.UNKNOWN_SPI, f"SPI {spi:#010x}")
        return sa

    def decapsulate(self, esp_packet: bytes, *, now: float | None = None) -> tuple[InboundSA, bytes]:
        """Find the SA by SPI and open the packet; returns (sa, inner packet)."""
        sa = self.get(esp_spi(esp_packet))
        return sa, sa.decapsulate(esp_packet, now=now)

    def allocate_spi(self, rng: Callable[[int], bytes] = os.urandom) -> int:
        """A random unused SPI >= 256 for a new inbound SA (random makes SPIs unguessable)."""
        for _ in range(_SPI_ATTEMPTS):
            spi = int.from_bytes(rng(4), "big")
            if spi >= _FIRST_FREE_SPI and spi not in self._by_spi:
                return spi
        raise SpiTableError(f"no free SPI found in {_SPI_ATTEMPTS} attempts")
