#!/usr/bin/env python3
"""Hostile soak: one million hostile datagrams into one `Responder`, in memory.

The mix (see `CATEGORIES`) replays the patterns of tests/unit/test_hostile_*:
the IKEv1 CVE patterns (R-U-THERE on unknown SAs, wrong ISAKMP versions,
Informationals with a bad HASH, bogus encrypted Informationals, Aggressive
Mode with only unacceptable proposals and its reused responder cookie, Quick
Mode IDcr of the wrong type, Delete-then-notify on a dead SA, fragments with
ID 0), ike-scan's probes (default Main Mode transforms, `--aggressive
--id=nosuchgroup`, bent headers) and random mutations of a recorded login,
from 512 spoofed sources on ports 500 and 4500. One real SA (MM + QM) is
established first; its peer stays alive (data-path activity every 5 s of the
fake clock, which advances 1 ms per datagram so half-open SAs time out).

Printed and written to bench/results/hostile_soak.json: datagrams/s (wall and
process CPU), resident memory (VmRSS) before and after and the delta,
exceptions (must be 0), whether the real SA survived untouched, the engine's
counters.

    .venv/bin/python bench/hostile_soak.py                 # 1,000,000 datagrams
    .venv/bin/python bench/hostile_soak.py --count 20000   # quick run
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import struct
import sys
import time
import traceback
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from responder.ikev1.enums import (  # noqa: E402
    EncryptionAlgorithm,
    ExchangeType,
    GroupDescription,
    HashAlgorithm,
    HeaderFlag,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from responder.ikev1.events import Phase1Established  # noqa: E402
from responder.ikev1.payloads import (  # noqa: E402
    Delete,
    Fragment,
    Hash,
    Identification,
    Notification,
    VendorId,
)

from clients.ikev1_initiator.stepwise import ike_transform  # noqa: E402
from clients.ikev1_initiator.pair import make_pair  # noqa: E402
from tests.unit.test_hostile_cve import bad_hash_informational, raw  # noqa: E402
from tests.unit.test_hostile_ikescan import BENT, aggressive_probe, main_mode_probe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MM, AM, QM, INFO = (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE,
                    ExchangeType.QUICK_MODE, ExchangeType.INFORMATIONAL)
ENC = HeaderFlag.ENCRYPTION
LOCAL_500, LOCAL_4500 = ("198.18.0.1", 500), ("198.18.0.1", 4500)


def rss_kib() -> int:
    """Current resident set size (VmRSS) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def established():
    """The one real SA: Main Mode + Quick Mode, peer at 198.18.1.2:500."""
    pair = make_pair(seed=7)
    pair.main_mode(float_to=None)
    pair.quick_mode()
    pair.collect()
    return pair


def record_login() -> list[bytes]:
    """Datagrams of another login (other keys) to mutate."""
    pair = make_pair(seed=8)
    i = pair.initiator
    out = [i.main_mode_1()]
    [reply] = pair.send(out[-1])
    i.handle_main_mode_2(reply)
    out.append(i.main_mode_3())
    [reply] = pair.send(out[-1])
    i.handle_main_mode_4(reply)
    out.append(i.main_mode_5())
    [reply] = pair.send(out[-1])
    i.handle_main_mode_6(reply)
    run, qm1 = i.quick_mode_1()
    out.append(qm1)
    [reply] = pair.send(qm1)
    i.handle_quick_mode_2(run, reply)
    out += [i.quick_mode_3(run), i.r_u_there(1), i.delete_phase1()]
    am = make_pair(seed=9)
    out.append(am.initiator.aggressive_1())
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        n = len(data)
        kind = rng.randrange(9)
        if n < 28 or kind == 0:
            data = data[:rng.randrange(max(n, 1))]
        elif kind == 1:
            data = data + rng.randbytes(rng.randint(1, 32))
        elif kind == 2:
            data = data[:24] + struct.pack("!I", rng.choice([0, n - 4, n + 4, rng.getrandbits(32)])) \
                + data[28:]
        elif kind == 3:
            at = rng.randrange(16, 20)
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
        elif kind == 4:
            data = data[:20] + rng.randbytes(4) + data[24:]
        elif kind == 5:
            data = data[:8] + rng.choice([bytes(8), rng.randbytes(8)]) + data[16:]
        elif kind == 6 and n > 32:
            at = rng.randrange(28, n - 4)  # a would-be payload length
            data = data[:at + 2] + struct.pack("!H", rng.choice([0, 3, 4, 0xFFFF])) + data[at + 4:]
        else:
            bit = rng.randrange(n * 8)
            data = data[:bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1:]
    return data


def build_pool(pair, rng: random.Random, size: int) -> list[tuple[str, bytes]]:
    i = pair.initiator
    cookies = i.cky_i + i.cky_r
    recorded = record_login()
    bad_am = [ike_transform(1, encryption=EncryptionAlgorithm.DES_CBC, key_length=None,
                            hash_alg=HashAlgorithm.MD5, group=GroupDescription.MODP_768)]
    am_pair = make_pair(seed=10, initiator_kwargs=dict(identity=Identification.key_id("grp"),
                                                       transforms=bad_am))
    am_refused = am_pair.initiator.aggressive_1()
    [notify] = am_pair.send(am_refused)
    refused_cky_r = notify[8:16]
    # a correctly keyed Quick Mode with an FQDN IDcr (CVE-2023-38711): refused, then
    # answered from the reply cache
    _, qm_bad_id = i.quick_mode_1(ids=(Identification.ipv4_address("198.18.1.2"),
                                       Identification.fqdn("gw.example")))
    version_probe = bytearray(raw(i.cky_i, i.cky_r, INFO, [Notification(
        NotifyType.R_U_THERE, spi=cookies, data=bytes(4))], mid=3))

    def rc(n=8):
        return rng.randbytes(n)

    def category(name: str) -> bytes:
        if name == "dpd_unknown_sa":
            c = rc(16)
            return raw(c[:8], c[8:], INFO, [Notification(NotifyType.R_U_THERE, spi=c,
                                                         data=rc(4))], mid=rng.getrandbits(32))
        if name == "wrong_version":
            data = bytearray(version_probe)
            data[17] = rng.choice([0x20, 0x11, 0x00, 0x21, 0xFF])
            return bytes(data)
        if name == "bad_hash_informational":
            return bad_hash_informational(i, [rng.choice([
                Delete(ProtocolId.ISAKMP, [cookies]),
                Notification(NotifyType.R_U_THERE, spi=cookies, data=rc(4))])],
                mid=rng.getrandbits(32) | 1, digest=rc(20))
        if name == "bogus_encrypted_informational":
            return raw(rc(), rng.choice([bytes(8), rc(), i.cky_r]), INFO, [], flags=ENC,
                       mid=rng.getrandbits(32), body=rc(rng.choice([16, 32, 48])),
                       first=PayloadType.HASH)
        if name == "aggressive_no_proposal":
            return am_refused
        if name == "reused_responder_cookie":
            return raw(am_refused[:8], refused_cky_r, rng.choice([AM, INFO, QM]),
                       [Hash(rc(20))], mid=rng.getrandbits(32))
        if name == "quick_mode_wrong_idcr":
            return qm_bad_id
        if name == "delete_then_notify_dead_sa":
            c = rc(16)
            return raw(c[:8], c[8:], INFO, [Delete(ProtocolId.ISAKMP, [c]), Notification(
                NotifyType.R_U_THERE, spi=c, data=rc(4))], mid=rng.getrandbits(32))
        if name == "fragment_id_zero":
            return raw(rng.choice([rc(), i.cky_i]), rng.choice([i.cky_r, rc()]),
                       rng.choice([MM, AM, INFO]),
                       [Fragment(0, rng.choice([0, 1, 255]), rc(rng.randrange(16)),
                                 rng.choice([0, 1]))])
        if name == "ike_scan_main_mode":
            return main_mode_probe(cookie=rc())
        if name == "ike_scan_aggressive_nosuchgroup":
            return aggressive_probe("nosuchgroup", cookie=rc())
        if name == "ike_scan_bent":
            return rng.choice(list(BENT.values()))(main_mode_probe(cookie=rc()))
        if name == "ikev2_payloads":
            return raw(rc(), bytes(8), MM, [VendorId(rc(16))], first=rng.choice([33, 34, 40]))
        if name == "mutated_login":
            return mutate(rng, rng.choice(recorded))
        if name == "mutated_own_sa":
            base = rng.choice(recorded)
            return mutate(rng, cookies + base[16:])
        raise ValueError(name)

    return [(name, category(name)) for name in (rng.choice(CATEGORIES) for _ in range(size))]


CATEGORIES = [
    "dpd_unknown_sa", "wrong_version", "bad_hash_informational",
    "bogus_encrypted_informational", "aggressive_no_proposal", "reused_responder_cookie",
    "quick_mode_wrong_idcr", "delete_then_notify_dead_sa", "fragment_id_zero",
    "ike_scan_main_mode", "ike_scan_aggressive_nosuchgroup", "ike_scan_bent",
    "ikev2_payloads", "mutated_login", "mutated_login", "mutated_own_sa", "mutated_own_sa",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="datagrams to feed")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct datagrams built")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default=str(RESULTS / "hostile_soak.json"))
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the engine logs every refusal

    rng = random.Random(args.seed)
    pair = established()
    r = pair.responder
    [est] = [e for e in pair.events if isinstance(e, Phase1Established)]
    sa = r.sa(est.sa_id)
    real = (sa.remote, sa.local, sa.established_at, sorted(sa.children))
    sa_id = est.sa_id

    def real_now():
        sa = r.sa(sa_id)
        return None if sa is None else (sa.remote, sa.local, sa.established_at,
                                        sorted(sa.children))
    pool = build_pool(pair, rng, args.pool)
    sources = [(f"203.0.113.{n}", 500) for n in range(256)] + \
        [(f"198.51.100.{n}", 4500) for n in range(256)]
    plan = [(name, data, rng.choice(sources)) for name, data in pool]

    rss_before = rss_kib()
    exceptions: dict[str, int] = {}
    first_traceback = ""
    #: the first datagram after which the real SA differed, and how
    first_change: dict | None = None
    rss_warm = None  # after the first tenth: the half-open table has filled
    warm_at = max(args.count // 10, 1)
    sent = 0
    max_sas = 0
    now = pair.now
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for n in range(args.count):
        name, data, source = plan[n % len(plan)]
        now += 0.001
        local = LOCAL_500 if source[1] == 500 else LOCAL_4500
        try:
            r.receive_datagram(data if source[1] == 500 else bytes(4) + data, local, source, now)
            if n == warm_at:
                rss_warm = rss_kib()
            if n % 5000 == 0:  # every 5 s of the fake clock
                r.note_peer_activity(sa_id, now)  # the real peer's ESP
                max_sas = max(max_sas, r.sa_count)
            if n % 64 == 0:
                timer = r.get_timer()
                if timer is not None and timer <= now:
                    r.handle_timer(now)
            sent += len(r.datagrams_to_send())
            if first_change is None and real_now() != real:
                first_change = {"datagram": n, "category": name, "source": list(source),
                                "data_hex": data.hex(), "before": repr(real),
                                "after": repr(real_now())}
            for _ in r.events():
                pass
        except Exception:  # noqa: BLE001 - counted: the soak's verdict
            exceptions[name] = exceptions.get(name, 0) + 1
            if not first_traceback:
                first_traceback = traceback.format_exc()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss_after = rss_kib()

    survived = real_now() == real
    results = {
        "python": platform.python_version(), "machine": platform.machine(),
        "datagrams": args.count, "distinct_datagrams": len(pool), "seed": args.seed,
        "datagrams_per_s_wall": round(args.count / wall),
        "datagrams_per_s_cpu": round(args.count / cpu) if cpu else None,
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "rss_kib_before": rss_before, "rss_kib_after": rss_after,
        "rss_kib_delta": rss_after - rss_before,
        "rss_kib_after_first_tenth": rss_warm,
        "rss_kib_delta_after_first_tenth": None if rss_warm is None else rss_after - rss_warm,
        "replies_sent": sent, "sa_count_end": r.sa_count, "sa_count_max_sampled": max_sas,
        "exceptions": exceptions, "real_sa_untouched": survived,
        "real_sa_first_change": first_change,
        "mix": {c: sum(1 for name, _ in pool if name == c) for c in sorted(set(CATEGORIES))},
        "stats": dict(sorted(r.stats.items())),
    }
    print(f"hostile soak: {args.count:,} datagrams ({len(pool):,} distinct, {len(sources)} sources)")
    print(f"  {results['datagrams_per_s_wall']:,} datagrams/s wall, "
          f"{results['datagrams_per_s_cpu']:,} datagrams/s CPU ({wall:.1f} s)")
    print(f"  RSS {rss_before:,} KiB before, {rss_after:,} KiB after, delta "
          f"{rss_after - rss_before:+,} KiB"
          + (f"; {rss_after - rss_warm:+,} KiB since the first tenth ({rss_warm:,} KiB)"
             if rss_warm is not None else ""))
    print(f"  replies sent {sent:,}; SAs at the end {r.sa_count} (max sampled {max_sas})")
    print(f"  exceptions: {sum(exceptions.values())} {exceptions or ''}")
    print(f"  real SA untouched: {survived}")
    if first_change:
        print(f"  first change after datagram {first_change['datagram']:,} "
              f"({first_change['category']} from {first_change['source']}): "
              f"{first_change['before']} -> {first_change['after']}")
    if first_traceback:
        print(first_traceback)
    output = Path(args.output)
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {output}")
    return 0 if not exceptions and survived else 1


if __name__ == "__main__":
    sys.exit(main())
