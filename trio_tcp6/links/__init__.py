"""Links: raw IPv6 packets in and out.

:class:`VirtualNetwork` (in memory, impairments, virtual time), :class:`ImpairedLink`
(the same impairments around any link), :func:`open_tun` (a Linux TUN device, with
optional TSO/checksum offload) and the :class:`Link` protocol.
"""

from __future__ import annotations

from .base import Link, Packet
from .impair import Counters, ImpairedLink, Impairer, Impairments, impair_link
from .tun import TunLink, open_tun
from .virtual import Capture, VirtualLink, VirtualNetwork

__all__ = [
    "Capture",
    "Counters",
    "ImpairedLink",
    "Impairer",
    "Impairments",
    "Link",
    "Packet",
    "TunLink",
    "VirtualLink",
    "VirtualNetwork",
    "impair_link",
    "open_tun",
]
