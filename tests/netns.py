"""A network namespace for the bus, joined to the host by a veth pair, whose link can lose
packets: the field's bad cellular coverage, made by the kernel.

The kernel here has no netem qdisc (`tc qdisc add ... netem` says "Specified qdisc kind is
unknown"), so loss comes from nftables in the bus's namespace: `numgen random mod 100 <
LOSS drop` on its veth, in and out, so each direction loses LOSS % of its packets, TCP
segments and acknowledgements alike. 100 % is no coverage at all. Latency, which nothing
in the kernel can add here, comes from tests/delay_relay.py.

Names and the /30 subnet are drawn at random so two runs do not clash; the namespace, its
rules and both ends of the veth are removed on leaving, whatever happened inside.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

TABLE = "medicobus_faults"


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10)


@dataclass(frozen=True)
class BusNamespace:
    name: str
    host_if: str  # the host's end of the veth
    bus_if: str  # the bus's end, inside the namespace
    host_ip: str  # where the bus reaches the host
    bus_ip: str

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def loss(self, percent: int) -> None:
        """Each packet crossing the bus's veth, either way, is dropped with this chance."""
        nft = self.command("nft")
        _run(*nft, "flush", "table", "inet", TABLE)
        if percent <= 0:
            return
        chance = ["numgen", "random", "mod", "100", "<", str(percent)] if percent < 100 else []
        for chain, direction in (("incoming", "iifname"), ("outgoing", "oifname")):
            _run(*nft, "add", "rule", "inet", TABLE, chain, direction, self.bus_if, *chance,
                 "counter", "drop")

    def dropped(self) -> int:
        """Packets the loss rules have dropped so far."""
        out = subprocess.run([*self.command("nft"), "list", "table", "inet", TABLE],
                             check=True, capture_output=True, text=True, timeout=10).stdout
        words = out.split()
        return sum(int(words[i + 1]) for i, w in enumerate(words) if w == "packets")


@contextmanager
def bus_namespace() -> Iterator[BusNamespace]:
    tag = secrets.token_hex(3)
    subnet = 4 * secrets.randbelow(64)  # a /30 in 10.<200-249>.<0-255>.0/24
    prefix = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}"
    ns = BusNamespace(name=f"medicobus-{tag}", host_if=f"mbh{tag}", bus_if=f"mbb{tag}",
                      host_ip=f"{prefix}.{subnet + 1}", bus_ip=f"{prefix}.{subnet + 2}")
    try:
        _run("ip", "netns", "add", ns.name)
        _run("ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.bus_if)
        _run("ip", "link", "set", ns.bus_if, "netns", ns.name)
        # One wire-sized segment per packet (no GSO super-packets of 64 kB), so the loss
        # rules drop what a radio would lose, not a whole burst at once.
        _run("ip", "link", "set", ns.host_if, "gso_max_segs", "1", "gso_max_size", "1500")
        _run(*ns.command("ip", "link", "set", ns.bus_if, "gso_max_segs", "1",
                         "gso_max_size", "1500"))
        _run("ip", "addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        _run("ip", "link", "set", ns.host_if, "up")
        _run(*ns.command("ip", "addr", "add", f"{ns.bus_ip}/30", "dev", ns.bus_if))
        _run(*ns.command("ip", "link", "set", ns.bus_if, "up"))
        _run(*ns.command("ip", "link", "set", "lo", "up"))
        nft = ns.command("nft")
        _run(*nft, "add", "table", "inet", TABLE)
        _run(*nft, "add", "chain", "inet", TABLE, "incoming",
             "{ type filter hook input priority 0; }")
        _run(*nft, "add", "chain", "inet", TABLE, "outgoing",
             "{ type filter hook output priority 0; }")
        yield ns
    finally:
        # Deleting the namespace deletes its rules and its end of the veth, which takes the
        # host's end with it; the host's end is deleted too in case the namespace never got it.
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True, timeout=10)
