"""The stack-wide memory limit (``TCPConfig.memory_limit``, Linux ``tcp_mem``) under
attack, in virtual time on a VirtualNetwork.

A hostile host opens 50 connections to a server and sends each of them
out-of-order data (holes it never fills while the attack lasts), again and again:
each connection alone stays within its receive buffer, together they would hold
far more than the stack's limit. A legitimate client transfers data to the same
server meanwhile.
"""

from __future__ import annotations

import ipaddress

import attrs
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.tcp.memory import FLOOR_SEGMENTS
from trio_tcp6.tcp.recvbuf import CHUNK_OVERHEAD, RANGE_OVERHEAD
from trio_tcp6.wire.ipv6 import PROTO_TCP, build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment, build_tcp, parse_tcp

from .helpers import A, B, receive_exactly

C = "2001:db8::c"
PB = ipaddress.IPv6Address(B).packed
PC = ipaddress.IPv6Address(C).packed

LIMIT = 512 << 10
ATTACK_CONNECTIONS = 50
PIECES = 20  # out-of-order pieces per connection and round
PIECE = 1200
#: Each attack stream: 1,000 bytes in order, then pieces of 1,200 every 2,400
#: bytes from 2,000 on (the holes are filled only when the attack is over).
TOTAL = 2000 + 2 * PIECE * PIECES
STREAM = bytes(range(251)) * (TOTAL // 251 + 1)
LEGIT = bytes(range(7, 256)) * 4211  # 1,048,539 bytes
MSS = 1440  # the VirtualNetwork's 1500-byte MTU less 60
ISS = 1000


@attrs.define
class RawConnection:
    """One of the attacker's connections: what the server acknowledged."""

    sport: int
    server_iss: int = 0
    acked: int = 0  # stream bytes acknowledged
    window: int = 0
    established: trio.Event = attrs.field(factory=trio.Event)
    progress: trio.Event = attrs.field(factory=trio.Event)


class Attacker:
    """Hand-made TCP from host C: handshakes, then whatever segments it likes."""

    def __init__(self, link: tcp6.VirtualLink) -> None:
        self.link = link
        self.conns: dict[int, RawConnection] = {}

    async def run(self) -> None:
        while True:
            pkt = parse_ipv6(await self.link.receive())
            if pkt.next_header != PROTO_TCP:
                continue
            seg = parse_tcp(pkt.payload)
            conn = self.conns.get(seg.dst_port)
            if conn is None:
                continue
            if seg.flags & SYN:
                conn.server_iss = seg.seq
                conn.established.set()
                continue
            acked = (seg.ack - ISS - 1) % 2**32
            if acked > conn.acked or not conn.acked:
                conn.acked = acked
                conn.progress.set()
                conn.progress = trio.Event()
            conn.window = seg.window

    async def send(self, conn: RawConnection, flags: int, offset: int, data: bytes = b"") -> None:
        seq = ISS + (0 if flags & SYN else 1 + offset)
        ack = 0 if flags & SYN else conn.server_iss + 1
        seg = TCPSegment(conn.sport, 80, seq, ack, flags, 65535, data, mss=MSS)
        body = build_tcp(seg, PC, PB)
        await self.link.send(build_ipv6_header(PC, PB, PROTO_TCP, len(body)) + body)

    async def open(self, sport: int) -> RawConnection:
        conn = self.conns[sport] = RawConnection(sport)
        await self.send(conn, SYN, 0)
        with trio.fail_after(5):
            await conn.established.wait()
        await self.send(conn, ACK, 0, STREAM[:1000])
        return conn

    async def flood_round(self) -> None:
        """Every connection's out-of-order pieces (what was pruned comes back)."""
        for conn in self.conns.values():
            for k in range(PIECES):
                off = 2000 + 2 * PIECE * k
                await self.send(conn, ACK, off, STREAM[off : off + PIECE])

    async def complete(self, conn: RawConnection) -> None:
        """Send the whole stream in order, clocked by the server's ACKs."""
        while conn.acked < TOTAL:
            off = conn.acked
            event = conn.progress
            for start in range(off, min(off + 4000, TOTAL), 1000):
                await self.send(conn, ACK, start, STREAM[start : min(start + 1000, TOTAL)])
            with trio.move_on_after(0.3):
                await event.wait()


async def test_attack_out_of_order_on_many_connections_stays_within_memory_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """50 connections each sent out-of-order data again and again: the stack holds
    at most the limit plus the per-connection floor (and a segment), reports the
    pressure, prunes and drops out-of-order data, never loses in-order data
    (every stream arrives byte-exact once the holes are filled), a legitimate
    transfer completes during the attack, and once the pressure is over the
    windows grow again."""
    config = tcp6.TCPConfig(memory_limit=LIMIT)
    net = tcp6.VirtualNetwork(delay=0.001)
    attacker = Attacker(net.attach(C))
    received: dict[int, bytearray] = {}
    legit_rx = bytearray()
    legit_done = trio.Event()
    legit_flows: list[tcp6.runtime.DirectFlow] = []
    peak_seen = 0
    pressure_seen = False
    async with (
        tcp6.open_stack(net.attach(A), A) as a,
        tcp6.open_stack(net.attach(B), B, config=config) as b,
        trio.open_nursery() as nursery,
    ):
        listener = await b.open_tcp_listener(80)

        async def read_all(flow: tcp6.runtime.DirectFlow, into: bytearray, n: int) -> None:
            while len(into) < n:
                chunk = await flow.receive_some(65536)
                assert chunk
                into += chunk

        async def serve() -> None:
            while True:
                flow = await listener.accept()
                host, port = flow.get_dest()
                if str(host) == A:
                    legit_flows.append(flow)
                    nursery.start_soon(read_all, flow, legit_rx, len(LEGIT))
                else:
                    received[port] = bytearray()
                    nursery.start_soon(read_all, flow, received[port], TOTAL)

        async def monitor() -> None:
            nonlocal peak_seen, pressure_seen
            while True:
                s = b.stats()
                peak_seen = max(peak_seen, s["memory_held"])
                pressure_seen = pressure_seen or s["memory_pressure"] == 1
                await trio.sleep(0.001)

        nursery.start_soon(attacker.run)
        nursery.start_soon(serve)
        nursery.start_soon(monitor)
        conns = [await attacker.open(40000 + i) for i in range(ATTACK_CONNECTIONS)]
        await attacker.flood_round()
        await trio.sleep(0.05)
        assert b.stats()["memory_pressure_episodes"] >= 1

        async def legit() -> None:
            flow = await a.open_tcp_stream(B, 80)
            await flow.send_all(LEGIT)
            with trio.fail_after(5):
                while len(legit_rx) < len(LEGIT):
                    await trio.sleep(0.01)
            legit_done.set()
            # One more byte once the pressure is over: the window it gets back.
            while b.stats()["memory_pressure"]:
                await trio.sleep(0.01)
            await flow.send_all(b"!")
            await trio.sleep(0.2)
            assert flow.info().snd_wnd > 512 << 10  # grew back towards 1 MiB
            await flow.aclose()

        nursery.start_soon(legit)
        rounds = 0
        while not legit_done.is_set():  # the attack goes on while the transfer runs
            await attacker.flood_round()
            rounds += 1
            await trio.sleep(0.1)
        assert bytes(legit_rx) == LEGIT
        stats = b.stats()
        # Without the limit the attack would make the stack hold this much:
        attempted = ATTACK_CONNECTIONS * PIECES * (PIECE + CHUNK_OVERHEAD + RANGE_OVERHEAD)
        bound = LIMIT + (ATTACK_CONNECTIONS + 1) * FLOOR_SEGMENTS * MSS + 65536
        assert attempted > bound
        assert stats["memory_held_peak"] <= bound
        assert peak_seen <= stats["memory_held_peak"]
        assert pressure_seen and stats["memory_pressure_episodes"] >= 1
        assert stats["memory_relief_walks"] >= 1
        assert stats["memory_ofo_pruned"] > 0
        assert stats["drop_memory_pressure"] > 0
        assert stats["memory_limit"] == LIMIT

        # The attack ends: the holes are filled, every stream arrives exact.
        async with trio.open_nursery() as fill:
            for conn in conns:
                fill.start_soon(attacker.complete, conn)
        with trio.fail_after(30):
            while any(len(r) < TOTAL for r in received.values()):
                await trio.sleep(0.01)
        assert len(received) == ATTACK_CONNECTIONS
        for r in received.values():
            assert bytes(r) == STREAM[:TOTAL]
        while legit_flows and b.stats()["memory_pressure"]:
            await trio.sleep(0.01)
        # Nothing held but what is in flight: the pressure is over, and each
        # attack connection is offered its whole window again.
        for conn in conns:
            await attacker.send(conn, ACK, TOTAL, b"x")
        await trio.sleep(0.1)
        assert b.stats()["memory_pressure"] == 0
        assert all(conn.window == 65535 for conn in conns)
        nursery.cancel_scope.cancel()
    net.close()


async def test_stack_stats_report_memory_without_pressure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An ordinary transfer: memory_held counts what is buffered and returns to 0
    once everything is read and acknowledged; the default limit is 64 MiB and no
    pressure is reported; ``memory_limit=None`` reports 0 (unlimited)."""
    net = tcp6.VirtualNetwork(delay=0.001)
    async with (
        tcp6.open_stack(net.attach(A), A) as a,
        tcp6.open_stack(net.attach(B), B, config=tcp6.TCPConfig(memory_limit=None)) as b,
    ):
        listener = await b.open_tcp_listener(80)
        client = await a.open_tcp_stream(B, 80)
        server = await listener.accept()
        await client.send_all(b"q" * 100_000)
        await trio.sleep(0.5)
        assert b.stats()["memory_held"] == 100_000  # unread, in order
        assert b.stats()["memory_limit"] == 0
        assert await receive_exactly(server, 100_000) == b"q" * 100_000
        assert b.stats()["memory_held"] == 0
        assert a.stats()["memory_held"] == 0  # all acknowledged
        assert a.stats()["memory_held_peak"] >= 100_000 - 65535
        sa = a.stats()
        assert sa["memory_limit"] == 64 << 20 and sa["memory_pressure"] == 0
        assert sa["memory_pressure_episodes"] == 0
        await client.aclose()
        await server.aclose()
    net.close()
