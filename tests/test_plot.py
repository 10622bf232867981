"""``python -m trio_tcp6 plot`` and ``demo --plot``: pictures from a trace or a pcap
are produced and show what happened (decoded, colours counted, marks counted)."""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_tcp6.cli import main
from trio_tcp6.cli.demo import DemoOptions, run_demo
from trio_tcp6.cli.plot import (
    RETRANSMIT_COLOUR,
    MissingMatplotlib,
    draw,
    from_pcap,
    from_trace,
    load_input,
)
from trio_tcp6.links import VirtualNetwork
from trio_tcp6.runtime import open_stack
from trio_tcp6.tcp.trace import FlowTrace, TraceRecord

from .tcp.test_trace import MSS, scripted_loss


@pytest.fixture
def mpl() -> Any:
    return pytest.importorskip("matplotlib")


def png_colours(path: Path) -> set[int]:
    """The distinct colours of a PNG, as 0xRRGGBB."""
    image = pytest.importorskip("matplotlib.image").imread(str(path))
    rgb = (image[:, :, :3] * 255).round().astype(int)
    packed = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    return {int(c) for c in set(packed.ravel().tolist())}


def hex_rgb(colour: str) -> int:
    return int(colour[1:], 16)


def svg_group_paths(svg: str, gid: str) -> int:
    """How many ``<path`` elements the group ``gid`` holds."""
    m = re.search(rf'<g id="{gid}">(.*?)</g>', svg, re.S)
    return 0 if m is None else m.group(1).count("<path")


def test_picture_of_the_scripted_loss() -> None:
    w = scripted_loss()
    pic = from_trace(w.trace)
    assert pic.mss == MSS
    assert pic.retransmissions == 4
    assert len(pic.sends) == 12 + 4
    assert pic.rtos == [next(r.time for r in w.trace if r.name == "rto") - w.trace.records[0].time]
    assert [s[2] for s in pic.spans] == ["recovery", "loss"]
    assert pic.sacks and all(e > s for _, s, e in pic.sacks)


def test_png_and_svg_from_a_trace(tmp_path: Path, mpl: Any) -> None:
    w = scripted_loss()
    pic = from_trace(w.trace)
    png = tmp_path / "loss.png"
    svg = tmp_path / "loss.svg"
    draw(pic, png)
    draw(pic, svg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    colours = png_colours(png)
    assert len(colours) > 50  # lines, shading, text: not a blank canvas
    assert hex_rgb(RETRANSMIT_COLOUR) in colours
    text = svg.read_text()
    assert svg_group_paths(text, "retransmissions") == 4
    assert svg_group_paths(text, "segments") == 12


def test_cli_from_a_saved_trace(tmp_path: Path, mpl: Any, capsys: Any) -> None:
    w = scripted_loss()
    path = tmp_path / "flow.trace"
    w.trace.save(path)
    assert main(["plot", str(path)]) == 0
    out = tmp_path / "flow.png"
    assert out.stat().st_size > 10_000
    assert "16 segments (4 retransmitted)" in capsys.readouterr().out
    assert main(["plot", str(path), "-o", str(tmp_path / "flow.svg")]) == 0
    assert svg_group_paths((tmp_path / "flow.svg").read_text(), "retransmissions") == 4


async def lossy_capture(path: Path) -> FlowTrace:
    """A 300 kB transfer over 2% loss and 1% reordering, captured and traced."""
    a_addr = ipaddress.IPv6Address("fd00::a")
    b_addr = ipaddress.IPv6Address("fd00::b")
    net = VirtualNetwork(seed=3)
    cap = net.capture(str(path))
    async with (
        open_stack(net.attach(a_addr), a_addr) as a,
        open_stack(net.attach(b_addr), b_addr) as b,
    ):
        listener = await b.open_tcp_listener(7000)
        client = await a.open_tcp_stream(b_addr, 7000)
        server = await listener.accept()
        net.impair(loss=0.02, reorder=0.01, delay=0.01)
        trace = client.trace()
        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                while await server.receive_some(65536):
                    pass

            nursery.start_soon(drain)
            await client.send_all(bytes(300_000))
            await client.send_eof()
        # (The last ACKs may be lost: wait until the capture has one for everything.)
        while client.info().unacked:
            await trio.sleep(0.01)
        await client.aclose()
        await server.aclose()
        await listener.aclose()
    cap.close()
    net.close()
    return trace


async def test_plot_from_a_pcap(
    tmp_path: Path, mpl: Any, autojump_clock: trio.testing.MockClock
) -> None:
    pcap = tmp_path / "lossy.pcap"
    trace = await lossy_capture(pcap)
    pic = load_input(pcap)
    assert pic.from_capture and pic.mss == MSS
    covered = 1
    for _, s, e, _ in sorted(pic.sends, key=lambda x: x[1]):
        assert s <= covered  # no byte missing from the capture's segments
        covered = max(covered, e)
    assert covered == 300_002  # every byte and the FIN
    # The capture sees packets where they arrive: every retransmission that got
    # through, and reordered originals too.
    assert pic.retransmissions >= sum(1 for r in trace if r.kind == "out" and r.retransmit) - sum(
        1 for r in trace if r.kind == "out" and r.retransmit and r.cause == "tlp"
    )
    assert pic.retransmissions > 0 and pic.sacks
    assert max(a for _, a, _ in pic.acks) == 300_002  # data, FIN
    assert [p for p in pic.rtt if p[1] is not None]
    out = tmp_path / "lossy.svg"
    assert main(["plot", str(pcap), "-o", str(out), "--flow", "7000"]) == 0
    assert svg_group_paths(out.read_text(), "retransmissions") == pic.retransmissions
    png = tmp_path / "lossy.png"
    draw(pic, png)
    assert len(png_colours(png)) > 50
    with pytest.raises(ValueError, match="no TCP data on port 1"):
        from_pcap(pcap, 1)


async def test_demo_plot(tmp_path: Path, mpl: Any, autojump_clock: trio.testing.MockClock) -> None:
    out = tmp_path / "demo.png"
    lines: list[str] = []
    options = DemoOptions(pcap=None, megabytes=0.3, plot=str(out))
    report = await run_demo(options, say=lines.append)
    assert report.intact and report.trace is not None
    assert report.plot_path == str(out) and out.read_bytes()[:4] == b"\x89PNG"
    assert any("plot: " in line for line in lines)
    sent = from_trace(report.trace)
    assert sum(e - s for _, s, e, again in sent.sends if not again) == int(0.3 * (1 << 20)) + 1


def test_missing_matplotlib_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # (None in sys.modules makes an import fail with ImportError.)
    for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)
    w = scripted_loss()
    path = tmp_path / "flow.trace"
    w.trace.save(path)
    with pytest.raises(MissingMatplotlib, match=r"pip install 'trio-tcp6\[plot\]'"):
        draw(from_trace(w.trace), tmp_path / "x.png")
    assert main(["plot", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trio-tcp6[plot]" in err
    assert main(["demo", "--plot", str(tmp_path / "d.png"), "--no-pcap"]) == 1


def test_bad_input_and_output(tmp_path: Path, capsys: Any) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    assert main(["plot", str(junk)]) == 1
    assert "not a trio_tcp6 trace" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing.trace")]) == 1
    with pytest.raises(SystemExit):
        main(["plot", str(junk), "-o", str(tmp_path / "x.jpg")])


def test_ack_line_is_cumulative() -> None:
    """An ACK overtaken by a later one (reordered) does not pull the line down."""
    trace = FlowTrace({"mss": 1000})
    base = dict(snd_nxt=5001, cwnd=10_000, ssthresh=None, srtt=0.1, rto=1.0, pipe=0)
    common = dict(rcv_wnd=65535, ca_state="open", **base)
    trace.records += [
        TraceRecord("out", 0.0, snd_una=1, snd_wnd=9000, seq=1, length=5000, **common),
        TraceRecord("in", 0.1, snd_una=4001, snd_wnd=9000, ack=4001, **common),
        TraceRecord("in", 0.2, snd_una=4001, snd_wnd=8000, ack=2001, **common),
        TraceRecord("in", 0.3, snd_una=5001, snd_wnd=9000, ack=5001, **common),
    ]
    pic = from_trace(trace)
    assert [(t, a) for t, a, _ in pic.acks] == [(0.1, 4001), (0.2, 4001), (0.3, 5001)]
    assert [w for _, _, w in pic.acks] == [13001, 12001, 14001]


def test_time_range_option(tmp_path: Path, mpl: Any, capsys: Any) -> None:
    w = scripted_loss()
    path = tmp_path / "flow.trace"
    w.trace.save(path)
    out = tmp_path / "part.png"
    assert main(["plot", str(path), "-o", str(out), "--time", "0.9:"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    for bad in ("1", "2:1", "a:b"):
        with pytest.raises(SystemExit):
            main(["plot", str(path), "--time", bad])
