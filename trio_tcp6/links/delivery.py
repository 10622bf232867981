"""DeliveryTask: when a VirtualNetwork's packets arrive -- later, or at the end of
their instant in a canonical order.

A packet on an impaired path may be due later (delay, jitter, a rate's queue): it
waits in ONE heap per network, keyed by ``(due time, sequence)`` so that packets
due at the same time arrive in the order they were scheduled. With exact replay
(``deterministic=True``) every packet sent during an instant is *held* instead, in
an :class:`~trio_tcp6.links.replay.InstantOrder`, and released once every task is
blocked, in canonical order, after the packets the heap releases at that instant
(see :mod:`trio_tcp6.links.replay` for why that makes a run a function of its seed).

Both are served by one trio *system task*, spawned lazily on the first packet that
needs it (so a network needs no ``async with``), which ends with :meth:`close` or
with the trio run. It sleeps on an :class:`~trio_tcp6.alarm.Alarm` with trio
deadlines only, so everything runs in virtual time under
``trio.testing.MockClock(autojump_threshold=0)``.

The task knows nothing of links: the network gives it ``deliver(item, now)`` for a
due packet and ``release(held)`` for an instant's held packets, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Generic, TypeVar

import trio

from ..alarm import Alarm
from .replay import InstantOrder

__all__ = ["DeliveryTask"]

Due = TypeVar("Due")
Held = TypeVar("Held")


class DeliveryTask(Generic[Due, Held]):
    """One network's delivery task (see the module docstring). ``name``: the trio
    task's; ``deterministic``: hold each instant's packets for a canonical release."""

    def __init__(
        self,
        name: str,
        deliver: Callable[[Due, float], None],
        release: Callable[[list[Held]], None],
        deterministic: bool,
    ) -> None:
        self._name = name
        self._deliver = deliver
        self._release = release
        self._heap: list[tuple[float, int, Due]] = []
        self._seq = 0
        #: Packets held until the end of their instant (``deterministic``).
        self.order: InstantOrder[Held] | None = InstantOrder() if deterministic else None
        self._task: trio.lowlevel.Task | None = None
        self._alarm = Alarm("a network has one delivery task")
        self.closed = False

    def __len__(self) -> int:
        """Packets scheduled or held, not yet delivered (in flight)."""
        return len(self._heap) + (len(self.order) if self.order is not None else 0)

    def schedule(self, at: float, item: Due) -> None:
        """Deliver ``item`` at trio time ``at`` (ties: in the order scheduled)."""
        self._seq += 1
        heappush(self._heap, (at, self._seq, item))
        if self._task is None:
            self._spawn()
        else:
            self._alarm.wake_by(at)

    def hold(self, key: bytes, item: Held) -> None:
        """Hold ``item`` for the end of this instant (``deterministic`` only); ``key``
        its place in the canonical order (:func:`~trio_tcp6.links.replay.packet_key`)."""
        assert self.order is not None
        self.order.hold(key, item)
        if self._task is None:
            self._spawn()
        else:
            self._alarm.wake()

    def close(self) -> None:
        """Discard everything in flight and end the task."""
        self.closed = True
        self._heap.clear()
        if self.order is not None:
            self.order.clear()
        self._alarm.wake()

    def _spawn(self) -> None:
        self._task = trio.lowlevel.spawn_system_task(self._run, name=self._name)

    def _deliver_due(self, now: float) -> None:
        heap = self._heap
        deliver = self._deliver
        while heap and heap[0][0] <= now:
            item = heappop(heap)[2]
            deliver(item, now)

    async def _run(self) -> None:
        heap = self._heap
        order = self.order
        try:
            while not self.closed:
                now = trio.current_time()
                if order is not None and (order or (heap and heap[0][0] <= now)):
                    # The end of an instant: once every task is blocked, what the heap
                    # releases now, then what was sent now, in canonical order.
                    held = await order.settle()
                    if self.closed:
                        break
                    self._deliver_due(trio.current_time())
                    self._release(held)
                    continue
                self._deliver_due(now)
                if self.closed:
                    break
                await self._alarm.sleep_until(heap[0][0] if heap else math.inf)
        finally:
            self._task = None
