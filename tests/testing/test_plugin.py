"""The pytest plugin (fixtures, virtual time, marker, pcap on failure) and the
helpers of trio_tcp6.testing."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.testing import (
    assert_delivered,
    assert_no_retransmissions,
    cut_cable,
    host_addresses,
    partition,
)
from trio_tcp6.testing.plugin import PCAP_NAME, REPORT_SECTION

PLUGIN = "trio_tcp6.testing.plugin"


async def test_fixtures_give_two_stacks_in_virtual_time(
    tcp6_net: tcp6.VirtualNetwork, tcp6_stacks: list[tcp6.Stack]
) -> None:
    assert isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    start = trio.current_time()
    await trio.sleep(3600)  # an hour passes at once
    assert trio.current_time() - start == 3600
    client, server = tcp6_stacks
    assert [str(link.address) for link in tcp6_net.links] == ["fd00::1", "fd00::2"]
    listener = await server.open_tcp_listener(80)
    flow = await client.open_tcp_stream("fd00::2", 80)
    peer = await listener.accept()
    await flow.send_all(b"ping")
    assert await peer.receive_some() == b"ping"
    assert_no_retransmissions(flow, peer, client, server)


async def test_a_clock_the_test_asks_for_wins(
    mock_clock: trio.testing.MockClock, tcp6_net: tcp6.VirtualNetwork
) -> None:
    assert trio.lowlevel.current_clock() is mock_clock


@pytest.mark.tcp6(hosts=3, seed=7, mtu=9000, delay=0.01)
async def test_marker_sets_hosts_and_network(
    tcp6_net: tcp6.VirtualNetwork, tcp6_stacks: list[tcp6.Stack]
) -> None:
    assert len(tcp6_stacks) == 3
    assert tcp6_net.mtu == 9000 and tcp6_net.seed == 7
    a, _b, c = tcp6_stacks
    listener = await c.open_tcp_listener(1)
    start = trio.current_time()
    await a.open_tcp_stream("fd00::3", 1)
    assert trio.current_time() - start == pytest.approx(0.02)  # one RTT of 2 x 10 ms
    await listener.aclose()


async def test_partition_drops_until_healed(
    tcp6_net: tcp6.VirtualNetwork, tcp6_stacks: list[tcp6.Stack]
) -> None:
    client, server = tcp6_stacks
    listener = await server.open_tcp_listener(80)
    flow = await client.open_tcp_stream("fd00::2", 80)
    peer = await listener.accept()
    tcp6_net.impair("fd00::1", "fd00::2", delay=0.005)
    with partition(tcp6_net, "fd00::1", "fd00::2") as fault:
        assert tcp6_net.impairments("fd00::1", "fd00::2").loss == 1.0
        assert tcp6_net.impairments("fd00::2", "fd00::1").loss == 1.0
        await flow.send_all(b"through the partition")
        with trio.move_on_after(10):
            await peer.receive_some()
            pytest.fail("data crossed a partition")
    assert fault.healed
    # Healed: the layer's own delay is back, the loss gone; the retransmission arrives.
    assert tcp6_net.impairments("fd00::1", "fd00::2") == tcp6.links.impair.Impairments(delay=0.005)
    assert await peer.receive_some() == b"through the partition"
    assert flow.info().retransmits > 0
    with pytest.raises(AssertionError, match="retransmitted segments"):
        assert_no_retransmissions(flow)


@pytest.mark.tcp6(hosts=3)
async def test_cut_cable_isolates_one_host(
    tcp6_net: tcp6.VirtualNetwork, tcp6_stacks: list[tcp6.Stack]
) -> None:
    a, b, c = tcp6_stacks
    tcp6_net.impair(src="fd00::1", dst="fd00::3", loss=0.25)
    fault = cut_cable(tcp6_net, "fd00::3")
    overlapping = partition(tcp6_net, "fd00::1", ["fd00::3"])
    listener_b = await b.open_tcp_listener(80)
    await c.open_tcp_listener(80)
    await a.open_tcp_stream("fd00::2", 80)  # a and b still talk
    await listener_b.accept()
    with trio.move_on_after(30) as scope:
        await a.open_tcp_stream("fd00::3", 80)
    assert scope.cancelled_caught
    fault.heal()
    # Still held by the overlapping partition, then back to the loss set before.
    assert tcp6_net.impairments("fd00::1", "fd00::3").loss == 1.0
    assert tcp6_net.impairments("fd00::2", "fd00::3").loss == 0.0
    overlapping.heal()
    overlapping.heal()  # idempotent
    assert tcp6_net.impairments("fd00::1", "fd00::3").loss == 0.25
    assert tcp6_net.impairments("fd00::3", "fd00::1").loss == 0.0


def test_assert_delivered_says_where_data_differ() -> None:
    assert_delivered(b"abc", b"abc")
    with pytest.raises(AssertionError, match="first difference at offset 1000"):
        assert_delivered(b"x" * 1000 + b"y" + b"x" * 10, b"x" * 1011)
    with pytest.raises(AssertionError, match=r"delivered 3 bytes, sent 4; .* offset 3"):
        assert_delivered(b"abc", b"abcd")


def test_host_addresses() -> None:
    assert host_addresses(3) == ["fd00::1", "fd00::2", "fd00::3"]
    assert host_addresses(1, "2001:db8::ff") == ["2001:db8::100"]


def test_sync_tests_get_a_network_too(tcp6_net: tcp6.VirtualNetwork) -> None:
    assert tcp6_net.links == []


def _plugin_args() -> list[str]:
    # Installed with its metadata, pytest loads the plugin itself (a second -p would
    # register it twice).
    installed = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    return ["-p", "no:cacheprovider"] + ([] if installed else ["-p", PLUGIN])


INNER = """
import pytest, trio, trio.testing


async def test_fails(tcp6_net, tcp6_stacks):
    client, server = tcp6_stacks
    listener = await server.open_tcp_listener(80)
    flow = await client.open_tcp_stream("fd00::2", 80)
    await flow.send_all(b"evidence")
    await (await listener.accept()).receive_some()
    assert False, "the app misbehaved"


async def test_passes(tcp6_net, tcp6_stacks):
    client, server = tcp6_stacks
    await server.open_tcp_listener(80)
    await client.open_tcp_stream("fd00::2", 80)


@pytest.mark.tcp6(capture=False)
async def test_fails_without_capture(tcp6_net):
    assert False


async def test_virtual_time_in_trio_mode(tcp6_net):
    # trio mode marks every async test with trio.run: the plugin's runner must win.
    assert isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
"""


def test_a_failing_test_reports_its_pcap(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inner session imports this checkout's trio_tcp6, whatever is installed.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-v", "--basetemp=tmp")
    result.assert_outcomes(passed=2, failed=2)
    text = result.stdout.str()
    assert text.count(REPORT_SECTION) == 1  # not for the test without a capture
    line = next(line for line in result.stdout.lines if "pcap of the test's traffic" in line)
    path = pytester.path / line.split("traffic: ")[1].split(" (")[0]
    assert path.name == PCAP_NAME and "test_fails0" in str(path)
    from trio_tcp6.wire.pcap import read_pcap

    packets = list(read_pcap(path))
    assert any(b"evidence" in bytes(p[-1]) for p in packets)  # the payload is in it
    # The passing test's capture was deleted.
    assert not list(pytester.path.glob(f"tmp/test_passes0/{PCAP_NAME}"))


def test_plugin_is_declared_as_an_entry_point() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is 3.11+")
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"] == {"trio_tcp6": PLUGIN}
