"""ESP speed per transform: encapsulate and decapsulate 1400-byte inner IPv4 packets.

    .venv/bin/python bench/esp_bench.py [PACKETS]      (default 20,000 per transform)

One core, one SA pair, no I/O: this is the crypto and framing cost the data path pays
per packet. Throughput counts inner bytes (what the subscriber sends). Prints a table
and writes bench/results/esp.json. No pass/fail.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from responder.esp import TRANSFORMS, EspSAParams, InboundSA, OutboundSA  # noqa: E402
from responder.esp.transforms import EspCipherSuite  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "esp.json"
INNER_SIZE = 1400


def inner_packet(size: int = INNER_SIZE) -> bytes:
    header = bytearray.fromhex("450000000000400040010000" "0a630007" "c0a8320a")
    header[2:4] = size.to_bytes(2, "big")
    return bytes(header) + bytes(size - len(header))


def sa_pair(transform: EspCipherSuite) -> tuple[OutboundSA, InboundSA]:
    params = EspSAParams(
        spi=0x1000, enc_id=transform.enc_id, auth_id=transform.auth_id,
        key_bits=transform.key_bits, enc_key=os.urandom(transform.enc_key_size),
        auth_key=os.urandom(transform.auth_key_size), salt=os.urandom(transform.salt_size),
        encap_udp=True, replay_window=1024)
    return OutboundSA(params), InboundSA(params)


def bench(transform: EspCipherSuite, packets: int) -> dict[str, object]:
    outbound, inbound = sa_pair(transform)
    inner = inner_packet()
    encapsulate, decapsulate = outbound.encapsulate, inbound.decapsulate
    t0 = time.perf_counter()
    sealed = [encapsulate(inner) for _ in range(packets)]
    t1 = time.perf_counter()
    for packet in sealed:
        decapsulate(packet)
    t2 = time.perf_counter()
    assert inbound.counters.packets == packets

    def rates(seconds: float) -> dict[str, float]:
        return {"pps": packets / seconds, "MBps": packets * INNER_SIZE / seconds / 1e6,
                "us_per_packet": seconds / packets * 1e6}

    return {"transform": transform.name, "packets": packets, "inner_bytes": INNER_SIZE,
            "esp_bytes": len(sealed[0]), "encapsulate": rates(t1 - t0), "decapsulate": rates(t2 - t1),
            "round_trip": rates(t2 - t0)}


def main(argv: list[str]) -> int:
    packets = int(argv[0]) if argv else 20_000
    runs = [bench(t, packets) for t in TRANSFORMS.values()]
    print(f"{'transform':32} {'encap MB/s':>10} {'encap pps':>10} {'decap MB/s':>10} {'decap pps':>10}")
    for r in runs:
        enc, dec = r["encapsulate"], r["decapsulate"]
        print(f"{r['transform']:32} {enc['MBps']:10.1f} {enc['pps']:10.0f} {dec['MBps']:10.1f} {dec['pps']:10.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                                   "runs": runs}, indent=2) + "\n")
    print(f"written {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
