"""The command line checks its arguments before anything runs: one-line errors, exit
status 2, the ranges at their exact boundaries; ``tun`` says why it cannot run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trio_tcp6.cli import build_parser
from trio_tcp6.cli.output import Progress, counter_table, format_table
from trio_tcp6.cli.tun import environment_problem, has_cap_net_admin

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *argv: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m trio_tcp6 ARGV`` on this checkout's code (not an installed copy)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "trio_tcp6", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=env,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--loss", "1.5"], "argument --loss: must be a probability in [0, 1)"),
        (["demo", "--duplicate", "-0.1"], "argument --duplicate: must be a probability"),
        (["demo", "--megabytes", "0"], "argument --megabytes: must be in (0, 1024] MiB"),
        (["demo", "--delay", "nan"], "argument --delay: not a finite number"),
        (["demo", "--pcap", "/nonexistent-dir/x.pcap"], "no such directory: /nonexistent-dir"),
        (["demo", "--pcap", "x.pcap", "--no-pcap"], "not allowed with argument --pcap"),
        (["demo", "--queue", "3000"], "--queue needs --rate"),
        (["tun", "--address", "fd00::2::1", "idle"], "argument --address: not an IPv6 address"),
        (["tun", "--address", "fd00::2", "--kernel-address", "fd00::1", "idle"], "needs a prefix"),
        (["tun", "--address", "fd00::2", "serve-echo", "--port", "65536"], "a port is 0..65535"),
        (["tun", "--address", "fd00::2", "--name", "x" * 16, "idle"], "at most 15 bytes"),
    ],
)
def test_argument_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m trio_tcp6 ") and ": error: " in lines[0]
    assert message in lines[0]
    assert proc.stdout == ""  # nothing ran
    assert list(tmp_path.iterdir()) == []  # not even the pcap was opened


def _parses(*argv: str) -> argparse.Namespace | None:
    try:
        return build_parser().parse_args(list(argv))
    except SystemExit as exc:
        assert exc.code == 2
        return None


TUN = ("tun", "--address", "fd00::2")


@pytest.mark.parametrize(
    ("argv", "ok"),
    [
        (("demo", "--loss", "0.999"), True),
        (("demo", "--loss", "1"), False),  # a cut path: the transfer would never end
        (("demo", "--corrupt", "1.0"), False),
        (("demo", "--duplicate", "1"), True),
        (("demo", "--reorder", "1.0001"), False),
        (("demo", "--jitter", "0"), True),
        (("demo", "--reorder-delay", "0"), False),
        (("demo", "--megabytes", "1024"), True),
        (("demo", "--megabytes", "1024.5"), False),
        (("demo", "--mtu", "1280"), True),
        (("demo", "--mtu", "1279"), False),
        (("demo", "--mtu", "65535"), True),
        (("demo", "--mtu", "65536"), False),
        (("demo", "--rate", "0"), False),
        (("demo", "--rate", "10", "--queue", "1.5"), False),
        ((*TUN, "serve-http", "--port", "0"), True),
        ((*TUN, "connect", "fd00::1", "0"), False),
        ((*TUN, "connect", "fd00::1", "65535"), True),
        ((*TUN, "connect", "[fd00::1]", "1"), True),
        ((*TUN, "connect", "ff02::1", "80"), False),
        ((*TUN, "--name", "x" * 15, "idle"), True),
        ((*TUN, "--name", "tun%d%d", "idle"), False),
        ((*TUN, "--name", "tun%s", "idle"), False),
        ((*TUN, "--kernel-address", "fd00::1/128", "idle"), True),
        ((*TUN, "--kernel-address", "fd00::1/0", "idle"), False),
        ((*TUN, "--loss", "0.5", "idle"), True),
        (("tun", "--address", "::", "idle"), False),
    ],
)
def test_argument_ranges_at_their_boundaries(argv: tuple[str, ...], ok: bool) -> None:
    assert (_parses(*argv) is not None) == ok


def test_demo_arguments_reach_the_options() -> None:
    from trio_tcp6.cli.demo import options_from

    ns = _parses(
        "demo", "--rate", "8", "--queue", "30000", "--reorder-delay", "0.02",
        "--jitter", "0.002", "--no-pcap", "--mtu", "9000",
    )  # fmt: skip
    assert ns is not None
    options = options_from(ns)
    assert options.rate == 1e6  # 8 Mbit/s in bytes per second
    assert (options.queue, options.reorder_delay, options.jitter) == (30000, 0.02, 0.002)
    assert options.pcap is None and options.mtu == 9000
    imp = options.impairments()
    assert (imp.rate, imp.queue, imp.reorder_delay) == (1e6, 30000, 0.02)


def test_tun_refuses_an_address_equal_to_the_kernel_side() -> None:
    proc = run_cli(*TUN, "--kernel-address", "fd00::2/64", "idle")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "python -m trio_tcp6 tun: error: --kernel-address must differ from --address "
        "(fd00::2) (see --help)"
    ]


def test_tun_says_why_it_cannot_run(tmp_path: Path) -> None:
    assert has_cap_net_admin("Name:\tx\nCapEff:\t0000000000000000\n") is False
    assert has_cap_net_admin("CapEff:\t0000000000001000\n") is True  # bit 12 alone
    assert has_cap_net_admin("CapEff:\t0000000000000800\n") is False  # bit 11
    assert has_cap_net_admin("Name:\tx\n") is None
    missing = environment_problem(device=str(tmp_path / "tun"))
    assert missing is not None and "does not exist" in missing and "modprobe tun" in missing
    device = tmp_path / "tun"
    device.touch()
    status = tmp_path / "status"
    status.write_text("CapEff:\t0000000000000000\n")
    denied = environment_problem(device=str(device), status_path=str(status))
    assert denied is not None and "CAP_NET_ADMIN" in denied and "root" in denied
    status.write_text("CapEff:\t000001ffffffffff\n")
    assert environment_problem(device=str(device), status_path=str(status)) is None


def test_format_table_aligns_columns() -> None:
    text = format_table(["counter", "client", "server"], [["a", 1, 22], ["longer_name", 333, 4]])
    assert text.splitlines() == [
        "counter      client  server",
        "-----------  ------  ------",
        "a                 1      22",
        "longer_name     333       4",
    ]


def test_counter_table_keeps_rows_nonzero_somewhere() -> None:
    text = counter_table({"client": {"a": 0, "b": 2}, "server": {"a": 0, "c": 5}})
    assert text.splitlines()[2:] == ["b             2       0", "c             0       5"]


class _Stream:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def test_progress_on_a_terminal_redraws_one_line() -> None:
    out = _Stream()
    bar = Progress(1 << 20, out, tty=True)  # type: ignore[arg-type]
    bar.update(0, 0.0)
    bar.update(1 << 18, 0.05)  # within the 0.1 s interval: not drawn
    bar.update(1 << 19, 0.5)
    bar.finish(1 << 20, 1.0)
    frames = out.text.split("\r")[1:]
    assert len(frames) == 3 == bar.lines
    assert frames[1].startswith("   [###############---------------] 512.0 KiB / 1.0 MiB  50%")
    assert "8.4 Mbit/s" in frames[1] and "ETA 0:01" in frames[1]  # 1 MiB/s, 512 KiB to go
    assert "100%" in frames[2] and frames[2].endswith("\x1b[K\n")
    assert out.text.count("\n") == 1  # only the final frame ends the line


def test_progress_elsewhere_writes_plain_lines() -> None:
    out = _Stream()
    bar = Progress(1000, out, tty=False)  # type: ignore[arg-type]
    for tick in range(30):  # 3 s, sampled every 0.1 s: one line per second
        bar.update(tick * 10, tick / 10)
    bar.finish(1000, 3.0)
    lines = out.text.splitlines()
    assert "\r" not in out.text and "\x1b" not in out.text
    assert len(lines) == 4
    assert lines[1] == "   progress: 100 B / 1000 B  10%     0.0 Mbit/s  ETA 0:09"
    assert lines[-1].startswith("   progress: 1000 B / 1000 B 100%")
