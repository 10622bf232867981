"""Packet impairments: loss, corruption, duplication, delay, jitter, reordering, rate.

One :class:`Impairments` value describes what happens to packets on a path; one
:class:`Impairer` (one ``random.Random(seed)`` and one set of counters) decides the fate
of each packet with :meth:`Impairer.fate` (from the path's own generator when it has
one, :class:`PathState`). The :class:`~trio_tcp6.links.VirtualNetwork`
and :class:`ImpairedLink` (which wraps any link) share this logic.

The fate of a packet, decided in this fixed order (a random draw happens only when the
knob is non-zero, so unimpaired packets consume no randomness):

1. **rate / queue** -- with a ``rate`` (bytes per second) the packet must be serialised
   on the sender's *wire*. It waits behind the packets already waiting or being sent;
   if the bytes waiting (not yet started) plus this packet exceed ``queue``, it is
   dropped (drop-tail, ``dropped_queue``). Otherwise it leaves the wire at
   ``start + len / rate``. ``rate=None``: no serialisation time, ``queue`` ignored.
2. **loss** -- dropped with probability ``loss`` (it still used its wire time, like a
   packet lost on the path). ``loss=1.0`` cuts the path.
3. **corrupt** -- with probability ``corrupt`` one byte of the IPv6 *payload* (after
   the 40-byte fixed header) is XORed with a random non-zero mask (1 to 8 bit flips).
   The addresses are never touched, so the packet still reaches its destination, and
   a change confined to one byte always changes the Internet checksum, so the
   receiver's transport checksum is guaranteed to catch it. A packet with no payload
   gets the flip in bytes 0..7 (version, class, flow label, length, next header, hop
   limit) instead.
4. **duplicate** -- with probability ``duplicate`` a second, identical copy (after
   corruption) arrives right after the first.
5. **delay / jitter** -- one-way ``delay`` plus a uniform offset in
   ``[-jitter, +jitter]``, never below zero. Jitter does *not* reorder: a path is a
   FIFO, so a packet never arrives before the one sent before it on the same path
   (its arrival is raised to that one's arrival if needed). Only ``reorder`` reorders.
6. **reorder** -- with probability ``reorder`` the packet is held back by an extra
   ``reorder_delay * (1 + U[0, 1))``, where ``reorder_delay`` defaults to
   ``max(delay, 1 ms)``; packets sent during that time overtake it. A held packet does
   not hold back the ones after it.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from heapq import heappop, heappush
from typing import Any, Literal

import attrs
import trio

from ..alarm import Alarm
from ..wire.ipv6 import IPV6_HEADER_LEN
from .base import Link, LinkCapabilities, Packet, capabilities_of

__all__ = [
    "Counters",
    "ImpairedLink",
    "Impairer",
    "Impairments",
    "PathState",
    "Wire",
    "corrupt_packet",
    "impair_link",
]

_MIN_REORDER_DELAY = 0.001


def _probability(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (value < 0 or math.isnan(value)):
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


@attrs.frozen
class Impairments:
    """What happens to packets on a path (see the module docstring for the order).

    ``delay``/``jitter``/``reorder_delay`` in seconds; ``loss``, ``duplicate``,
    ``reorder``, ``corrupt`` are per-packet probabilities; ``rate`` is bytes per
    second (None: unlimited); ``queue`` the drop-tail queue in bytes in front of the
    rate (None: unlimited).
    """

    delay: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    loss: float = attrs.field(default=0.0, converter=float, validator=_probability)
    duplicate: float = attrs.field(default=0.0, converter=float, validator=_probability)
    reorder: float = attrs.field(default=0.0, converter=float, validator=_probability)
    corrupt: float = attrs.field(default=0.0, converter=float, validator=_probability)
    rate: float | None = attrs.field(default=None, validator=_positive)
    queue: int | None = attrs.field(default=None, validator=_non_negative)
    reorder_delay: float | None = attrs.field(default=None, validator=_positive)

    @property
    def trivial(self) -> bool:
        """True when packets pass untouched and instantly."""
        return (
            self.delay == 0.0
            and self.jitter == 0.0
            and self.loss == 0.0
            and self.duplicate == 0.0
            and self.reorder == 0.0
            and self.corrupt == 0.0
            and self.rate is None
        )

    def evolve(self, **changes: Any) -> Impairments:
        """A copy with ``changes``; an unknown name raises TypeError."""
        check_names(changes)
        return attrs.evolve(self, **changes)


IMPAIRMENT_NAMES: frozenset[str] = frozenset(a.name for a in attrs.fields(Impairments))


def check_names(changes: Iterable[str]) -> None:
    """Raise TypeError for any name that is not an :class:`Impairments` field."""
    unknown = sorted(set(changes) - IMPAIRMENT_NAMES)
    if unknown:
        raise TypeError(
            f"unknown impairment(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(IMPAIRMENT_NAMES))}"
        )


class Counters:
    """Packet counters; :meth:`as_dict` gives them as ``dict[str, int]``."""

    NAMES = (
        "sent",
        "delivered",
        "dropped_loss",
        "dropped_queue",
        "dropped_mtu",
        "dropped_no_route",
        "dropped_malformed",
        "dropped_rx_overflow",
        "duplicated",
        "corrupted",
        "reordered",
    )
    __slots__ = NAMES

    def __init__(self) -> None:
        self.sent = 0
        self.delivered = 0
        self.dropped_loss = 0
        self.dropped_queue = 0
        self.dropped_mtu = 0
        self.dropped_no_route = 0
        self.dropped_malformed = 0
        self.dropped_rx_overflow = 0
        self.duplicated = 0
        self.corrupted = 0
        self.reordered = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.NAMES}


class Wire:
    """One sender's serialisation state for ``rate``/``queue``."""

    __slots__ = ("_waiting", "busy_until", "queued_bytes")

    def __init__(self) -> None:
        self.busy_until = -math.inf
        self.queued_bytes = 0
        # (start of transmission, size) of packets still waiting in the queue.
        self._waiting: deque[tuple[float, int]] = deque()

    def admit(self, now: float, size: int, rate: float, queue: int | None) -> float | None:
        """When a packet of ``size`` bytes enqueued at ``now`` has left the wire.

        None when the drop-tail queue has no room for it.
        """
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            self.queued_bytes -= waiting.popleft()[1]
        start = self.busy_until if self.busy_until > now else now
        if start > now:
            if queue is not None and self.queued_bytes + size > queue:
                return None
            waiting.append((start, size))
            self.queued_bytes += size
        end = start + size / rate
        self.busy_until = end
        return end


class PathState:
    """Per-path state: the latest scheduled in-order arrival (paths are FIFOs), and
    the path's own generator (``rng``; None: the :class:`Impairer`'s is used)."""

    __slots__ = ("last_at", "rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self.last_at = -math.inf
        self.rng = rng


def corrupt_packet(data: bytes, rng: random.Random) -> bytes:
    """Flip 1..8 bits of one byte of the IPv6 payload (see the module docstring)."""
    buf = bytearray(data)
    n = len(buf)
    if n > IPV6_HEADER_LEN:
        index = rng.randrange(IPV6_HEADER_LEN, n)
    elif n > 0:
        index = rng.randrange(min(n, 8))
    else:
        return data
    buf[index] ^= rng.randrange(1, 256)
    return bytes(buf)


class Impairer:
    """One random generator plus counters; decides each packet's fate.

    A path that has a generator of its own (:attr:`PathState.rng`) draws from it
    instead, so that its fates do not depend on other paths' traffic.
    """

    __slots__ = ("counters", "rng")

    def __init__(self, seed: int | bytes | None = None, counters: Counters | None = None) -> None:
        self.rng = random.Random(seed)
        self.counters = counters if counters is not None else Counters()

    def fate(
        self, imp: Impairments, data: bytes, now: float, wire: Wire, path: PathState
    ) -> tuple[float, bytes, int]:
        """Decide what happens to ``data`` sent at ``now``.

        Returns ``(arrival time, packet as delivered, copies)``; ``copies`` is 0 when
        the packet is dropped (the reason is counted), 1, or 2 when duplicated.
        Does not count ``sent`` or ``delivered``.
        """
        c = self.counters
        rng = path.rng or self.rng
        at = now
        if imp.rate is not None:
            end = wire.admit(now, len(data), imp.rate, imp.queue)
            if end is None:
                c.dropped_queue += 1
                return (now, data, 0)
            at = end
        if imp.loss and rng.random() < imp.loss:
            c.dropped_loss += 1
            return (at, data, 0)
        if imp.corrupt and rng.random() < imp.corrupt:
            data = corrupt_packet(data, rng)
            c.corrupted += 1
        copies = 1
        if imp.duplicate and rng.random() < imp.duplicate:
            copies = 2
            c.duplicated += 1
        delay = imp.delay
        if imp.jitter:
            delay += rng.uniform(-imp.jitter, imp.jitter)
            if delay < 0.0:
                delay = 0.0
        at += delay
        if at < path.last_at:
            at = path.last_at
        if imp.reorder and rng.random() < imp.reorder:
            base = imp.reorder_delay
            if base is None:
                base = imp.delay if imp.delay > _MIN_REORDER_DELAY else _MIN_REORDER_DELAY
            at += base * (1.0 + rng.random())
            c.reordered += 1
        else:
            path.last_at = at
        return (at, data, copies)


# --------------------------------------------------------------------------------------
# ImpairedLink: the same impairments around any link.


class _Scheduler:
    """A time-ordered heap of packets handed to ``sink`` when due (one task: run())."""

    def __init__(self, sink: Callable[[list[bytes]], Awaitable[None]]) -> None:
        self._sink = sink
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._alarm = Alarm("a scheduler has one task")
        self.closed = False

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, data: bytes) -> None:
        self._seq += 1
        heappush(self._heap, (at, self._seq, data))
        self._alarm.wake_by(at)

    def close(self) -> None:
        self.closed = True
        self._alarm.wake()

    async def run(self) -> None:
        heap = self._heap
        while not self.closed:
            now = trio.current_time()
            batch: list[bytes] = []
            while heap and heap[0][0] <= now:
                batch.append(heappop(heap)[2])
            if batch:
                await self._sink(batch)
                continue
            await self._alarm.sleep_until(heap[0][0] if heap else math.inf)


class _Direction:
    """The impairment state of one direction of an ImpairedLink."""

    def __init__(self, imp: Impairments, impairer: Impairer) -> None:
        self.imp = imp
        self.impairer = impairer
        self.wire = Wire()
        self.path = PathState()


Direction = Literal["send", "receive"]


class ImpairedLink:
    """Wrap any :class:`~trio_tcp6.links.Link` and impair its traffic in trio time.

    ``ImpairedLink(link, *, seed=None, delay=0.0, jitter=0.0, loss=0.0, duplicate=0.0,
    reorder=0.0, corrupt=0.0, rate=None, queue=None, reorder_delay=None, send=None,
    receive=None, rx_queue=4096)``: the knobs (as in :class:`Impairments`) apply to
    both directions, each with its own wire and path state; ``send=``/``receive=``
    give an :class:`Impairments` for one direction instead (``send`` = packets this
    side sends through ``link``, ``receive`` = packets ``link`` hands up).
    All randomness comes from one ``random.Random(seed)``.

    Delayed packets need background tasks: use ``async with impair_link(link, ...) as
    ilink`` (or run :meth:`run` in a nursery of your own before using it).
    ``stats()`` gives the counters of each direction; :meth:`impair` changes the
    impairments at any time. ``receive``'s inbound queue is bounded by
    ``rx_queue`` packets (overflow drops, counted as ``dropped_rx_overflow``).
    It offers the batch forms (:attr:`capabilities`), and uses those ``link``
    declares; no checksum offload (a packet it may corrupt must carry a full
    checksum).
    """

    def __init__(
        self,
        link: Link,
        *,
        seed: int | None = None,
        delay: float = 0.0,
        jitter: float = 0.0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        corrupt: float = 0.0,
        rate: float | None = None,
        queue: int | None = None,
        reorder_delay: float | None = None,
        send: Impairments | None = None,
        receive: Impairments | None = None,
        rx_queue: int = 4096,
    ) -> None:
        both = Impairments(
            delay=delay,
            jitter=jitter,
            loss=loss,
            duplicate=duplicate,
            reorder=reorder,
            corrupt=corrupt,
            rate=rate,
            queue=queue,
            reorder_delay=reorder_delay,
        )
        rng = random.Random(seed)
        tx = Impairer(counters=Counters())
        rx = Impairer(counters=Counters())
        tx.rng = rx.rng = rng  # one generator for the whole link
        self.link = link
        self._inner = capabilities_of(link)
        self._tx = _Direction(send if send is not None else both, tx)
        self._rx = _Direction(receive if receive is not None else both, rx)
        self._tx_sched = _Scheduler(self._send_due)
        self._rx_sched = _Scheduler(self._receive_due)
        self._rx_queue: deque[bytes] = deque()
        self._rx_limit = rx_queue
        self._rx_alarm = Alarm("another task is already receiving")
        self._running = False
        self._closed = False
        self._rx_error: BaseException | None = None

    @property
    def mtu(self) -> int:
        return self.link.mtu

    @property
    def capabilities(self) -> LinkCapabilities:
        """The batch forms (see :class:`~trio_tcp6.links.base.LinkCapabilities`), and
        the wrapped link's ``seed`` (a host on a simulated network stays seeded)."""
        return LinkCapabilities(
            receive_batch=self.receive_batch,
            send_batch=self.send_batch,
            seed=self._inner.seed,
        )

    def impairments(self, direction: Direction) -> Impairments:
        return self._tx.imp if direction == "send" else self._rx.imp

    def impair(self, direction: Direction | None = None, **changes: Any) -> None:
        """Change impairments for ``"send"``, ``"receive"`` or (None) both."""
        check_names(changes)
        for d, name in ((self._tx, "send"), (self._rx, "receive")):
            if direction is None or direction == name:
                d.imp = d.imp.evolve(**changes)

    def stats(self) -> dict[str, dict[str, int]]:
        """``{"send": counters, "receive": counters}``."""
        return {
            "send": self._tx.impairer.counters.as_dict(),
            "receive": self._rx.impairer.counters.as_dict(),
        }

    # -- background --------------------------------------------------------------

    async def run(self) -> None:
        """Run the background tasks (until cancelled or closed)."""
        if self._running:
            raise RuntimeError("ImpairedLink.run() is already running")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._tx_sched.run)
                nursery.start_soon(self._rx_sched.run)
                nursery.start_soon(self._reader)
        finally:
            self._running = False

    async def _reader(self) -> None:
        link = self.link
        batch_fn = self._inner.receive_batch
        try:
            while not self._closed:
                if batch_fn is not None:
                    packets = await batch_fn()
                else:
                    packets = [await link.receive()]
                now = trio.current_time()
                for p in packets:
                    self._impair_inbound(bytes(p), now)
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel) as exc:
            self._rx_error = exc
            self._wake()

    def _impair_inbound(self, data: bytes, now: float) -> None:
        d = self._rx
        d.impairer.counters.sent += 1
        if d.imp.trivial and d.path.last_at <= now:
            self._enqueue([data])
            return
        at, data, copies = d.impairer.fate(d.imp, data, now, d.wire, d.path)
        for _ in range(copies):
            if at <= now:
                self._enqueue([data])
            else:
                self._rx_sched.push(at, data)

    async def _receive_due(self, batch: list[bytes]) -> None:
        self._enqueue(batch)

    def _enqueue(self, batch: list[bytes]) -> None:
        c = self._rx.impairer.counters
        q = self._rx_queue
        for data in batch:
            if len(q) >= self._rx_limit:
                c.dropped_rx_overflow += 1
            else:
                q.append(data)
                c.delivered += 1
        self._wake()

    def _wake(self) -> None:
        self._rx_alarm.wake()

    async def _send_due(self, batch: list[bytes]) -> None:
        await self._send_out(batch)

    async def _send_out(self, batch: list[bytes]) -> None:
        self._tx.impairer.counters.delivered += len(batch)
        send_batch = self._inner.send_batch
        if send_batch is not None:
            await send_batch(batch)
        else:
            for p in batch:
                await self.link.send(p)

    # -- Link --------------------------------------------------------------------

    async def send(self, packet: Packet) -> None:
        await self.send_batch([packet])

    async def send_batch(self, packets: Iterable[Packet]) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("ImpairedLink is closed")
        d = self._tx
        now = trio.current_time()
        out: list[bytes] = []
        for packet in packets:
            data = packet if type(packet) is bytes else bytes(packet)
            d.impairer.counters.sent += 1
            if d.imp.trivial and d.path.last_at <= now:
                out.append(data)
                continue
            at, data, copies = d.impairer.fate(d.imp, data, now, d.wire, d.path)
            for _ in range(copies):
                if at <= now:
                    out.append(data)
                else:
                    self._tx_sched.push(at, data)
        if out:
            await self._send_out(out)
        else:
            await trio.lowlevel.checkpoint()

    async def receive(self) -> bytes:
        await self._wait_ready()
        return self._rx_queue.popleft()

    async def receive_batch(self) -> list[bytes]:
        await self._wait_ready()
        batch = list(self._rx_queue)
        self._rx_queue.clear()
        return batch

    async def _wait_ready(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("ImpairedLink is closed")
            if self._rx_queue:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            if self._rx_error is not None and not len(self._rx_sched):
                raise trio.ClosedResourceError("the wrapped link is closed") from self._rx_error
            await self._rx_alarm.sleep_until()

    def close(self) -> None:
        """Stop impairing; pending delayed packets are discarded. The wrapped link stays
        open (close it yourself)."""
        self._closed = True
        self._rx_queue.clear()
        self._tx_sched.close()
        self._rx_sched.close()
        self._wake()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


@asynccontextmanager
async def impair_link(
    link: Link,
    *,
    seed: int | None = None,
    delay: float = 0.0,
    jitter: float = 0.0,
    loss: float = 0.0,
    duplicate: float = 0.0,
    reorder: float = 0.0,
    corrupt: float = 0.0,
    rate: float | None = None,
    queue: int | None = None,
    reorder_delay: float | None = None,
    send: Impairments | None = None,
    receive: Impairments | None = None,
    rx_queue: int = 4096,
) -> AsyncIterator[ImpairedLink]:
    """``async with impair_link(link, delay=0.05, loss=0.01) as ilink:`` -- an
    :class:`ImpairedLink` (same arguments) whose background tasks live inside the
    block; leaving it stops them (the wrapped link stays open)."""
    ilink = ImpairedLink(
        link,
        seed=seed,
        delay=delay,
        jitter=jitter,
        loss=loss,
        duplicate=duplicate,
        reorder=reorder,
        corrupt=corrupt,
        rate=rate,
        queue=queue,
        reorder_delay=reorder_delay,
        send=send,
        receive=receive,
        rx_queue=rx_queue,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ilink.run)
        try:
            yield ilink
        finally:
            ilink.close()
            nursery.cancel_scope.cancel()
