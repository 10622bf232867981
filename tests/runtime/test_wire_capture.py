"""What the stack puts on the wire, read by an independent decoder (tshark).

A tap between each stack and its link records every packet the stack hands to the
link, before the network impairs anything. Under 5% loss, reordering, duplication and
corruption, every one of those packets must be well formed with a good checksum: the
bad checksums tshark sees in a network-side capture are the network's doing, never
the stack's.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.links.base import Link, Packet
from trio_tcp6.wire.ipv6 import parse_ipv6
from trio_tcp6.wire.pcap import PcapWriter, read_pcap
from trio_tcp6.wire.tcp import SYN, parse_tcp

from .helpers import receive_all

A = "2001:db8:7a9::a"
B = "2001:db8:7a9::b"
# A port without a tshark dissector: the payload is random bytes, and decoding it as,
# say, TLS only produces application-level noise.
PORT = 47001

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


class Tap:
    """A link that records what the stack sends (only the basic Link protocol, so the
    stack uses plain ``send``/``receive`` and computes every checksum itself)."""

    def __init__(self, link: Link, writer: PcapWriter) -> None:
        self._link = link
        self._writer = writer
        self.count = 0

    @property
    def mtu(self) -> int:
        return self._link.mtu

    async def send(self, packet: Packet) -> None:
        self._writer.write(bytes(packet), trio.current_time())
        self.count += 1
        await self._link.send(packet)

    async def receive(self) -> bytes:
        return await self._link.receive()


def tshark_rows(path: Path) -> list[list[str]]:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-o",
            "tcp.check_checksum:TRUE",
            # Our port carries raw bytes: no heuristic dissector may claim (and try to
            # reassemble) them, or a re-segmented retransmission looks "malformed".
            "-d",
            f"tcp.port=={PORT},data",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "ipv6.nxt",
            "-e",
            "tcp.checksum.status",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.parametrize("seed", [11, 12])
async def test_packets_the_stack_sends_are_clean_under_impairment(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    rng = random.Random(seed)
    up, down = rng.randbytes(600_000), rng.randbytes(400_000)
    net = tcp6.VirtualNetwork(
        seed=seed, delay=0.005, loss=0.05, reorder=0.05, duplicate=0.05, corrupt=0.05
    )
    sent_pcap, wire_pcap = tmp_path / "sent.pcap", tmp_path / "wire.pcap"
    capture = net.capture(str(wire_pcap))
    with PcapWriter(str(sent_pcap)) as writer:
        tap_a, tap_b = Tap(net.attach(A), writer), Tap(net.attach(B), writer)
        async with tcp6.open_stack(tap_a, A) as a, tcp6.open_stack(tap_b, B) as b:
            listener = await b.open_tcp_listener(PORT)
            client = await a.open_tcp_stream(B, PORT)
            server = await listener.accept()
            got: dict[str, bytes] = {}

            async def one_way(name: str, src: tcp6.Flow, dst: tcp6.Flow, data: bytes) -> None:
                async def pump() -> None:
                    await src.send_all(data)
                    await src.send_eof()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(pump)
                    got[name] = await receive_all(dst)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(one_way, "up", client, server, up)
                nursery.start_soon(one_way, "down", server, client, down)
            assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
            assert hashlib.sha256(got["down"]).digest() == hashlib.sha256(down).digest()
            await client.aclose()
            await server.aclose()
    capture.close()
    stats = net.stats()
    assert stats["corrupted"] > 0 and stats["dropped_loss"] > 0 and stats["duplicated"] > 0

    # Every retransmission carries exactly the bytes first sent at those sequence
    # numbers (tshark only checks headers and checksums).
    first_sent: dict[tuple[bytes, int, int], int] = {}
    overlapping = 0
    for _ts, packet in read_pcap(str(sent_pcap)):
        ip = parse_ipv6(packet)
        seg = parse_tcp(ip.payload)
        start = seg.seq + (1 if seg.flags & SYN else 0)
        for i, byte in enumerate(seg.payload):
            key = (bytes(ip.src), seg.src_port, (start + i) & 0xFFFFFFFF)
            if key in first_sent:
                overlapping += 1
                assert first_sent[key] == byte, f"retransmission differs at {key}"
            else:
                first_sent[key] = byte
    assert overlapping > 0  # there were retransmissions to compare

    sent = tshark_rows(sent_pcap)
    assert len(sent) == tap_a.count + tap_b.count > 500
    assert all(row[1] == "6" for row in sent), "only TCP was sent"
    assert [r for r in sent if r[3]] == [], "malformed packets from the stack"
    assert [r for r in sent if r[2] != "1"] == [], "bad TCP checksums from the stack"

    # Control: the network-side capture does show the corruption the stacks survived,
    # so the checksum check above is live. (A corrupted packet may also be duplicated.)
    wire = tshark_rows(wire_pcap)
    assert 0 < sum(1 for r in wire if r[2] == "0") <= stats["corrupted"] + stats["duplicated"]
