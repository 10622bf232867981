"""A network simulator in virtual time: hosts, routers, cables with a rate, a delay
and a queue, ICMPv6 errors from routers, and exact replay from a seed.

``from trio_tcp6.sim import Network, DropTail, dumbbell``; see the user guide's
"Simulating networks" page. The modules, one concept each:

* :mod:`~trio_tcp6.sim.network` -- :class:`Network`: topology, routes, the event
  heap, capture, counters;
* :mod:`~trio_tcp6.sim.link` -- :class:`Cable` and its two :class:`Channel`
  directions (queue, serializer, delay, loss);
* :mod:`~trio_tcp6.sim.queue` -- the :class:`Queue` protocol and :class:`DropTail`;
* :mod:`~trio_tcp6.sim.router` -- :class:`Router`: forwarding and ICMPv6 errors;
* :mod:`~trio_tcp6.sim.host` -- :class:`Host` and the :class:`HostLink` a stack
  runs on;
* :mod:`~trio_tcp6.sim.topology` -- :func:`dumbbell`.
"""

from __future__ import annotations

from .aqm import CoDel as CoDel
from .aqm import FQCoDel as FQCoDel
from .host import Host, HostLink
from .link import Cable, Channel, QueueFactory
from .network import Capture, Network
from .node import Node
from .queue import DropTail, Queue
from .router import Router
from .topology import Dumbbell, dumbbell

__all__ = [
    "Cable",
    "Capture",
    "Channel",
    "DropTail",
    "Dumbbell",
    "Host",
    "HostLink",
    "Network",
    "Node",
    "Queue",
    "QueueFactory",
    "Router",
    "dumbbell",
]
