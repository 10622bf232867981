"""The main job, ``python -m trio_tcp6 demo``, does what it says."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest
import trio.testing

from trio_tcp6.cli.demo import DemoOptions, WallClock, run_demo
from trio_tcp6.wire.pcap import read_pcap

from .test_cli_args import run_cli


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
    """The README's first command, in real time; its capture is dated by the run."""
    before = time.time()
    proc = run_cli("demo", "--megabytes", "0.5", cwd=tmp_path, timeout=300)
    after = time.time()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "everything arrived intact" in proc.stdout
    packets = read_pcap(tmp_path / "trio_tcp6-demo.pcap")
    assert packets
    # Real time: every packet passed during the run, by the wall clock.
    assert before <= packets[0][0] <= packets[-1][0] <= after


def test_virtual_demo_capture_starts_at_the_wall_clock(tmp_path: Path) -> None:
    """Virtual time starts at the wall-clock time of the run's start (it used to start
    at 0: a capture dated 1 January 1970)."""
    pcap = tmp_path / "v.pcap"
    before = time.time()
    proc = run_cli("demo", "--virtual", "--megabytes", "0.2", "--pcap", str(pcap))
    after = time.time()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stamps = [t for t, _ in read_pcap(pcap)]
    assert before <= stamps[0] <= after
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] < 60  # simulated seconds of one short transfer


def test_wall_clock_reads_the_epoch_and_runs_the_demo(tmp_path: Path) -> None:
    clock = WallClock()
    assert abs(clock.current_time() - time.time()) < 0.01
    assert clock.deadline_to_sleep_time(clock.current_time() + 5) == pytest.approx(5, abs=0.01)
    pcap = tmp_path / "w.pcap"
    options = DemoOptions(pcap=str(pcap), megabytes=0.05, delay=0.001, jitter=0.0)
    before = time.time()
    report = trio.run(partial(run_demo, options, say=lambda _: None), clock=WallClock())
    assert report.intact
    stamps = [t for t, _ in read_pcap(pcap)]
    assert before <= stamps[0] <= stamps[-1] <= time.time()


def test_demo_prints_progress_lines_off_a_terminal(tmp_path: Path) -> None:
    proc = run_cli("demo", "--virtual", "--megabytes", "0.5", "--no-pcap", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "progress:" in line]
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout  # stdout is a pipe
    assert lines, proc.stdout
    pattern = r"   progress: [\d.]+ (B|KiB) / 512\.0 KiB +\d+%  +[\d.]+ Mbit/s  ETA [\d:-]+"
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert " 100% " in lines[-1]
    quiet = run_cli("demo", "--virtual", "--megabytes", "0.5", "--no-pcap", "--quiet")
    assert quiet.returncode == 0 and "progress:" not in quiet.stdout
    assert "everything arrived intact" in quiet.stdout


def test_demo_no_pcap_writes_nothing(tmp_path: Path) -> None:
    proc = run_cli("demo", "--virtual", "--megabytes", "0.1", "--no-pcap", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []
    assert "pcap: none (--no-pcap)" in proc.stdout


async def test_demo_counters_table(autojump_clock: trio.testing.MockClock) -> None:
    lines: list[str] = []
    options = DemoOptions(pcap=None, megabytes=0.2, rate=2e6, queue=40000, reorder_delay=0.01)
    report = await run_demo(options, say=lines.append)
    assert report.intact and report.pcap_packets == 0
    text = "\n".join(lines).splitlines()
    header = next(
        i for i, row in enumerate(text) if re.fullmatch(r" +counter +client +server", row)
    )
    rule = text[header + 1]
    assert re.fullmatch(r"     -+  -+  -+", rule)
    rows = text[header + 2 : text.index(next(r for r in text if r.startswith("   pcap:")))]
    assert all(len(row) == len(rule) == len(text[header]) for row in rows)  # aligned
    shown = {}
    for row in rows:
        name, client, server = row.split()
        shown[name] = (int(client), int(server))
    assert shown["segments_out"] == (
        report.client_stats["segments_out"],
        report.server_stats["segments_out"],
    )
    assert all(c or s for c, s in shown.values())  # only non-zero rows
    nonzero = {k for st in (report.client_stats, report.server_stats) for k, v in st.items() if v}
    assert set(shown) == nonzero
    net_header = next(i for i, row in enumerate(text) if re.fullmatch(r" +counter +packets", row))
    assert re.fullmatch(r"     -+  -+", text[net_header + 1])
    sent = next(row for row in text[net_header:] if row.split()[0] == "sent")
    assert int(sent.split()[1]) == report.network_stats["sent"]
