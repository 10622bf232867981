"""Links: raw IPv6 packets in and out.

:class:`VirtualNetwork` (in memory, impairments, virtual time), :class:`ImpairedLink`
(the same impairments around any link) and the :class:`Link` protocol.
"""

from __future__ import annotations

from .base import Link, Packet
from .impair import Counters, ImpairedLink, Impairer, Impairments, impair_link
from .virtual import Capture, VirtualLink, VirtualNetwork

__all__ = [
    "Capture",
    "Counters",
    "ImpairedLink",
    "Impairer",
    "Impairments",
    "Link",
    "Packet",
    "VirtualLink",
    "VirtualNetwork",
    "impair_link",
]
