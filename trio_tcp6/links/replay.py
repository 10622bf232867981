"""Exact replay: the pieces that make a simulated network's run a function of its seed.

A simulation is reproducible when nothing in it depends on the order in which trio
happens to run the tasks that are ready at the same instant (trio shuffles them, with
its own unseeded generator). Three things are needed, and this module provides the
network's share of them:

* **Seeded secrets** (:func:`derive_seed`): every generator and secret is derived from
  the user's seed with BLAKE2 keyed by the seed and a per-purpose label (and the
  identity of what it is for: a path's two addresses, a host's address), never drawn
  from one shared stream. A stack on a seeded network derives its own secrets (ISN,
  timestamp offsets, ephemeral ports, SYN cookies) from the seed the network gives
  it for its address.
* **Fates by the packet's identity** (:func:`path_random`): each path (source link,
  destination) has its own ``random.Random`` seeded from ``(seed, source,
  destination)``, drawn in that path's order. Traffic on one path does not shift the
  draws of another.
* **A canonical order within an instant** (:class:`InstantOrder`): the packets sent
  during one instant are *held*, and released only once every other task is blocked
  (``trio.testing.wait_all_tasks_blocked``), sorted by :func:`packet_key` -- the
  sending link, then the destination, protocol, source and ports -- with each
  flow's packets kept in the order that flow sent them. The network then decides
  their fates, and delivers them, in that order. Hosts cannot see one another's
  packets of an instant before the release, so the set a host sends in an instant is
  what its own inputs made it send, and the release order does not depend on which
  host ran first.

Why this is enough between hosts: everything a host receives in an instant arrives
in one release, before it runs (its receiver then takes the whole batch), so what it
does next depends on what it was sent, not on when its tasks ran. Timers that expire
at an instant run before that instant's release (the release waits for them), so a
timer and an arrival at the same virtual time are always handled in the same order.
Within one host the network cannot order tasks: a program whose tasks on one host
race on state of their own (which of two tasks woken together goes first) is not
made deterministic by it. Independent connections on one host do not matter, nor
(in the replay test) one socket read by one task while another writes it. The order
within an instant is the network's, not the program's: of two packets two hosts
send at one virtual time, the one from the lower address is routed first, whichever
the program sent first.

The waiting has a cost, paid only where this order is used: a packet is delivered
after a scheduling pass instead of synchronously, and an instant in which anything
is sent costs one more pass of trio's run loop. Under ``MockClock`` the wait is
instantaneous in virtual time (trio wakes tasks waiting for idleness before it jumps
the clock); in real time it lasts until the run loop finds nothing to run. A task
that never blocks (a busy loop of ``trio.sleep(0)``) holds every packet back. Another
task waiting in ``wait_all_tasks_blocked()`` (with the same ``cushion``, 0) is woken
together with the release, so it may look before the packets arrive.

Checked in trio 0.35's run loop (``trio/_core/_run.py``): while a task waits for
idleness, the ``MockClock`` autojump is not primed (tasks waiting for idleness are
woken instead, without moving the clock); in real time they are woken when an I/O
wait of ``cushion`` seconds finds nothing to do. So a network waits only when it
holds something, else the clock could never jump.

:class:`InstantOrder` knows nothing of a particular network: a network calls
:meth:`InstantOrder.hold` for each outbound packet and, from its own delivery task,
``await`` :meth:`InstantOrder.settle` to get them back in order.
"""

from __future__ import annotations

import hashlib
import random
from operator import itemgetter
from typing import Generic, TypeVar

__all__ = ["InstantOrder", "derive_seed", "packet_key", "path_random", "seed_bytes"]

T = TypeVar("T")

_by_key = itemgetter(0)


def seed_bytes(seed: int | bytes) -> bytes:
    """``seed`` as bytes (an int in its signed big-endian form, at least one byte)."""
    if isinstance(seed, bytes):
        if not seed:
            raise ValueError("a seed must not be empty")
        return seed
    return seed.to_bytes(seed.bit_length() // 8 + 1, "big", signed=True)


def derive_seed(seed: int | bytes, label: str, *parts: bytes) -> bytes:
    """32 bytes for ``label`` (what they are for) and ``parts`` (whom they are for),
    derived from ``seed``: BLAKE2b keyed with the seed. Different labels or parts
    give unrelated values; the same ones always the same."""
    key = seed_bytes(seed)
    if len(key) > 64:
        key = hashlib.blake2b(key).digest()
    h = hashlib.blake2b(digest_size=32, key=key, person=b"trio_tcp6-seed")
    h.update(label.encode())
    for part in parts:
        h.update(len(part).to_bytes(2, "big"))
        h.update(part)
    return h.digest()


def path_random(seed: int | bytes, src: bytes, dst: bytes) -> random.Random:
    """The generator of path ``src``→``dst``'s packet fates, seeded from ``(seed, src,
    dst)``."""
    return random.Random(int.from_bytes(derive_seed(seed, "path", src, dst), "big"))


def packet_key(source: bytes, data: bytes) -> bytes:
    """The canonical sort key of IPv6 packet ``data`` sent by the link with address
    ``source``: the source link, then destination address, next header, the claimed
    source address and the first four payload bytes (the ports of TCP and UDP). The
    packets of one flow share a key, so a stable sort keeps their order."""
    return source + data[24:40] + data[6:7] + data[8:24] + data[40:44]


class InstantOrder(Generic[T]):
    """Packets held during one instant, given back in canonical order.

    :meth:`hold` (synchronous, from any task) keeps an item under a sort key
    (:func:`packet_key`); :meth:`settle` (from the one task that releases them)
    waits until every other task is blocked, then returns everything held, sorted
    by key -- stably, so items with equal keys stay in the order they were held.
    ``len()`` is the number of items held.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: list[tuple[bytes, T]] = []

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, key: bytes, item: T) -> None:
        """Keep ``item`` until the next :meth:`settle`."""
        self._held.append((key, item))

    def clear(self) -> None:
        """Forget everything held."""
        self._held.clear()

    async def settle(self) -> list[T]:
        """Wait until every other task is blocked, then take the held items, sorted."""
        # (Imported here: trio.testing costs an import that a network without
        # deterministic order never needs.)
        from trio.testing import wait_all_tasks_blocked

        await wait_all_tasks_blocked()
        held = self._held
        self._held = []
        held.sort(key=_by_key)
        return [item for _key, item in held]
