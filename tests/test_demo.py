"""The main job, ``python -m trio_tcp6 demo``, does what it says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio.testing

from trio_tcp6.cli.demo import DemoOptions, run_demo
from trio_tcp6.wire.pcap import read_pcap


async def test_demo_in_virtual_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    lines: list[str] = []
    pcap = tmp_path / "demo.pcap"
    report = await run_demo(DemoOptions(pcap=str(pcap), megabytes=1.0), say=lines.append)
    assert report.http_status == 200
    assert b"Hello from trio_tcp6" in report.http_body
    assert report.intact, (report.digest_sent, report.digest_received)
    assert report.transfer_bytes == 1 << 20
    # The impairments were real: the network lost and corrupted packets, the stacks
    # retransmitted and their checksums caught the corruption.
    assert report.network_stats["dropped_loss"] > 0
    assert report.network_stats["corrupted"] > 0
    assert report.retransmits > 0
    bad = report.client_stats.get("drop_bad_checksum", 0)
    bad += report.server_stats.get("drop_bad_checksum", 0)
    assert 0 < bad <= report.network_stats["corrupted"]
    assert len(read_pcap(str(pcap))) == report.pcap_packets > 100
    text = "\n".join(lines)
    assert "SHA-256 matches" in text and "everything arrived intact" in text


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
async def test_demo_pcap_reads_clean_in_tshark(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Every packet the stacks sent is well formed with a good checksum (no corruption
    impairment here, so every anomaly would be the stacks' own)."""
    pcap = tmp_path / "demo.pcap"
    options = DemoOptions(pcap=str(pcap), megabytes=0.5, corrupt=0.0)
    report = await run_demo(options, say=lambda _: None)
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tcp.checksum.status",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()
    assert len(out) == report.pcap_packets
    malformed = [row for row in out if row.split("\t")[2:] not in ([], [""])]
    good_checksum = [row for row in out if row.split("\t")[1] == "1"]
    assert malformed == []
    assert len(good_checksum) == len(out)


def test_demo_command_line(tmp_path: Path) -> None:
    """The README's first command, in real time."""
    proc = subprocess.run(
        [sys.executable, "-m", "trio_tcp6", "demo", "--megabytes", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "everything arrived intact" in proc.stdout
    assert (tmp_path / "trio_tcp6-demo.pcap").stat().st_size > 0
