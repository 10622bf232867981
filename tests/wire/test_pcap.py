"""pcap writer: read back, record layout, snaplen, ownership, and tshark if present."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from trio_tcp6.wire.icmpv6 import EchoRequest, build_icmpv6
from trio_tcp6.wire.ipv6 import build_ipv6
from trio_tcp6.wire.pcap import LINKTYPE_IPV6, PcapWriter, read_pcap

SRC = bytes.fromhex("20010db8000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")


def sample_packets(n: int) -> list[bytes]:
    return [
        build_ipv6(SRC, DST, 58, build_icmpv6(EchoRequest(7, i, b"x" * i), SRC, DST))
        for i in range(n)
    ]


def test_write_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    packets = sample_packets(5)
    times = [0.0, 1.5, 2.000000001, 12345.123456789, 1e6 + 0.25]
    with PcapWriter(str(path)) as writer:
        for pkt, ts in zip(packets, times, strict=True):
            writer.write(pkt, ts)
        assert writer.count == 5
    assert writer.closed
    records = read_pcap(path)
    assert [pkt for _, pkt in records] == packets
    for (ts, _), expected in zip(records, times, strict=True):
        assert ts == pytest.approx(expected, abs=1e-9)


def test_global_header(tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    PcapWriter(path, snaplen=1000).close()
    data = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data)
    assert (magic, major, minor, snaplen, linktype) == (0xA1B23C4D, 2, 4, 1000, LINKTYPE_IPV6)
    assert read_pcap(path) == []


def test_record_layout_and_snaplen() -> None:
    buf = io.BytesIO()
    writer = PcapWriter(buf, snaplen=64)
    writer.write(bytes(range(100)), 3.25)
    writer.write(memoryview(b"short"), 4.0)
    writer.close()
    assert not buf.closed  # a caller's file is flushed, not closed
    data = buf.getvalue()[24:]
    assert struct.unpack_from("<IIII", data) == (3, 250_000_000, 64, 100)
    assert data[16:80] == bytes(range(64))
    assert struct.unpack_from("<IIII", data, 80) == (4, 0, 5, 5)
    assert data[96:] == b"short"


def test_flushed_after_each_write(tmp_path: Path) -> None:
    path = tmp_path / "live.pcap"
    writer = PcapWriter(path)
    packets = sample_packets(3)
    for i, pkt in enumerate(packets):
        writer.write(pkt, float(i))
        # Another reader sees every complete record while the writer is open.
        assert [p for _, p in read_pcap(path)] == packets[: i + 1]
    writer.close()


def test_misuse() -> None:
    writer = PcapWriter(io.BytesIO())
    with pytest.raises(ValueError):
        writer.write(b"x", -1.0)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError):
        writer.write(b"x", 0.0)
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO(), snaplen=0)


def test_reader_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 24)
    with pytest.raises(ValueError):
        read_pcap(bad)
    good = tmp_path / "good.pcap"
    with PcapWriter(good) as writer:
        writer.write(b"abcdef", 1.0)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(ValueError):
        read_pcap(cut)


def test_reader_accepts_big_endian_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "be.pcap"
    header = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 229)
    path.write_bytes(header + struct.pack(">IIII", 5, 500_000, 3, 3) + b"abc")
    assert read_pcap(path) == [(5.5, b"abc")]


def test_tshark_reads_it(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (apt package tshark)")
    path = tmp_path / "t.pcap"
    packets = sample_packets(4)
    with PcapWriter(path) as writer:
        for i, pkt in enumerate(packets):
            writer.write(pkt, 100.0 + i * 0.001)
    result = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "frame.protocols",
            "-e",
            "ipv6.src",
            "-e",
            "icmpv6.echo.sequence_number",
            "-e",
            "icmpv6.checksum.status",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(packets)
    for i, line in enumerate(lines):
        protocols, src, seq, status = line.split("\t")
        assert protocols.split(":")[:2] == ["ipv6", "icmpv6"]  # raw IPv6, no link layer
        assert src == "2001:db8::1"
        assert int(seq) == i
        assert status == "1"  # tshark verified our checksum
