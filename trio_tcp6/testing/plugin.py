"""The trio_tcp6 pytest plugin (entry point ``pytest11``: loaded by pytest once
trio_tcp6 is installed; ``-p no:trio_tcp6`` turns it off).

Fixtures:

* ``tcp6_net`` -- a fresh :class:`~trio_tcp6.VirtualNetwork` for the test, capturing
  every packet to ``tcp6.pcap`` in the test's ``tmp_path``. An async test using it
  runs in virtual time (a :class:`trio.testing.MockClock` with
  ``autojump_threshold=0``; a clock fixture the test asks for, such as
  ``mock_clock``, is used instead).
* ``tcp6_stacks`` -- direct stacks on ``tcp6_net`` at ``fd00::1``, ``fd00::2``, ...
  (a list; two unless the marker says otherwise), closed after the test. Async
  fixtures need pytest-trio.

The marker ``@pytest.mark.tcp6(hosts=3, seed=1, mtu=9000, capture=False,
config=TCPConfig(...), delay=0.01, loss=0.02, ...)`` sets the number of hosts, the
network's seed (default 0: runs are reproducible), its MTU and impairments (any
``VirtualNetwork`` keyword), the stacks' config, and whether to capture.

When a test using ``tcp6_net`` fails, its report gets a section "trio_tcp6 capture"
with the pcap's path (and a ``tcp6_pcap`` user property, for JUnit XML); the pcap of
a test that passed is deleted.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..config import TCPConfig
from ..links import Capture, VirtualNetwork
from ..runtime import DirectStack
from . import open_hosts, virtual_run

__all__ = [
    "PCAP_NAME",
    "REPORT_SECTION",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_runtest_makereport",
    "tcp6_net",
    "tcp6_stacks",
]

#: The capture's file name inside the test's ``tmp_path``.
PCAP_NAME = "tcp6.pcap"
#: The title of the report section that names the capture.
REPORT_SECTION = "trio_tcp6 capture"

_PCAP = pytest.StashKey[Path]()
_CAPTURE = pytest.StashKey[Capture]()
_FAILED = pytest.StashKey[bool]()
_MARKER_KEYS = frozenset({"hosts", "config", "capture"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tcp6(hosts=2, seed=0, capture=True, config=None, **network): "
        "the trio_tcp6 fixtures' network and stacks",
    )


def _virtual_time_wanted(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return "tcp6_net" in fixtures and inspect.iscoroutinefunction(getattr(item, "obj", None))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run async tests that use ``tcp6_net`` in virtual time (through pytest-trio's
    ``run=`` marker argument). The first ``trio`` marker naming a runner wins: a test's
    own comes first, then this one, then trio mode's (hence ``tryfirst``)."""
    if not config.pluginmanager.hasplugin("trio"):
        return
    for item in items:
        if _virtual_time_wanted(item):
            item.add_marker(pytest.mark.trio(run=virtual_run))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
        path = item.stash.get(_PCAP, None)
        if path is not None:
            capture = item.stash.get(_CAPTURE, None)
            count = f" ({capture.count} packets so far)" if capture is not None else ""
            report.sections.append((REPORT_SECTION, f"pcap of the test's traffic: {path}{count}"))
            report.user_properties.append(("tcp6_pcap", str(path)))
    return report


def _marker(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("tcp6")
    if marker is None:
        return {}
    if marker.args:
        raise TypeError("the tcp6 marker takes keyword arguments only")
    return dict(marker.kwargs)


@pytest.fixture
def tcp6_net(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VirtualNetwork]:
    """A :class:`~trio_tcp6.VirtualNetwork` for this test (see the module docstring)."""
    options = _marker(request)
    network = {k: v for k, v in options.items() if k not in _MARKER_KEYS}
    network.setdefault("seed", 0)
    net = VirtualNetwork(**network)
    node = request.node
    if options.get("capture", True):
        path = tmp_path / PCAP_NAME
        node.stash[_PCAP] = path
        node.stash[_CAPTURE] = net.capture(path)
    try:
        yield net
    finally:
        net.close()
        path_kept = node.stash.get(_PCAP, None)
        if path_kept is not None and not node.stash.get(_FAILED, False):
            path_kept.unlink(missing_ok=True)


@pytest.fixture
async def tcp6_stacks(
    request: pytest.FixtureRequest, tcp6_net: VirtualNetwork
) -> AsyncIterator[list[DirectStack]]:
    """Direct stacks on ``tcp6_net`` at ``fd00::1``, ``fd00::2``, ... (see the module
    docstring)."""
    options = _marker(request)
    config = options.get("config")
    if config is not None and not isinstance(config, TCPConfig):
        raise TypeError(f"tcp6 marker: config must be a TCPConfig, got {config!r}")
    async with open_hosts(tcp6_net, int(options.get("hosts", 2)), config=config) as stacks:
        yield stacks
