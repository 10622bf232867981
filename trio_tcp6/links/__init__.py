"""Links: raw IPv6 packets in and out.

:class:`VirtualNetwork` (in memory, impairments, virtual time), :class:`ImpairedLink`
(the same impairments around any link), :func:`open_tun` (a Linux TUN device, with
optional TSO/checksum offload), the :class:`Link` protocol and
:class:`LinkCapabilities`, what a link declares beyond it.
"""

from __future__ import annotations

from .base import ChecksumOffload, Link, LinkCapabilities, Packet, capabilities_of
from .impair import Counters, ImpairedLink, Impairer, Impairments, impair_link
from .tun import TunLink, open_tun
from .virtual import Capture, VirtualLink, VirtualNetwork

__all__ = [
    "Capture",
    "ChecksumOffload",
    "Counters",
    "ImpairedLink",
    "Impairer",
    "Impairments",
    "Link",
    "LinkCapabilities",
    "Packet",
    "TunLink",
    "VirtualLink",
    "VirtualNetwork",
    "capabilities_of",
    "impair_link",
    "open_tun",
]
