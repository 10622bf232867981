"""Ready-made topologies: the dumbbell.

A dumbbell is N senders behind router ``r1``, N receivers behind router ``r2``,
and one bottleneck cable ``r1-r2`` that all N flows share::

    sender0 ─┐                         ┌─ receiver0
    sender1 ─┤── r1 ══ bottleneck ══ r2 ├─ receiver1
    ...     ─┘                         └─ ...

Sender *i* is ``2001:db8:1::<i+1>``, receiver *i* ``2001:db8:2::<i+1>``. The
round-trip propagation time of pair *i* is ``rtt`` (or ``rtt[i]``): the bottleneck
has a one-way delay of half the smallest of them, and each access cable of pair *i*
a quarter of what pair *i* needs beyond that. Serialization adds to it: a packet
of L bytes spends ``8 L / rate`` on the bottleneck (and on an access cable when
``access_rate`` is set).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .host import Host
from .link import Cable, Channel, QueueFactory
from .network import Network
from .router import Router

__all__ = ["Dumbbell", "dumbbell"]


@attrs.frozen
class Dumbbell:
    """What :func:`dumbbell` built. :attr:`bottleneck` is the ``r1->r2`` direction
    (its ``queue`` and ``stats()``); :attr:`reverse` the ``r2->r1`` one (the ACKs)."""

    net: Network
    senders: list[Host]
    receivers: list[Host]
    r1: Router
    r2: Router
    cable: Cable
    bottleneck: Channel
    reverse: Channel


def dumbbell(
    n: int = 1,
    *,
    rate: float | None = 10e6,
    rtt: float | Sequence[float] = 0.040,
    queue: QueueFactory | None = None,
    access_rate: float | None = None,
    mtu: int = 1500,
    loss: float = 0.0,
    seed: int = 0,
    net: Network | None = None,
) -> Dumbbell:
    """Build a dumbbell of ``n`` sender/receiver pairs (see the module docstring).

    ``rate``: the bottleneck's bits per second; ``queue``: the factory of its queues
    (one per direction); ``rtt``: round-trip propagation time, one for all pairs or
    one per pair; ``access_rate``: the access cables' rate (None: no serialization
    there); ``mtu``: of every cable; ``loss``: of the bottleneck (each direction);
    ``seed``: of the new network, or ``net``: build it in an existing network.
    """
    if n < 1:
        raise ValueError("a dumbbell needs at least one pair")
    rtts = [float(rtt)] * n if isinstance(rtt, (int, float)) else [float(x) for x in rtt]
    if len(rtts) != n:
        raise ValueError(f"{n} pairs need {n} round-trip times, not {len(rtts)}")
    if min(rtts) < 0:
        raise ValueError("a round-trip time is not negative")
    network = net if net is not None else Network(seed=seed)
    r1 = network.router("r1")
    r2 = network.router("r2")
    one_way = min(rtts) / 2
    cable = network.connect(r1, r2, rate=rate, delay=one_way, mtu=mtu, loss=loss, queue=queue)
    senders, receivers = [], []
    for i, pair_rtt in enumerate(rtts):
        access = (pair_rtt / 2 - one_way) / 2
        s = network.host(f"sender{i}", f"2001:db8:1::{i + 1:x}")
        d = network.host(f"receiver{i}", f"2001:db8:2::{i + 1:x}")
        network.connect(s, r1, rate=access_rate, delay=access, mtu=mtu)
        network.connect(r2, d, rate=access_rate, delay=access, mtu=mtu)
        senders.append(s)
        receivers.append(d)
    return Dumbbell(network, senders, receivers, r1, r2, cable, cable.forward, cable.reverse)
