"""A link on a Linux TUN device: raw IPv6 packets to and from the kernel.

``async with open_tun("tt0") as link:`` creates the interface ``tt0`` (``IFF_TUN |
IFF_NO_PI``: every read and write is one IP packet, no link-layer header and no
packet-information prefix) and yields a :class:`TunLink`. The interface exists as long
as the link is open; closing the link removes it.

What the kernel side needs (done by whoever sets up the test or host, e.g.
``tests/netns.py``): an address in a prefix and the interface up, e.g.::

    ip -n NS addr add fd00:7463:70::1/64 dev tt0 nodad
    ip -n NS link set tt0 up

or, without iproute2, ``link.add_kernel_address("fd00:7463:70::1", 64)`` and
``link.set_up()`` (ioctls). The prefix route (``fd00:7463:70::/64 dev tt0``) comes with
the address; no sysctl is needed. A TUN device is point-to-point without link-layer
addresses (``IFF_POINTOPOINT | IFF_NOARP``), so the kernel does no neighbour discovery
and no duplicate address detection (``nodad`` is harmless but not needed): a packet for
any address of the prefix (the stack uses e.g. ``::2``) is written to the device at
once. The address becomes local when the kernel's addrconf work has run, which can
lag a little behind ``ip link set up`` on a loaded machine (``tests/netns.py`` waits
for it). The kernel also sends some multicast of its own (router solicitations to
``ff02::2``, MLD reports) from its link-local address; the stack drops what is not
addressed to it.

Namespaces: ``open_tun(name, netns="NS")`` creates the interface directly inside the
named network namespace (``ip netns add NS`` made it): the creating thread enters the
namespace with ``setns(2)`` for the two system calls that create the device and a
control socket, then returns. :meth:`TunLink.move_to_netns` moves an open device
(``ip link set NAME netns NS``); the file descriptor keeps working either way.

Batching: :meth:`TunLink.receive` waits for readability once per burst and then reads
until ``EAGAIN`` (bounded by ``max_batch``) into a queue; :meth:`TunLink.receive_batch`
returns the whole queue. Only IPv6 packets are passed up: anything else (an IPv4
packet, a runt) is dropped and counted in :meth:`TunLink.stats`.

Offloads (``offload=True``, the default; ``offload=False`` turns them off) — the
device is opened with ``IFF_VNET_HDR``, and every
packet in both directions is prefixed by a 10-byte ``struct virtio_net_hdr``
(little-endian: ``TUNSETVNETLE``; the codec is :mod:`trio_tcp6.wire.virtio`), which
this module adds and strips:

* Receive: ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO6)`` tells the kernel we accept
  packets with a partial checksum (``VIRTIO_NET_HDR_F_NEEDS_CSUM``: the TCP checksum
  field holds only the folded pseudo-header sum) and TCP super-segments of up to 64 KiB
  (``VIRTIO_NET_HDR_GSO_TCPV6``, ``gso_size`` = the sender's MSS). A super-segment is
  simply one large TCP segment (longer than the MTU: the stack must accept segments
  longer than its MSS, which RFC 9293 allows). :meth:`TunLink.receive_batch_offload`
  (the Link protocol's checksum offload, see :mod:`trio_tcp6.links.base`) hands such
  partial TCP packets up as they are, marked trusted, and marks ``DATA_VALID`` TCP
  packets trusted too: the stack skips verifying what the kernel vouches for. The plain
  ``receive*`` calls complete every partial checksum in software first, so they always
  return packets with a correct checksum. If the kernel refuses ``TUNSETOFFLOAD`` the
  link still works, with :attr:`TunLink.offload` false and only MTU-sized packets; if
  it refuses ``IFF_VNET_HDR`` too, the device is a plain one (no virtio header,
  :attr:`TunLink.vnet_hdr` false). Both fallbacks are silent: asking costs nothing.
* Send: the stack may send TCP packets of up to :attr:`TunLink.gso_max` bytes. A
  packet longer than the MTU is sent as a super-segment: ``gso_type`` TCPV6,
  ``gso_size`` = MTU - 40 - TCP header length (or the ``gso_size`` argument of
  :meth:`TunLink.send`), ``hdr_len`` = 40 + TCP header length, and ``NEEDS_CSUM`` with
  ``csum_start`` 40, ``csum_offset`` 16; the kernel segments it (each segment gets a
  copy of the header; FIN and PSH only the last) and checksums each segment where
  needed. :attr:`TunLink.checksum_offload` is True with a virtio header: the stack
  then builds TCP packets with a partial checksum (``partial_checksum=True`` on
  :meth:`~TunLink.send`, :meth:`~TunLink.send_batch`, :meth:`~TunLink.send_nowait`:
  the field already holds the pseudo-header sum, see :func:`partial_tcp_checksum`),
  which go out with ``NEEDS_CSUM`` whatever their size: the kernel trusts them on local
  delivery and completes them when it forwards them. Without ``partial_checksum`` the
  link rewrites a super-segment's checksum field to the pseudo-header sum (from the
  IPv6 header, without touching the payload) and sends packets that fit the MTU with
  an all-zero header (the kernel verifies their checksum as usual); without a virtio
  header it completes partial checksums in software.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import ipaddress
import os
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator

import trio

from ..wire.checksum import complete_checksum
from ..wire.ipv6 import IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFFSET, PROTO_TCP
from ..wire.tcp import CWR, TCP_CHECKSUM_OFFSET, TCP_HEADER_LEN, partial_tcp_checksum

# The virtio-net header codec lives in wire.virtio (its flag and type constants too);
# the functions and the header type stay importable from here.
from ..wire.virtio import (
    CSUM_VNET_HDR,
    VIRTIO_NET_HDR_F_DATA_VALID,
    VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV6,
    VNET_HDR,
    VNET_HDR_LEN,
    ZERO_VNET_HDR,
    VirtioNetHdr,
    gso_header_for,
    pack_vnet_hdr,
    unpack_vnet_hdr,
)
from .base import ChecksumOffload, LinkCapabilities, Packet

__all__ = [
    "IFF_NO_PI",
    "IFF_TUN",
    "IFF_VNET_HDR",
    "TUN_F_CSUM",
    "TUN_F_TSO6",
    "VNET_HDR_LEN",
    "TunLink",
    "VirtioNetHdr",
    "complete_checksum",
    "gso_header_for",
    "open_tun",
    "pack_vnet_hdr",
    "partial_tcp_checksum",
    "unpack_vnet_hdr",
]

# --- linux/if_tun.h -------------------------------------------------------------------
# _IOW('T', nr, int) = (1 << 30) | (4 << 16) | (ord('T') << 8) | nr ; _IOR uses 2 << 30.
_IOC_W = 1 << 30
_IOC_R = 2 << 30


def _ioc(direction: int, nr: int, size: int = 4) -> int:
    return direction | (size << 16) | (ord("T") << 8) | nr


TUNSETIFF = _ioc(_IOC_W, 202)
TUNGETFEATURES = _ioc(_IOC_R, 207)
TUNSETOFFLOAD = _ioc(_IOC_W, 208)
TUNGETIFF = _ioc(_IOC_R, 210)
TUNGETVNETHDRSZ = _ioc(_IOC_R, 215)
TUNSETVNETHDRSZ = _ioc(_IOC_W, 216)
TUNSETVNETLE = _ioc(_IOC_W, 220)
TUNGETVNETLE = _ioc(_IOC_R, 221)

IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000

TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08

# --- linux/sockios.h ------------------------------------------------------------------
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCDIFADDR = 0x8936
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
_IN6_IFREQ = struct.Struct("16sIi")  # struct in6_ifreq: address, prefix length, ifindex
IFNAMSIZ = 16
_IFREQ_INT = struct.Struct("16si20x")  # struct ifreq: name, then a union of 24 bytes

#: Largest IPv6 packet without a jumbogram: 40 + 65535.
_MAX_IPV6 = IPV6_HEADER_LEN + 0xFFFF
_READ_SIZE = VNET_HDR_LEN + _MAX_IPV6 + 64
_H = struct.Struct("!H")
#: Where the TCP checksum field lies in a packet with TCP right after the fixed header.
_TCP_CSUM_AT = IPV6_HEADER_LEN + TCP_CHECKSUM_OFFSET
# Marks of received packets (see TunLink._vnet_mark).
_PLAIN = 0
_PARTIAL = 1
_VALID = 2

DEFAULT_DEVICE = "/dev/net/tun"
_NETNS_DIRS = ("/run/netns", "/var/run/netns")
_CLONE_NEWNET = 0x40000000


# --- namespaces -------------------------------------------------------------------------


def _netns_path(netns: str) -> str:
    if "/" in netns:
        return netns
    for d in _NETNS_DIRS:
        path = os.path.join(d, netns)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        errno.ENOENT, f"network namespace {netns!r} not found (create it: ip netns add NAME)"
    )


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python >= 3.12
    if setns is not None:
        setns(fd, _CLONE_NEWNET)
        return
    libc = _libc()
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def _in_netns(netns: str | None) -> Iterator[None]:
    """Run the body with this thread in ``netns`` (no awaits inside!)."""
    if netns is None:
        yield
        return
    target = os.open(_netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        home = os.open(f"/proc/self/task/{_gettid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)
    finally:
        os.close(target)


def _gettid() -> int:
    gettid = getattr(os, "gettid", None)
    if gettid is not None:
        return int(gettid())
    return os.getpid()  # pragma: no cover - Linux Pythons have os.gettid (3.8+)


# --- the device -------------------------------------------------------------------------


def _privilege_error(exc: OSError, what: str) -> PermissionError:
    return PermissionError(
        exc.errno,
        f"{what}: {os.strerror(exc.errno or errno.EPERM)} — creating a TUN device needs "
        "CAP_NET_ADMIN (run as root, or grant the capability: "
        "setcap cap_net_admin+ep on the interpreter, or use a user namespace)",
    )


def _open_device(device: str) -> int:
    try:
        return os.open(device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            errno.ENOENT,
            f"TUN device {device} does not exist: load the tun module (modprobe tun) or "
            "create the node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200)",
            device,
        ) from exc
    except PermissionError as exc:
        raise _privilege_error(exc, f"cannot open {device}") from exc


def _tunsetiff(fd: int, name: str, flags: int) -> str:
    ifr = struct.pack("16sH22x", name.encode(), flags)
    try:
        out = fcntl.ioctl(fd, TUNSETIFF, ifr)
    except PermissionError as exc:
        raise _privilege_error(exc, f"TUNSETIFF {name!r}") from exc
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"TUNSETIFF {name!r} failed: {os.strerror(exc.errno or 0)} "
            "(is the name taken by a device that is not a TUN device of ours?)",
        ) from exc
    return out[:IFNAMSIZ].split(b"\0", 1)[0].decode()


def _ioctl_int(fd: int, request: int, value: int) -> int:
    buf = bytearray(struct.pack("i", value))
    fcntl.ioctl(fd, request, buf, True)
    return int(struct.unpack("i", buf)[0])


class TunLink:
    """A :class:`~trio_tcp6.links.Link` on an open TUN device (made by
    :func:`open_tun`).

    ``mtu``, ``send``/``send_batch``/``send_nowait``, ``receive``/``receive_batch``,
    ``aclose``, and the checksum-offload contract (``checksum_offload``,
    ``partial_checksum=``, ``receive_batch_offload``). One task may receive at a time
    (``trio.BusyResourceError`` otherwise). Extras: ``name``,
    ``netns``, ``fileno()``, ``offload``/``vnet_hdr``/``gso_max``, ``set_mtu``,
    ``read_mtu``, ``set_up``, ``add_kernel_address``, ``move_to_netns``, ``stats()``.
    """

    def __init__(
        self,
        fd: int,
        name: str,
        *,
        vnet_hdr: bool,
        offload: bool,
        netns: str | None,
        control: socket.socket,
        max_batch: int = 256,
    ) -> None:
        self._fd = fd
        self.name = name
        self.netns = netns
        self._control = control
        #: True when the device has a virtio header (we may send super-segments).
        self.vnet_hdr = vnet_hdr
        #: True when the kernel agreed to TUNSETOFFLOAD (it may send us super-segments
        #: and partial checksums; the link completes them).
        self.offload = offload
        self.max_batch = max_batch
        # Marks: _PLAIN, _PARTIAL (a TCP packet with a partial checksum, NEEDS_CSUM,
        # completed when handed to a plain receive) or _VALID (the kernel vouches for
        # its checksum, DATA_VALID).
        # Received reads: (data, offset of the IPv6 packet in it, mark).
        self._rx: deque[tuple[bytes, int, int]] = deque()
        self._receiving = False
        self._closed = False
        # _gso_prefix's cache: (TCP header words, CWR, gso_size, MTU) ->
        # (largest length sent without GSO, packed header or None).
        self._gso_headers: dict[tuple[int, int, int | None, int], tuple[int, bytes | None]] = {}
        self._mtu = self.read_mtu()
        self.rx_packets = 0
        self.rx_bytes = 0
        self.rx_not_ipv6 = 0
        self.rx_gso = 0
        self.rx_csum_completed = 0
        self.rx_csum_trusted = 0
        self.rx_bad_vnet = 0
        #: Waits for readability, and reads that found nothing (EAGAIN): with the
        #: packets, the read system calls and wake-ups the receive side costs.
        self.rx_waits = 0
        self.rx_empty_reads = 0
        self.tx_packets = 0
        self.tx_bytes = 0
        self.tx_gso = 0
        self.tx_errors = 0

    def __repr__(self) -> str:
        ns = f" netns={self.netns}" if self.netns else ""
        off = " offload" if self.offload else ""
        state = " closed" if self._closed else ""
        return f"<TunLink {self.name}{ns} mtu={self._mtu}{off}{state}>"

    # -- properties ----------------------------------------------------------------

    @property
    def mtu(self) -> int:
        """The interface MTU (cached; :meth:`read_mtu` asks the kernel again)."""
        return self._mtu

    @property
    def gso_max(self) -> int:
        """The largest IPv6 packet the stack may hand to :meth:`send`: 65535 bytes
        when the device has a virtio header (TCP packets above the MTU are segmented
        by the kernel), else the MTU."""
        return 0xFFFF if self.vnet_hdr else self._mtu

    @property
    def checksum_offload(self) -> bool:
        """The Link protocol's checksum offload (see :mod:`trio_tcp6.links.base`):
        True with a virtio header. The stack may then send TCP packets with a partial
        checksum (they go out with ``NEEDS_CSUM``; the kernel completes the checksum
        where one is needed, or trusts it on local delivery), and
        :meth:`receive_batch_offload` marks the packets whose checksum the kernel
        vouches for."""
        return self.vnet_hdr and not self._closed

    @property
    def capabilities(self) -> LinkCapabilities:
        """What the stack may use (see :class:`~trio_tcp6.links.base.LinkCapabilities`):
        the batch forms and ``send_nowait`` always; with a virtio header also
        checksum offload (while :attr:`checksum_offload` is True) and
        :attr:`gso_max` above the MTU."""
        offload = None
        if self.vnet_hdr:
            offload = ChecksumOffload(
                active=lambda: self.checksum_offload,
                send=self.send,
                receive_batch=self.receive_batch_offload,
                send_batch=self.send_batch,
                send_nowait=self.send_nowait,
            )
        return LinkCapabilities(
            receive_batch=self.receive_batch,
            send_batch=self.send_batch,
            send_nowait=self.send_nowait,
            checksum_offload=offload,
            gso_max=self.gso_max,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._fd

    def read_mtu(self) -> int:
        """Ask the kernel for the interface MTU (``SIOCGIFMTU``) and cache it."""
        ifr = _IFREQ_INT.pack(self.name.encode(), 0)
        out = fcntl.ioctl(self._control.fileno(), SIOCGIFMTU, ifr)
        self._mtu = int(_IFREQ_INT.unpack(out)[1])
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        """Set the interface MTU (``SIOCSIFMTU``; IPv6 needs at least 1280)."""
        ifr = _IFREQ_INT.pack(self.name.encode(), mtu)
        try:
            fcntl.ioctl(self._control.fileno(), SIOCSIFMTU, ifr)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot set MTU {mtu} on {self.name}: {os.strerror(exc.errno or 0)}"
            ) from exc
        self.read_mtu()

    def _ifindex(self) -> int:
        out = fcntl.ioctl(
            self._control.fileno(), SIOCGIFINDEX, _IFREQ_INT.pack(self.name.encode(), 0)
        )
        return int(_IFREQ_INT.unpack(out)[1])

    def set_up(self, up: bool = True) -> None:
        """Bring the interface up (or down) on the kernel side, like ``ip link set
        NAME up``."""
        fd = self._control.fileno()
        ifr = _IFREQ_INT.pack(self.name.encode(), 0)
        flags = int(struct.unpack_from("16sH", fcntl.ioctl(fd, SIOCGIFFLAGS, ifr))[1])
        flags = flags | IFF_UP if up else flags & ~IFF_UP
        fcntl.ioctl(fd, SIOCSIFFLAGS, struct.pack("16sH22x", self.name.encode(), flags))

    def _addr_ioctl(
        self, request: int, address: str | ipaddress.IPv6Address, prefixlen: int
    ) -> None:
        req = _IN6_IFREQ.pack(ipaddress.IPv6Address(address).packed, prefixlen, self._ifindex())
        with _in_netns(self.netns):
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        with sock:
            fcntl.ioctl(sock.fileno(), request, req)

    def add_kernel_address(
        self, address: str | ipaddress.IPv6Address, prefixlen: int = 64
    ) -> None:
        """Give the kernel side of the interface an IPv6 address (``SIOCSIFADDR``, like
        ``ip addr add ADDRESS/PREFIXLEN dev NAME``); the prefix route comes with it.
        A TUN device is ``NOARP``, so there is no duplicate address detection: the
        address is usable once the interface is up. The stack then uses another
        address of the prefix."""
        self._addr_ioctl(SIOCSIFADDR, address, prefixlen)

    def remove_kernel_address(
        self, address: str | ipaddress.IPv6Address, prefixlen: int = 64
    ) -> None:
        """Remove an address added by :meth:`add_kernel_address`."""
        self._addr_ioctl(SIOCDIFADDR, address, prefixlen)

    async def move_to_netns(self, netns: str) -> None:
        """Move the interface into another network namespace (``ip link set NAME
        netns NS``). The file descriptor keeps working; addresses and the up state
        are lost, as with any move."""
        here = [] if self.netns is None else ["-n", self.netns]
        await trio.run_process(
            ["ip", *here, "link", "set", self.name, "netns", netns], capture_stderr=True
        )
        with _in_netns(netns):
            control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._control.close()
        self._control = control
        self.netns = netns
        self.read_mtu()

    def stats(self) -> dict[str, int]:
        return {
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "rx_not_ipv6": self.rx_not_ipv6,
            "rx_gso": self.rx_gso,
            "rx_csum_completed": self.rx_csum_completed,
            "rx_csum_trusted": self.rx_csum_trusted,
            "rx_bad_vnet": self.rx_bad_vnet,
            "rx_waits": self.rx_waits,
            "rx_empty_reads": self.rx_empty_reads,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "tx_gso": self.tx_gso,
            "tx_errors": self.tx_errors,
        }

    # -- receiving -----------------------------------------------------------------

    def _drain(self) -> None:
        """Read until EAGAIN (or ``max_batch`` packets) into the queue.

        Each read is queued as it came, virtio header and all, with the offset of
        the IPv6 packet in it: the offload receiver takes a view behind the header
        (no copy of a 64 KiB super-segment), the plain ones a copy."""
        fd = self._fd
        rx = self._rx
        read = os.read
        vnet = self.vnet_hdr
        size = _READ_SIZE if vnet else _MAX_IPV6 + 64
        start = VNET_HDR_LEN if vnet else 0
        for _ in range(self.max_batch):
            try:
                data = read(fd, size)
            except BlockingIOError:
                self.rx_empty_reads += 1
                return
            except OSError as exc:
                if exc.errno == errno.EBADFD:  # the interface was deleted
                    raise trio.BrokenResourceError(f"TUN device {self.name} is gone") from exc
                raise
            at, mark = start, _PLAIN
            if vnet:
                if len(data) < VNET_HDR_LEN:
                    self.rx_bad_vnet += 1
                    continue
                if data[0] or data[1]:  # flags or gso_type: anything but a plain packet
                    data, at, mark = self._vnet_mark(data)
                    if not data:
                        continue
            if len(data) <= at or data[at] >> 4 != 6:
                self.rx_not_ipv6 += 1
                continue
            self.rx_packets += 1
            self.rx_bytes += len(data) - at
            rx.append((data, at, mark))

    def _vnet_mark(self, data: bytes) -> tuple[bytes, int, int]:
        """``(data, offset of the packet, mark)`` for a read whose virtio header has
        flags or a GSO type. A ``NEEDS_CSUM`` TCP packet (checksum field right behind
        the fixed IPv6 header) stays partial (:data:`_PARTIAL`); any other
        ``NEEDS_CSUM`` packet is completed here; ``DATA_VALID`` marks the packet
        :data:`_VALID` (virtio 1.x, 5.1.6.4: the device validated the checksum).
        Without either flag the packet is plain: its checksum is verified as usual.
        ``b""`` for a header that cannot be honoured (counted in ``rx_bad_vnet``)."""
        flags, gso_type, _hdr_len, _gso_size, start, offset = VNET_HDR.unpack_from(data)
        if gso_type != VIRTIO_NET_HDR_GSO_NONE:
            self.rx_gso += 1
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            if (
                start == IPV6_HEADER_LEN
                and offset == TCP_CHECKSUM_OFFSET
                and len(data) >= VNET_HDR_LEN + IPV6_HEADER_LEN + TCP_HEADER_LEN
                and data[VNET_HDR_LEN + IPV6_NEXT_HEADER_OFFSET] == PROTO_TCP
            ):
                return data, VNET_HDR_LEN, _PARTIAL
            mv = memoryview(data)[VNET_HDR_LEN:]
            try:
                packet = complete_checksum(mv, start, offset)
            except ValueError:
                self.rx_bad_vnet += 1
                return b"", 0, _PLAIN
            self.rx_csum_completed += 1
            return packet, 0, _PLAIN
        if flags & VIRTIO_NET_HDR_F_DATA_VALID:
            return data, VNET_HDR_LEN, _VALID
        return data, VNET_HDR_LEN, _PLAIN

    def _plain(self, item: tuple[bytes, int, int]) -> bytes:
        """A received packet as a plain receive hands it up: a ``bytes`` copy without
        the virtio header, a partial checksum completed (a correct checksum,
        verifiable like any other)."""
        data, at, mark = item
        if mark == _PARTIAL:
            self.rx_csum_completed += 1
            return complete_checksum(memoryview(data)[at:], IPV6_HEADER_LEN, TCP_CHECKSUM_OFFSET)
        return data[at:] if at else data

    async def _wait(self) -> None:
        """Return with at least one packet queued, or raise."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this link")
        if not self._rx:
            self._drain()
        if self._rx:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self._receiving = True
        try:
            while not self._rx:
                self.rx_waits += 1
                await trio.lowlevel.wait_readable(self._fd)
                self._drain()
        finally:
            self._receiving = False

    async def receive(self) -> bytes:
        """The next IPv6 packet (waits for one)."""
        await self._wait()
        return self._plain(self._rx.popleft())

    async def receive_batch(self) -> list[bytes]:
        """Every packet that is ready (at least one; one wait per burst)."""
        await self._wait()
        plain = self._plain
        batch = [plain(item) for item in self._rx]
        self._rx.clear()
        return batch

    async def receive_batch_offload(self) -> list[tuple[bytes | memoryview, bool]]:
        """:meth:`receive_batch` for a receiver that takes the Link protocol's checksum
        offload (see :mod:`trio_tcp6.links.base`): each packet comes with a mark,
        True for a TCP packet whose checksum the kernel vouches for -- sent with a
        partial checksum (``NEEDS_CSUM``: the field holds the pseudo-header sum, the
        payload was never summed, as over Linux's loopback) or checked already
        (``DATA_VALID``). Those need no verification; the others do. Packets behind
        a virtio header come as read-only ``memoryview`` slices of the read (a
        super-segment is not copied to strip its header)."""
        await self._wait()
        batch: list[tuple[bytes | memoryview, bool]] = []
        append = batch.append
        trusted = 0
        for data, at, mark in self._rx:
            packet = memoryview(data)[at:] if at else data
            if mark != _PLAIN and data[at + IPV6_NEXT_HEADER_OFFSET] == PROTO_TCP:
                trusted += 1
                append((packet, True))
            else:
                append((packet, False))
        self._rx.clear()
        self.rx_csum_trusted += trusted
        return batch

    def receive_nowait(self) -> bytes | None:
        """The next packet already readable, or None (no checkpoint)."""
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        if not self._rx:
            self._drain()
        return self._plain(self._rx.popleft()) if self._rx else None

    # -- sending -------------------------------------------------------------------

    def _gso_prefix(self, packet: Packet, gso_size: int | None) -> bytes | None:
        """The packed virtio header :func:`gso_header_for` gives ``packet`` (longer
        than the MTU) when that is a super-segment, else None. Cached by what it
        depends on besides the length (TCP header length, CWR, ``gso_size``, MTU):
        building and packing the header per 64 KiB frame cost as much as a copy of
        it in the pure build."""
        if (
            len(packet) < IPV6_HEADER_LEN + TCP_HEADER_LEN
            or packet[IPV6_NEXT_HEADER_OFFSET] != PROTO_TCP
        ):
            return None
        words = packet[IPV6_HEADER_LEN + 12] >> 4
        cwr = packet[IPV6_HEADER_LEN + 13] & CWR
        key = (words, cwr, gso_size, self._mtu)
        entry = self._gso_headers.get(key)
        if entry is None:
            hdr_len = IPV6_HEADER_LEN + words * 4
            size = self._mtu - hdr_len if gso_size is None else gso_size
            gso_type = VIRTIO_NET_HDR_GSO_TCPV6 | (VIRTIO_NET_HDR_GSO_ECN if cwr else 0)
            hdr = VirtioNetHdr(
                VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type,
                hdr_len,
                size,
                IPV6_HEADER_LEN,
                TCP_CHECKSUM_OFFSET,
            )
            entry = (hdr_len + size, pack_vnet_hdr(hdr) if size > 0 else None)
            if len(self._gso_headers) >= 64:  # a few keys in practice; stay bounded
                self._gso_headers.clear()
            self._gso_headers[key] = entry
        # gso_header_for: a super-segment when the payload exceeds one segment.
        if entry[1] is None or len(packet) <= entry[0]:
            return None
        return entry[1]

    def _write_one(self, packet: Packet, gso_size: int | None, partial: bool) -> bool:
        """Write one packet; False on EAGAIN (nothing written)."""
        if self.vnet_hdr:
            if len(packet) <= self._mtu:
                # (what gso_header_for says for a packet that fits, without the call)
                parts: list[Packet] = [CSUM_VNET_HDR if partial else ZERO_VNET_HDR, packet]
            elif (prefix := self._gso_prefix(packet, gso_size)) is not None:
                if partial:  # the field holds the pseudo-header sum already
                    parts = [prefix, packet]
                else:
                    mv = memoryview(packet)
                    field = _H.pack(partial_tcp_checksum(mv))
                    parts = [prefix, mv[:_TCP_CSUM_AT], field, mv[_TCP_CSUM_AT + 2 :]]
                self.tx_gso += 1
            elif partial:
                parts = [CSUM_VNET_HDR, packet]
            else:
                parts = [ZERO_VNET_HDR, packet]
        elif partial:
            parts = [self._complete_tcp(packet)]
        else:
            parts = [packet]
        try:
            if len(parts) == 1:
                os.write(self._fd, parts[0])
            else:
                os.writev(self._fd, parts)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno == errno.EBADF:
                raise trio.ClosedResourceError("link is closed") from exc
            if exc.errno == errno.EBADFD:
                raise trio.BrokenResourceError(f"TUN device {self.name} is gone") from exc
            # A NIC drops what it cannot send (bad packet, interface down): count it.
            self.tx_errors += 1
            return True
        self.tx_packets += 1
        self.tx_bytes += len(packet)
        return True

    @staticmethod
    def _complete_tcp(packet: Packet) -> bytes:
        return complete_checksum(packet, IPV6_HEADER_LEN, TCP_CHECKSUM_OFFSET)

    async def send(
        self, packet: Packet, *, gso_size: int | None = None, partial_checksum: bool = False
    ) -> None:
        """Send one IPv6 packet (bytes, bytearray or memoryview; not kept).

        With a virtio header a TCP packet longer than the MTU (at most
        :attr:`gso_max`) is segmented by the kernel into segments of ``gso_size``
        payload bytes (default: MTU - 40 - TCP header length). ``partial_checksum``:
        the TCP checksum field holds :func:`partial_tcp_checksum` instead of the full
        checksum (a TCP packet without extension headers only).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        while not self._write_one(packet, gso_size, partial_checksum):
            await trio.lowlevel.wait_writable(self._fd)
            if self._closed:
                raise trio.ClosedResourceError("link is closed")
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(
        self, packet: Packet, *, gso_size: int | None = None, partial_checksum: bool = False
    ) -> None:
        """:meth:`send` without a checkpoint (the Link protocol's ``send_nowait``: a
        TUN device takes a write at once); ``trio.WouldBlock`` if it cannot."""
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        if not self._write_one(packet, gso_size, partial_checksum):
            raise trio.WouldBlock

    async def send_batch(
        self, packets: Iterable[Packet], *, partial_checksum: bool = False
    ) -> None:
        """Send several packets with a single checkpoint (unless the device is full);
        ``partial_checksum`` as for :meth:`send`, for every packet."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("link is closed")
        for packet in packets:
            while not self._write_one(packet, None, partial_checksum):
                await trio.lowlevel.wait_writable(self._fd)
                if self._closed:
                    raise trio.ClosedResourceError("link is closed")
        await trio.lowlevel.cancel_shielded_checkpoint()

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Close the device (the interface disappears). Idempotent; a task blocked in
        :meth:`receive` gets ``trio.ClosedResourceError``."""
        if self._closed:
            return
        self._closed = True
        self._rx.clear()
        trio.lowlevel.notify_closing(self._fd)
        os.close(self._fd)
        self._control.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> TunLink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _create(
    name: str, device: str, netns: str | None, offload: bool
) -> tuple[int, str, socket.socket, bool, bool]:
    """Create the device (in ``netns`` if given); returns (fd, name, control socket,
    vnet_hdr, offload)."""
    with _in_netns(netns):
        fd = _open_device(device)
        try:
            vnet = offload
            try:
                actual = _tunsetiff(fd, name, IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0))
            except OSError as exc:
                if not vnet or exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                vnet = False  # a kernel without IFF_VNET_HDR support
                actual = _tunsetiff(fd, name, IFF_TUN | IFF_NO_PI)
            rx_offload = False
            if vnet:
                _ioctl_int(fd, TUNSETVNETHDRSZ, VNET_HDR_LEN)
                if _ioctl_int(fd, TUNGETVNETHDRSZ, 0) != VNET_HDR_LEN:  # pragma: no cover
                    raise OSError(errno.EINVAL, "TUN device refused a 10-byte virtio header")
                try:
                    # Little-endian virtio fields whatever the host's byte order.
                    _ioctl_int(fd, TUNSETVNETLE, 1)
                except OSError:  # pragma: no cover - native order is LE on LE hosts
                    if struct.pack("=H", 1) != b"\x01\x00":
                        raise
                try:
                    fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO6)
                    rx_offload = True
                except OSError:
                    with contextlib.suppress(OSError):
                        fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
            control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except BaseException:
            os.close(fd)
            raise
    return fd, actual, control, vnet, rx_offload


@contextlib.asynccontextmanager
async def open_tun(
    name: str,
    *,
    mtu: int | None = None,
    offload: bool = True,
    netns: str | None = None,
    device: str = DEFAULT_DEVICE,
    max_batch: int = 256,
) -> AsyncIterator[TunLink]:
    """Create the TUN interface ``name`` (``IFF_TUN | IFF_NO_PI``) and yield a
    :class:`TunLink` on it; the interface is removed when the block exits.

    ``name`` may be ``""`` or contain ``%d`` for a kernel-chosen name (see
    :attr:`TunLink.name`). ``mtu`` sets the interface MTU. ``offload`` (the default)
    opens the device with a virtio header and asks for checksum and TCPv6 segmentation
    offload (see the module docstring), falling back silently to plain packets when
    the kernel refuses; ``offload=False`` never asks (a capture on the interface then
    shows MTU-sized packets with complete checksums).
    ``netns`` creates the interface inside that named namespace. ``device`` is the
    clone device. Needs CAP_NET_ADMIN (:class:`PermissionError` otherwise); a missing
    device raises :class:`FileNotFoundError` saying how to get one.
    """
    if len(name.encode()) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
    await trio.lowlevel.checkpoint()
    fd, actual, control, vnet, rx_offload = _create(name, device, netns, offload)
    try:
        os.set_blocking(fd, False)
        link = TunLink(
            fd,
            actual,
            vnet_hdr=vnet,
            offload=rx_offload,
            netns=netns,
            control=control,
            max_batch=max_batch,
        )
    except BaseException:
        os.close(fd)
        control.close()
        raise
    try:
        if mtu is not None:
            link.set_mtu(mtu)
        yield link
    finally:
        link.close()
