"""Test an application over a bad network: helpers, and a pytest plugin.

The pytest plugin (:mod:`trio_tcp6.testing.plugin`, loaded automatically once
trio_tcp6 is installed) gives a test a :class:`~trio_tcp6.VirtualNetwork`
(``tcp6_net``) and stacks on it (``tcp6_stacks``) in virtual time, and writes a pcap
of the test's traffic whose path appears in the report when the test fails. The
helpers here need no pytest:

* :func:`virtual_run` -- ``trio.run`` with an autojumping :class:`trio.testing.MockClock`;
* :func:`open_hosts` -- ``n`` direct stacks on one network;
* :func:`partition` and :func:`cut_cable` -- drop every packet between hosts (or to
  and from one host) until :meth:`Fault.heal`; impairments are one call,
  ``net.impair(loss=0.05, delay=0.01)``;
* :func:`assert_no_retransmissions` and :func:`assert_delivered`.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import trio
import trio.testing

from ..config import TCPConfig
from ..links import VirtualNetwork
from ..runtime import DirectStack, Flow, Stack, open_stack

__all__ = [
    "DEFAULT_PREFIX",
    "Fault",
    "assert_delivered",
    "assert_no_retransmissions",
    "cut_cable",
    "host_addresses",
    "open_hosts",
    "partition",
    "virtual_run",
]

T = TypeVar("T")
Address = str | ipaddress.IPv6Address

#: Where :func:`open_hosts` numbers its hosts: ``fd00::1``, ``fd00::2``, ...
DEFAULT_PREFIX = "fd00::"


def virtual_run(
    async_fn: Callable[..., Awaitable[T]],
    *args: object,
    clock: trio.abc.Clock | None = None,
    **run_kwargs: Any,
) -> T:
    """``trio.run(async_fn, *args)`` in virtual time: with ``clock`` or else a
    ``MockClock(autojump_threshold=0)``, so sleeps and timeouts pass at once when
    every task waits. As a pytest-trio runner:
    ``@pytest.mark.trio(run=virtual_run)``."""
    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(async_fn, *args, clock=clock, **run_kwargs)


def host_addresses(n: int, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """``n`` addresses ``prefix + 1``, ``prefix + 2``, ... (``fd00::1``, ...)."""
    base = int(ipaddress.IPv6Address(prefix))
    return [str(ipaddress.IPv6Address(base + i)) for i in range(1, n + 1)]


@asynccontextmanager
async def open_hosts(
    net: VirtualNetwork,
    n: int = 2,
    *,
    config: TCPConfig | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> AsyncIterator[list[DirectStack]]:
    """``n`` direct stacks attached to ``net`` at :func:`host_addresses` (``n`` at
    least 1), closed in reverse order at the end of the block."""
    if n < 1:
        raise ValueError("open_hosts needs at least one host")
    async with AsyncExitStack() as stack:
        stacks = [
            await stack.enter_async_context(open_stack(net.attach(addr), addr, config=config))
            for addr in host_addresses(n, prefix)
        ]
        yield stacks


# -- faults ---------------------------------------------------------------------------

_Key = tuple[str | None, str | None]
_MISSING = object()


class _Cuts:
    """The directions of one network held at ``loss=1.0``, with a count of the faults
    holding each and the ``loss`` its layer had before the first of them."""

    def __init__(self) -> None:
        self.held: dict[_Key, tuple[int, object]] = {}

    def hold(self, net: VirtualNetwork, key: _Key) -> None:
        count, saved = self.held.get(key, (0, _MISSING))
        if count == 0:
            saved = net.overrides(*key).get("loss", _MISSING)
            net.impair(*key, loss=1.0)
        self.held[key] = (count + 1, saved)

    def release(self, net: VirtualNetwork, key: _Key) -> None:
        count, saved = self.held[key]
        if count > 1:
            self.held[key] = (count - 1, saved)
            return
        del self.held[key]
        # Put back the layer's own loss and keep whatever else was set meanwhile.
        layer = net.overrides(*key)
        layer.pop("loss", None)
        if saved is not _MISSING:
            layer["loss"] = saved
        net.clear_impairments(*key)
        if layer:
            net.impair(*key, **layer)


_CUTS: weakref.WeakKeyDictionary[VirtualNetwork, _Cuts] = weakref.WeakKeyDictionary()


class Fault:
    """Directions of a network that drop every packet until :meth:`heal` (made by
    :func:`partition` and :func:`cut_cable`; also a context manager that heals on
    exit). Faults may overlap: a direction carries packets again once every fault
    holding it is healed, with the impairments it had before the first."""

    def __init__(self, net: VirtualNetwork, keys: Iterable[_Key]) -> None:
        self.net = net
        self.directions: list[_Key] = list(dict.fromkeys(keys))
        self.healed = False
        cuts = _CUTS.setdefault(net, _Cuts())
        for key in self.directions:
            cuts.hold(net, key)

    def heal(self) -> None:
        """Let packets through again (idempotent)."""
        if self.healed:
            return
        self.healed = True
        cuts = _CUTS[self.net]
        for key in self.directions:
            cuts.release(self.net, key)

    def __enter__(self) -> Fault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.heal()

    def __repr__(self) -> str:
        state = "healed" if self.healed else "active"
        return f"<Fault {len(self.directions)} directions {state}>"


def _hosts(side: Address | Iterable[Address]) -> list[str]:
    if isinstance(side, str | ipaddress.IPv6Address):
        side = [side]
    return [str(ipaddress.IPv6Address(str(a))) for a in side]


def partition(
    net: VirtualNetwork, a: Address | Iterable[Address], b: Address | Iterable[Address]
) -> Fault:
    """Drop every packet between ``a`` and ``b``, both ways, until healed. Each side
    is one address or several (a group); hosts on the same side still talk, and so
    does everyone else."""
    left, right = _hosts(a), _hosts(b)
    keys: list[_Key] = []
    for x in left:
        for y in right:
            keys += [(x, y), (y, x)]
    return Fault(net, keys)


def cut_cable(net: VirtualNetwork, host: Address) -> Fault:
    """Unplug ``host``: drop every packet it sends or should receive (also to and
    from hosts attached later) until healed. Its connections stay, as over a real
    unplugged cable: they time out, or carry on once healed."""
    (h,) = _hosts(host)
    keys: list[_Key] = [(h, None), (None, h)]
    for link in net.links:
        other = str(link.address)
        if other != h:
            keys += [(h, other), (other, h)]
    return Fault(net, keys)


# -- assertions -----------------------------------------------------------------------


def assert_no_retransmissions(*subjects: Flow | Stack) -> None:
    """Fail if any flow (``info().retransmits``) or stack (``stats()["retransmits"]``)
    retransmitted a segment: a test that promises a clean path checks it was one."""
    bad = []
    for subject in subjects:
        if isinstance(subject, Flow):
            count = subject.info().retransmits
        else:
            count = subject.stats().get("retransmits", 0)
        if count:
            bad.append(f"{subject!r}: {count} retransmitted segments")
    assert not bad, "expected no retransmissions, got " + "; ".join(bad)


def assert_delivered(received: bytes | bytearray | memoryview, sent: Sequence[int]) -> None:
    """Fail unless ``received`` is exactly ``sent``, saying where they part (lengths,
    first differing offset and a few bytes around it) instead of printing both."""
    got, want = bytes(received), bytes(sent)
    if got == want:
        return
    common = min(len(got), len(want))
    at = next((i for i in range(common) if got[i] != want[i]), common)
    lo = max(0, at - 8)
    raise AssertionError(
        f"delivered {len(got)} bytes, sent {len(want)}; first difference at offset {at}:"
        f" got {got[lo : at + 8]!r}, sent {want[lo : at + 8]!r}"
    )
