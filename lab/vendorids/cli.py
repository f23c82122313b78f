"""`dynipsec lab vendor-ids`: the vendor-ID table against dynipsec and/or the
reference strongSwan gateway in a small lab of its own.

    dynipsec lab vendor-ids [--gateway dynipsec|strongswan|both] [--out DIR] [--cases FILE]

Prints the matrix, writes vendor-ids.md / vendor-ids.json and the evidence
(capture, gateway logs, the ISAKMP frames tshark read, the initiator's views)
into DIR (default runs/<timestamp>/vendor-ids/); exit status 1 when a row
failed, 2 for a bad case file or arguments.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["register", "cmd_vendor_ids"]

GATEWAY_CHOICES = {"dynipsec": ("dynipsec",), "strongswan": ("strongswan",),
                   "both": ("dynipsec", "strongswan")}


def register(cmds) -> None:
    parser = cmds.add_parser(
        "vendor-ids", help="run the vendor-ID case table against the gateways in a lab",
        description="Builds a small lab (its own prefix), runs every case of the vendor-ID "
                    "table (lab/vendorids/cases.yaml) with the project's initiator, and the "
                    "real strongSwan/vpnc clients where a case names one, against dynipsec "
                    "and/or the reference strongSwan gateway; prints the matrix and writes "
                    "it as Markdown and JSON with the evidence. Needs root.")
    parser.add_argument("--gateway", choices=sorted(GATEWAY_CHOICES), default="both")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: runs/<timestamp>/vendor-ids/)")
    parser.add_argument("--cases", type=Path, default=None,
                        help="case file (default: lab/vendorids/cases.yaml)")
    parser.add_argument("--case", action="append", default=[], metavar="ID",
                        help="only this case (repeatable)")
    parser.add_argument("--no-real-clients", action="store_true",
                        help="skip the real strongSwan/vpnc client runs")
    parser.add_argument("--topology", default="default")
    parser.add_argument("--clients", type=int, default=4, help="access-LAN clients (default 4)")
    parser.add_argument("--prefix", default="dv", help="lab name prefix (default dv)")
    parser.set_defaults(func=cmd_vendor_ids)


def cmd_vendor_ids(args) -> int:
    from lab.engine import Lab
    from lab.topology import TopologyError, load_topology
    from lab.vendorids.cases import DEFAULT_CASES, CaseFileError, load_cases
    from lab.vendorids.report import print_matrix, run_matrix

    try:
        table = load_cases(args.cases or DEFAULT_CASES)
        cases = [table.case(case_id) for case_id in args.case] or None
        topology = load_topology(args.topology).with_overrides(clients=args.clients,
                                                               prefix=args.prefix)
    except (CaseFileError, TopologyError, KeyError) as exc:
        print(f"dynipsec lab vendor-ids: {exc}", file=sys.stderr)
        return 2
    with Lab(topology) as lab:
        out_dir = args.out or lab.run_dir / "vendor-ids"
        results = run_matrix(lab, table, GATEWAY_CHOICES[args.gateway], out_dir, cases,
                             real_clients=not args.no_real_clients)
        pcap = lab.run_dir / "router-public.pcap"
    # the capture is complete once the lab stopped it
    if out_dir.resolve() != pcap.parent.resolve():
        shutil.copy2(pcap, out_dir / pcap.name)
    print_matrix(results)
    failed = [r for r in results if not r.passed]
    print(f"{len(results)} rows, {len(failed)} failed; report: {out_dir / 'vendor-ids.md'}")
    return 1 if failed else 0
