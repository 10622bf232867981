"""Segments we build, read back by Wireshark's dissector (tshark).

A few hundred varied IPv6+TCP packets go through PcapWriter into a pcap file; tshark
must find no malformed packet, every TCP checksum good, and the same header fields and
options we meant to send. Negative controls prove the checks are live: a packet with
a wrong checksum is flagged bad, a cut-short header is flagged malformed.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

from trio_tcp6.wire.ipv6 import build_ipv6
from trio_tcp6.wire.pcap import PcapWriter
from trio_tcp6.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TCPSegment, build_tcp

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not on PATH")

ADDRESSES = [
    bytes.fromhex("20010db8000000000000000000000001"),
    bytes.fromhex("20010db8000000000000000000000002"),
    bytes.fromhex("fe800000000000000000000000000abc"),
    bytes.fromhex("00000000000000000000000000000001"),
]

FIELDS = [
    "frame.number",
    "_ws.malformed",
    "tcp.checksum.status",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.urgent_pointer",
    "tcp.len",
    "tcp.hdr_len",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
]


def run_tshark(path: Path) -> list[dict[str, str]]:
    assert TSHARK is not None
    command = [TSHARK, "-n", "-r", str(path)]
    for preference in (
        "tcp.check_checksum:TRUE",
        "tcp.relative_sequence_numbers:FALSE",  # raw seq/ack and SACK edges
        "tcp.analyze_sequence_numbers:FALSE",  # our packets are not one conversation
        "tcp.desegment_tcp_streams:FALSE",
    ):
        command += ["-o", preference]
    command += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        command += ["-e", field]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert all(len(row) == len(FIELDS) for row in rows), rows[:3]
    return [dict(zip(FIELDS, row, strict=True)) for row in rows]


def varied_segments(rng: random.Random) -> list[TCPSegment]:
    """SYNs with every option mix, data with timestamps and SACK, FIN, RST, URG, and
    payloads from nothing to a full 64 KiB IPv6 payload."""

    def u32() -> int:
        return rng.getrandbits(32)

    def port() -> int:
        # Ephemeral range: no payload dissector claims these ports.
        return rng.randrange(49152, 65536)

    def blocks(count: int) -> tuple[tuple[int, int], ...]:
        return tuple((left, (left + rng.randrange(1, 1 << 20)) & 0xFFFFFFFF)
                     for left in (u32() for _ in range(count)))  # fmt: skip

    def payload(size: int) -> bytes:
        return rng.randbytes(size)

    sizes = [0, 1, 2, 3, 535, 1220, 1439, 1440, 4096, 8960]
    segments: list[TCPSegment] = []
    for i in range(320):
        base = TCPSegment(port(), port(), u32(), u32(), ACK, rng.randrange(65536))
        kind = i % 8
        if kind == 0:  # SYN / SYN-ACK with a random subset of the options
            segments.append(attrs.evolve(
                base,
                flags=rng.choice([SYN, SYN | ACK, SYN | ECE | CWR]),
                ack=0,
                mss=rng.choice([None, 536, 1220, 1440, 8940, 65495]),
                wscale=rng.choice([None, 0, 7, 14]),
                sack_permitted=rng.random() < 0.7,
                timestamps=rng.choice([None, (u32(), 0), (u32(), u32())]),
            ))  # fmt: skip
        elif kind in (1, 2):  # data with timestamps
            segments.append(attrs.evolve(
                base, flags=ACK | rng.choice([0, PSH]), payload=payload(rng.choice(sizes)),
                timestamps=(u32(), u32()),
            ))  # fmt: skip
        elif kind == 3:  # ACK or data with timestamps and 1..4 SACK blocks (3 are sent)
            segments.append(attrs.evolve(
                base, payload=payload(rng.choice([0, 0, 1, 1440])),
                timestamps=(u32(), u32()), sack_blocks=blocks(rng.randint(1, 4)),
            ))  # fmt: skip
        elif kind == 4:  # SACK without timestamps (up to 4 blocks)
            segments.append(attrs.evolve(base, sack_blocks=blocks(rng.randint(1, 5))))
        elif kind == 5:  # FIN, with or without data
            segments.append(attrs.evolve(
                base, flags=FIN | ACK | rng.choice([0, PSH]), payload=payload(rng.choice(sizes)),
                timestamps=rng.choice([None, (u32(), u32())]),
            ))  # fmt: skip
        elif kind == 6:  # RST, RST-ACK
            segments.append(attrs.evolve(base, flags=rng.choice([RST, RST | ACK]), window=0))
        else:  # urgent data, no options
            segments.append(attrs.evolve(
                base, flags=ACK | URG | PSH, payload=payload(rng.randrange(1, 3000)),
                urgent=rng.randrange(1, 65536),
            ))  # fmt: skip
    # The largest segments an IPv6 packet (no jumbogram) can carry.
    for header in (20, 32, 60):
        seg = TCPSegment(port(), port(), u32(), u32(), ACK, 65535)
        if header == 32:
            seg.timestamps = (u32(), u32())
        elif header == 60:
            seg.timestamps, seg.sack_blocks = (u32(), u32()), blocks(3)
        seg.payload = payload(65535 - header)
        segments.append(seg)
    segments.append(TCPSegment(port(), port(), u32(), u32(), ACK, 1, payload(32768)))
    return segments


def expected_row(seg: TCPSegment, raw: bytes) -> dict[str, str]:
    def join(values: list[int]) -> str:
        return ",".join(str(v) for v in values)

    # SACK blocks beyond what fits in 40 option bytes are not sent.
    used = (4 if seg.mss is not None else 0) + (4 if seg.wscale is not None else 0)
    used += 12 if seg.timestamps is not None else 4 if seg.sack_permitted else 0
    blocks = seg.sack_blocks[: (40 - used - 4) // 8]
    return {
        "_ws.malformed": "",
        "tcp.checksum.status": "1",  # 1 = good (0 = bad, 2 = unverified)
        "tcp.srcport": str(seg.src_port),
        "tcp.dstport": str(seg.dst_port),
        "tcp.seq_raw": str(seg.seq),
        "tcp.ack_raw": str(seg.ack),
        "tcp.flags": f"0x{seg.flags:04x}",
        "tcp.window_size_value": str(seg.window),
        "tcp.urgent_pointer": str(seg.urgent),
        "tcp.len": str(len(seg.payload)),
        "tcp.hdr_len": str(len(raw) - len(seg.payload)),
        "tcp.options.mss_val": "" if seg.mss is None else str(seg.mss),
        "tcp.options.wscale.shift": "" if seg.wscale is None else str(seg.wscale),
        "tcp.options.sack_perm": "0402" if seg.sack_permitted else "",
        "tcp.options.timestamp.tsval": "" if seg.timestamps is None else str(seg.timestamps[0]),
        "tcp.options.timestamp.tsecr": "" if seg.timestamps is None else str(seg.timestamps[1]),
        "tcp.options.sack_le": join([left for left, _ in blocks]),
        "tcp.options.sack_re": join([right for _, right in blocks]),
    }


def test_tshark_accepts_everything_we_build(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    path = tmp_path / "varied.pcap"
    expected: list[dict[str, str]] = []
    with PcapWriter(path) as writer:
        for number, seg in enumerate(varied_segments(rng), start=1):
            src, dst = rng.sample(ADDRESSES, 2)
            raw = build_tcp(seg, src, dst)
            writer.write(build_ipv6(src, dst, 6, raw), number * 0.001)
            expected.append({"frame.number": str(number), **expected_row(seg, raw)})
    assert len(expected) > 300
    rows = run_tshark(path)
    assert len(rows) == len(expected)
    malformed = [row["frame.number"] for row in rows if row["_ws.malformed"]]
    assert malformed == []
    not_good = [row["frame.number"] for row in rows if row["tcp.checksum.status"] != "1"]
    assert not_good == []
    for row, want in zip(rows, expected, strict=True):
        assert row == want
    # Sanity of the sample itself: it really has the variety the docstring claims.
    assert any(row["tcp.len"] == "65515" for row in rows)
    assert any(row["tcp.options.sack_le"].count(",") == 3 for row in rows)  # 4 blocks
    assert any(row["tcp.options.sack_le"].count(",") == 2 for row in rows)  # 3 + TS
    assert any(row["tcp.hdr_len"] == "40" and row["tcp.flags"] == "0x0002" for row in rows)


def test_tshark_negative_controls(tmp_path: Path) -> None:
    src, dst = ADDRESSES[:2]
    data = TCPSegment(50000, 50001, 1, 2, ACK | PSH, 100, b"hello", timestamps=(3, 4))
    syn = TCPSegment(
        50000, 50001, 1, 0, SYN, 65535, mss=1440, wscale=7, sack_permitted=True,
        timestamps=(3, 0),
    )  # fmt: skip
    good = build_tcp(data, src, dst)
    bad_checksum = bytearray(good)
    bad_checksum[17] ^= 0x01
    bad_payload = bytearray(good)
    bad_payload[-1] ^= 0x40
    cut_header = bytearray(build_tcp(syn, src, dst))
    cut_header[12] = 15 << 4  # claims 60 header bytes, has 40
    path = tmp_path / "controls.pcap"
    with PcapWriter(path) as writer:
        for number, tcp in enumerate([good, bad_checksum, bad_payload, cut_header], start=1):
            writer.write(build_ipv6(src, dst, 6, bytes(tcp)), float(number))
    rows = run_tshark(path)
    assert [row["tcp.checksum.status"] for row in rows[:3]] == ["1", "0", "0"]
    assert [bool(row["_ws.malformed"]) for row in rows] == [False, False, False, True]
