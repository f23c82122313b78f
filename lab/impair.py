"""Link impairment by name, without netem (this kernel has none).

    apply_impairment(node, "dlc1-eth0", Impairment(loss=30))   # nftables numgen drops
    apply_impairment(node, "dlc1-eth0", Impairment(blackhole=True))
    apply_impairment(node, "dlc1-eth0", Impairment(rate="1mbit"))  # tc tbf
    apply_impairment(node, "dlc1-eth0", Impairment(clear=True))

Loss and blackhole are an nftables table `dynipsec_impair` in the node's namespace that
drops packets leaving, entering or crossing the interface; the rate limit is a tbf
qdisc on the interface. Each runs inside the node (`node.popen`), so it goes away with
the node's namespace; `clear` removes both.
"""
from __future__ import annotations

import dataclasses
import subprocess

TABLE = "dynipsec_impair"


class ImpairError(RuntimeError):
    """nft or tc refused the impairment."""


@dataclasses.dataclass(frozen=True)
class Impairment:
    loss: int | None = None          # percent of packets dropped, 1..100
    blackhole: bool = False
    rate: str | None = None          # tc rate, e.g. "1mbit"
    clear: bool = False

    def describe(self) -> str:
        if self.clear:
            return "cleared"
        if self.blackhole:
            return "blackholed (every packet dropped)"
        if self.loss is not None:
            return f"{self.loss}% of packets dropped"
        return f"rate limited to {self.rate}"


def nft_ruleset(interface: str, loss: int | None) -> str:
    """Drops `loss` percent (None: all) of the packets through `interface`."""
    verdict = "drop" if loss is None or loss >= 100 else f"numgen random mod 100 < {loss} drop"
    chains = []
    for chain, hook, match in (("out", "output", "oifname"), ("in", "input", "iifname"),
                               ("fwd_out", "forward", "oifname"), ("fwd_in", "forward", "iifname")):
        chains.append(f"  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n"
                      f"    {match} \"{interface}\" {verdict}\n  }}\n")
    return f"table inet {TABLE} {{\n{''.join(chains)}}}\n"


def _run(node, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = node.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(stdin, timeout=15)
    return subprocess.CompletedProcess(argv, proc.returncode, out)


def clear_impairment(node, interface: str) -> None:
    """Removes the drop table and the qdisc; absent ones are fine."""
    _run(node, ["nft", "delete", "table", "inet", TABLE])
    _run(node, ["tc", "qdisc", "del", "dev", interface, "root"])


def apply_impairment(node, interface: str, impairment: Impairment) -> None:
    """Replaces whatever impairment the interface had by `impairment`."""
    clear_impairment(node, interface)
    if impairment.clear:
        return
    if impairment.rate:
        run = _run(node, ["tc", "qdisc", "replace", "dev", interface, "root", "tbf", "rate",
                          impairment.rate, "burst", "32kbit", "latency", "400ms"])
        what = "tc tbf"
    else:
        loss = None if impairment.blackhole else impairment.loss
        run = _run(node, ["nft", "-f", "-"], stdin=nft_ruleset(interface, loss))
        what = "nftables drop table"
    if run.returncode != 0:
        raise ImpairError(f"{what} on {interface} of {node.name}: {run.stdout.strip()}")
