"""SACK fragmentation (issue 9 item 1, the CVE-2019-11478 class).

A receiver announcing MSS 64 (52-byte segments with timestamps) lets the sender fill
a 312 kB window (6,000 segments), then freezes the cumulative ACK and sends ACKs that
each carry three 1-byte SACK blocks, every block inside a different segment, so that
a scoreboard splitting records at any byte grows by up to six records per ACK.

Two scenarios:

* engine: a real :class:`~trio_tcp6.tcp.connection.Connection` sender driven by a
  hand-written hostile receiver, back to back in virtual time; CPU per attacking ACK
  is measured around ``on_segment`` (real time), per slice of the attack's history;
* stack: a :class:`~trio_tcp6.runtime.DirectStack` on a VirtualNetwork serving two
  flows: one to the attacker (a raw link speaking TCP by hand), one 2 MB transfer to
  an honest stack; the victim's completion time is wall-clock (no MockClock), since
  starvation is CPU time taken from it.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter

import trio

import trio_tcp6 as tcp6
from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.wire.ipv6 import build_ipv6_header, parse_ipv6
from trio_tcp6.wire.tcp import ACK, SYN, TCPSegment, build_tcp_header, parse_tcp

__all__ = ["BEFORE", "engine_attack", "run", "stack_attack"]

#: The issue's "before" figures (issue 9 item 1, measured by the security review).
BEFORE = {
    "engine, 1-byte SACKs: CPU per attacking ACK, ACKs 1-1000": "67 µs (first ACKs)",
    "engine, 1-byte SACKs: CPU per attacking ACK, ACKs 5001-6000": "5.9 ms (last ACKs)",
    "engine, 1-byte SACKs: scoreboard records, before -> after the attack": "6k -> 36k",
    "engine, 1-byte SACKs: retransmission sizes": "1-2 byte pieces",
    "stack: victim 2 MB transfer alone": "0.1 s",
    "stack: victim 2 MB transfer during the attack": "23.5 s",
}

PEER_ISS = 7000
M = 0xFFFFFFFF
#: The attacker's announced MSS: the stack's minimum path MSS (64), 52 bytes of
#: payload once the timestamps option is subtracted.
ATTACK_MSS = 64
WSCALE = 7


class HostileReceiver:
    """The receiving end of the attack, speaking TCP by hand to one sender."""

    def __init__(self, window_bytes: int) -> None:
        self.window = -(-window_bytes // (1 << WSCALE))
        self.ts = 1000
        self.tsecr = 0
        self.highest = 0  # highest sequence offset (from the sender's ISS) received

    def synack(self, syn: TCPSegment) -> TCPSegment:
        assert syn.timestamps is not None
        self.iss = syn.seq
        return TCPSegment(
            syn.dst_port, syn.src_port, PEER_ISS, (syn.seq + 1) & M, SYN | ACK, 65535,
            mss=ATTACK_MSS, wscale=WSCALE, sack_permitted=True,
            timestamps=(self.ts, syn.timestamps[0]),
        )  # fmt: skip

    def saw(self, seg: TCPSegment) -> None:
        if seg.timestamps is not None:
            self.tsecr = seg.timestamps[0]
        end = ((seg.seq - self.iss) & M) + len(seg.payload)
        self.highest = max(self.highest, end)

    def ack(
        self, src: int, dst: int, una: int, blocks: tuple[tuple[int, int], ...] = ()
    ) -> TCPSegment:
        """An ACK of offset ``una`` with SACK blocks given as offsets."""
        self.ts += 1
        iss = self.iss
        return TCPSegment(
            src, dst, (PEER_ISS + 1) & M, (iss + una) & M, ACK, self.window,
            sack_blocks=tuple(((iss + s) & M, (iss + e) & M) for s, e in blocks),
            timestamps=(self.ts, self.tsecr),
        )  # fmt: skip


def attack_blocks(
    k: int, una: int, segments: int, mss: int, whole: bool = False
) -> tuple[tuple[int, int], ...]:
    """ACK ``k``'s three SACK blocks (offsets from the ISS, the flight starting at
    ``una``). 1-byte blocks (the issue's attack): block ``j`` lies in segment
    ``j % segments`` at byte ``1 + 2 * (j // segments)`` of it, each in a different,
    not yet SACKed piece of a segment. ``whole``: each block is one whole segment,
    the odd-numbered ones in a scattered order, leaving a hole between any two."""
    out = []
    for j in range(3 * k, 3 * k + 3):
        if whole:
            seg = 2 * (j * 2654435761 % (segments // 2)) + 1
            s = una + seg * mss
            out.append((s, s + mss))
            continue
        seg = j % segments
        byte = 1 + 2 * (j // segments)
        s = una + seg * mss + byte % mss
        out.append((s, s + 1))
    return tuple(out)


def engine_attack(
    segments: int = 6000, acks: int = 6000, slices: int = 6, whole: bool = False
) -> dict[str, object]:
    """Run the engine scenario; returns its figures."""
    cfg = TCPConfig(delayed_ack=None)
    stats: Counter[str] = Counter()
    now = 0.0
    a = Connection.connect(
        cfg, local_port=1111, remote_port=80, iss=1000, mss=1440, now=now, stats=stats
    )
    mss = ATTACK_MSS - 12
    rx = HostileReceiver(segments * mss)
    (syn,) = a.take_segments()
    now += 0.01
    a.on_segment(rx.synack(syn), now)
    for s in a.take_segments():
        rx.saw(s)
    a.send(bytes(cfg.send_buffer), now)
    # Ramp up: acknowledge everything once per 10 ms round trip until the window is
    # full (slow start doubles the flight each round).
    while True:
        segs = a.take_segments()
        for s in segs:
            rx.saw(s)
        if rx.highest - _una(a) > (segments - 1) * mss or not segs:
            break
        now += 0.01
        for seg in [*segs[1::2], segs[-1]]:
            a.on_segment(rx.ack(80, 1111, _end(seg, rx)), now)
    una = _una(a)
    records_before = _records(a)
    retx_sizes: Counter[int] = Counter()
    per_slice: list[float] = []
    t_slice = 0.0
    slice_len = max(acks // slices, 1)
    highest_sent = rx.highest
    for k in range(acks):
        now += 10e-6
        seg = rx.ack(80, 1111, una, attack_blocks(k, una, segments, mss, whole))
        t0 = time.perf_counter()
        a.on_segment(seg, now)
        out = a.take_segments()
        d = a.next_deadline
        if d is not None and d <= now:
            a.on_timer(now)
            out += a.take_segments()
        t_slice += time.perf_counter() - t0
        for s in out:
            off = (s.seq - rx.iss) & M
            if s.payload and off < highest_sent:
                retx_sizes[len(s.payload)] += 1
            rx.saw(s)
            highest_sent = max(highest_sent, rx.highest)
        if (k + 1) % slice_len == 0:
            per_slice.append(t_slice / slice_len)
            t_slice = 0.0
    return {
        "mss": mss,
        "records_before": records_before,
        "records_after": _records(a),
        "per_slice": per_slice,
        "slice_len": slice_len,
        "retx_sizes": retx_sizes,
        "stats": stats,
    }


def _end(seg: TCPSegment, rx: HostileReceiver) -> int:
    return ((seg.seq - rx.iss) & M) + len(seg.payload)


def _una(c: Connection) -> int:
    return (c.snd_una - c.iss) & M


def _records(c: Connection) -> int:
    n = c.info().scoreboard_records
    assert isinstance(n, int)
    return n


def run(quick: bool) -> list[tuple[str, str]]:
    """The figures for the benchmark table (``quick``: a 1,500-segment window)."""
    n = 1500 if quick else 6000
    rows: list[tuple[str, str]] = []
    for whole, name in ((False, "1-byte SACKs"), (True, "whole-segment SACKs")):
        r = engine_attack(n, n, whole=whole)
        per_slice = r["per_slice"]
        step = r["slice_len"]
        sizes = r["retx_sizes"]
        assert isinstance(per_slice, list) and isinstance(step, int)
        assert isinstance(sizes, Counter)
        for i, t in enumerate(per_slice):
            label = f"engine, {name}: CPU per attacking ACK, ACKs {i * step + 1}-{(i + 1) * step}"
            rows.append((label, f"{t * 1e6:.0f} µs"))
        rows.append(
            (
                f"engine, {name}: scoreboard records, before -> after the attack",
                f"{r['records_before']} -> {r['records_after']}",
            )
        )
        rows.append((f"engine, {name}: retransmission sizes", _sizes(sizes)))
    out = trio.run(stack_attack, n, n)
    rows.append(("stack: victim 2 MB transfer alone", f"{out['victim_alone']:.2f} s"))
    rows.append(("stack: victim 2 MB transfer during the attack", _secs(out["victim_attacked"])))
    rows.append((f"stack: {n} attacking ACKs processed in", _secs(out["attack"])))
    rows.append(
        (
            "stack: retransmissions shorter than the MSS / all",
            f"{out['retx_small']:.0f} / {out['retx']:.0f}",
        )
    )
    return rows


def _secs(t: float) -> str:
    return f"{t:.2f} s" if t != float("inf") else "not done in 60 s"


def _sizes(c: Counter[int]) -> str:
    if not c:
        return "none"
    return ", ".join(f"{n}x{size} B" for size, n in sorted(c.items())[:6])


# -- stack scenario -------------------------------------------------------------------
SERVER = "2001:db8::a"
HONEST = "2001:db8::b"
ATTACKER = "2001:db8::666"
VICTIM_BYTES = 2_000_000


class RawPeer:
    """The attacker on the VirtualNetwork: a bare link that speaks TCP by hand."""

    def __init__(self, link: tcp6.VirtualLink, server: str, port: int) -> None:
        self.link = link
        self.src = ipaddress.IPv6Address(ATTACKER).packed
        self.dst = ipaddress.IPv6Address(server).packed
        self.port = port
        self.rx = HostileReceiver(0)
        self.retx_sizes: Counter[int] = Counter()
        self.highest_sent = 0

    async def send(self, seg: TCPSegment) -> None:
        tcp = build_tcp_header(seg, self.src, self.dst)
        await self.link.send(build_ipv6_header(self.src, self.dst, 6, len(tcp)) + tcp)

    def parse(self, data: bytes) -> TCPSegment | None:
        pkt = parse_ipv6(data)
        if pkt.next_header != 6:
            return None
        return parse_tcp(pkt.payload)

    async def handshake(self, window_bytes: int) -> None:
        self.rx = HostileReceiver(window_bytes)
        syn = TCPSegment(
            4000, self.port, 1, 0, SYN, 65535, mss=ATTACK_MSS, wscale=WSCALE,
            sack_permitted=True, timestamps=(1, 0),
        )  # fmt: skip
        await self.send(syn)
        while True:
            seg = self.parse(await self.link.receive())
            if seg is not None and seg.syn:
                break
        self.rx.iss = seg.seq
        self.rx.tsecr = seg.timestamps[0] if seg.timestamps else 0
        self.seq = 2
        await self.send(self.ack(1))

    def ack(self, una: int, blocks: tuple[tuple[int, int], ...] = ()) -> TCPSegment:
        a = self.rx.ack(4000, self.port, una, blocks)
        return TCPSegment(
            a.src_port, a.dst_port, 2, a.ack, ACK, a.window, sack_blocks=a.sack_blocks,
            timestamps=a.timestamps,
        )  # fmt: skip

    def saw(self, seg: TCPSegment) -> None:
        off = (seg.seq - self.rx.iss) & M
        if seg.payload and off < self.highest_sent:
            self.retx_sizes[len(seg.payload)] += 1
        self.rx.saw(seg)
        self.highest_sent = max(self.highest_sent, self.rx.highest)

    async def ramp(self, flight: int) -> int:
        """Acknowledge what arrives, one round at a time, until ``flight`` bytes are
        outstanding; returns the frozen cumulative ACK."""
        una = 1
        while True:
            await trio.sleep(0.002)  # one "round trip": let the stack send its window
            ends = []
            while (data := self.link.receive_nowait()) is not None:
                seg = self.parse(data)
                if seg is not None and seg.payload:
                    self.saw(seg)
                    ends.append(self.rx.highest)
            if self.rx.highest - una >= flight:
                return una
            for end in ends[1::2] + ends[-1:]:
                await self.send(self.ack(end))
            if ends:
                una = ends[-1]

    async def drain(self) -> None:
        while True:
            seg = self.parse(await self.link.receive())
            if seg is not None:
                self.saw(seg)


async def stack_attack(
    segments: int = 6000, acks: int = 6000, cap: float = 60.0
) -> dict[str, float]:
    """Run the stack scenario in real time; returns victim/attack durations in
    seconds (``inf``: not done within ``cap`` seconds)."""
    net = tcp6.VirtualNetwork()
    server_link = net.attach(SERVER)
    mss = ATTACK_MSS - 12
    out: dict[str, float] = {}
    async with (
        # No HyStart: in real time the attacker's own round trips grow with the
        # flight, and HyStart would make the ramp to the full window take minutes.
        tcp6.open_stack(server_link, SERVER, config=TCPConfig(hystart=False)) as server,
        tcp6.open_stack(net.attach(HONEST), HONEST) as honest,
        trio.open_nursery() as nursery,
    ):
        payload = bytes(VICTIM_BYTES)

        async def serve(listener: tcp6.DirectListener, data: bytes) -> None:
            while True:
                flow = await listener.accept()
                nursery.start_soon(flow.send_all, data)

        victim_l = await server.open_tcp_listener(81)
        attack_l = await server.open_tcp_listener(80)
        nursery.start_soon(serve, victim_l, payload)
        nursery.start_soon(serve, attack_l, bytes(4 << 20))

        async def victim() -> float:
            t0 = time.perf_counter()
            flow = await honest.open_tcp_stream(SERVER, 81)
            got = 0
            while got < VICTIM_BYTES:
                got += len(await flow.receive_some(1 << 20))
            await flow.aclose()
            return time.perf_counter() - t0

        out["victim_alone"] = await victim()
        peer = RawPeer(net.attach(ATTACKER, rx_queue=1 << 16), SERVER, 80)
        await peer.handshake(segments * mss)
        una = await peer.ramp((segments - 1) * mss)
        nursery.start_soon(peer.drain)
        underway = trio.Event()

        async def attack() -> None:
            t0 = time.perf_counter()
            for k in range(acks):
                if k == acks // 10:
                    underway.set()
                await peer.send(peer.ack(una, attack_blocks(k, una, segments, mss)))
                while server_link.pending() > 64:
                    await trio.sleep(0)
            while server_link.pending():
                await trio.sleep(0)
            out["attack"] = time.perf_counter() - t0

        async def timed_victim() -> None:
            await underway.wait()  # the attacker's history has grown a little
            out["victim_attacked"] = await victim()

        out["attack"] = out["victim_attacked"] = float("inf")
        with trio.move_on_after(cap):
            async with trio.open_nursery() as inner:
                inner.start_soon(attack)
                inner.start_soon(timed_victim)
        out["retx_small"] = float(sum(n for size, n in peer.retx_sizes.items() if size < mss))
        out["retx"] = float(sum(peer.retx_sizes.values()))
        nursery.cancel_scope.cancel()
    return out
