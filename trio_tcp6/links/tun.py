"""A link on a Linux TUN device: raw IPv6 packets to and from the kernel.

``async with open_tun("tt0") as link:`` creates the interface ``tt0`` (``IFF_TUN |
IFF_NO_PI``: every read and write is one IP packet, no link-layer header and no
packet-information prefix) and yields a :class:`TunLink`. The interface exists as long
as the link is open; closing the link removes it.

Batching: :meth:`TunLink.receive` waits for readability once per burst and then reads
until ``EAGAIN`` (bounded by ``max_batch``) into a queue; :meth:`TunLink.receive_batch`
returns the whole queue. Only IPv6 packets are passed up: anything else (an IPv4
packet, a runt) is dropped and counted in :meth:`TunLink.stats`.

Offloads (``offload=True``, the default; ``offload=False`` turns them off): the device
has a virtio-net header, and the kernel may hand the link TCP super-segments and
partial checksums and take both from it. What the header of each packet says and
must say is :mod:`trio_tcp6.links.tunoffload`; creating the device and negotiating
the offloads, :mod:`trio_tcp6.links.tundev`, which also says what the kernel side of
the interface needs (an address, the interface up) and how namespaces work.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Iterable

import trio

from ..wire.checksum import complete_checksum
from ..wire.ipv6 import IPV6_HEADER_LEN, IPV6_NEXT_HEADER_OFFSET, PROTO_TCP
from ..wire.tcp import TCP_CHECKSUM_OFFSET, partial_tcp_checksum

# The virtio-net header codec lives in wire.virtio (its flag and type constants too);
# the functions and the header type stay importable from here.
from ..wire.virtio import (
    CSUM_VNET_HDR,
    VNET_HDR_LEN,
    ZERO_VNET_HDR,
    VirtioNetHdr,
    gso_header_for,
    pack_vnet_hdr,
    unpack_vnet_hdr,
)
from .base import ChecksumOffload, LinkCapabilities, Packet

# Device setup lives in tundev; its ioctl numbers and flags stay importable from here.
from .tundev import (
    DEFAULT_DEVICE,
    IFF_NO_PI,
    IFF_TUN,
    IFF_UP,
    IFF_VNET_HDR,
    IFNAMSIZ,
    SIOCDIFADDR,
    SIOCGIFFLAGS,
    SIOCGIFINDEX,
    SIOCGIFMTU,
    SIOCSIFADDR,
    SIOCSIFFLAGS,
    SIOCSIFMTU,
    TUN_F_CSUM,
    TUN_F_TSO4,
    TUN_F_TSO6,
    TUN_F_TSO_ECN,
    TUNGETFEATURES,
    TUNGETIFF,
    TUNGETVNETHDRSZ,
    TUNGETVNETLE,
    TUNSETIFF,
    TUNSETOFFLOAD,
    TUNSETVNETHDRSZ,
    TUNSETVNETLE,
    change_address,
    control_socket,
    create_device,
    interface_mtu,
    set_interface_mtu,
    set_interface_up,
)
from .tunoffload import PARTIAL, PLAIN, GsoHeaders, received_mark

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
    # the device's constants, defined in tundev
    "DEFAULT_DEVICE",
    "IFF_UP",
    "IFNAMSIZ",
    "SIOCDIFADDR",
    "SIOCGIFFLAGS",
    "SIOCGIFINDEX",
    "SIOCGIFMTU",
    "SIOCSIFADDR",
    "SIOCSIFFLAGS",
    "SIOCSIFMTU",
    "TUNGETFEATURES",
    "TUNGETIFF",
    "TUNGETVNETHDRSZ",
    "TUNGETVNETLE",
    "TUNSETIFF",
    "TUNSETOFFLOAD",
    "TUNSETVNETHDRSZ",
    "TUNSETVNETLE",
    "TUN_F_TSO4",
    "TUN_F_TSO_ECN",
]

#: Largest IPv6 packet without a jumbogram: 40 + 65535.
_MAX_IPV6 = IPV6_HEADER_LEN + 0xFFFF
_READ_SIZE = VNET_HDR_LEN + _MAX_IPV6 + 64
_H = struct.Struct("!H")
#: Where the TCP checksum field lies in a packet with TCP right after the fixed header.
_TCP_CSUM_AT = IPV6_HEADER_LEN + TCP_CHECKSUM_OFFSET


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
        # Marks (see tunoffload): PLAIN, PARTIAL (completed when handed to a plain
        # receive) or VALID.
        # Received reads: (data, offset of the IPv6 packet in it, mark).
        self._rx: deque[tuple[bytes, int, int]] = deque()
        self._receiving = False
        self._closed = False
        self._gso_headers = GsoHeaders()
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
        self._mtu = interface_mtu(self._control, self.name)
        return self._mtu

    def set_mtu(self, mtu: int) -> None:
        """Set the interface MTU (``SIOCSIFMTU``; IPv6 needs at least 1280)."""
        set_interface_mtu(self._control, self.name, mtu)
        self.read_mtu()

    def set_up(self, up: bool = True) -> None:
        """Bring the interface up (or down) on the kernel side, like ``ip link set
        NAME up``."""
        set_interface_up(self._control, self.name, up)

    def add_kernel_address(
        self, address: str | ipaddress.IPv6Address, prefixlen: int = 64
    ) -> None:
        """Give the kernel side of the interface an IPv6 address (``SIOCSIFADDR``, like
        ``ip addr add ADDRESS/PREFIXLEN dev NAME``); the prefix route comes with it.
        A TUN device is ``NOARP``, so there is no duplicate address detection: the
        address is usable once the interface is up. The stack then uses another
        address of the prefix."""
        change_address(self._control, self.name, self.netns, address, prefixlen, add=True)

    def remove_kernel_address(
        self, address: str | ipaddress.IPv6Address, prefixlen: int = 64
    ) -> None:
        """Remove an address added by :meth:`add_kernel_address`."""
        change_address(self._control, self.name, self.netns, address, prefixlen, add=False)

    async def move_to_netns(self, netns: str) -> None:
        """Move the interface into another network namespace (``ip link set NAME
        netns NS``). The file descriptor keeps working; addresses and the up state
        are lost, as with any move."""
        here = [] if self.netns is None else ["-n", self.netns]
        await trio.run_process(
            ["ip", *here, "link", "set", self.name, "netns", netns], capture_stderr=True
        )
        control = control_socket(netns)
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
            at, mark = start, PLAIN
            if vnet:
                if len(data) < VNET_HDR_LEN:
                    self.rx_bad_vnet += 1
                    continue
                if data[0] or data[1]:  # flags or gso_type: anything but a plain packet
                    data, at, mark = received_mark(data, self)
                    if not data:
                        continue
            if len(data) <= at or data[at] >> 4 != 6:
                self.rx_not_ipv6 += 1
                continue
            self.rx_packets += 1
            self.rx_bytes += len(data) - at
            rx.append((data, at, mark))

    def _plain(self, item: tuple[bytes, int, int]) -> bytes:
        """A received packet as a plain receive hands it up: a ``bytes`` copy without
        the virtio header, a partial checksum completed (a correct checksum,
        verifiable like any other)."""
        data, at, mark = item
        if mark == PARTIAL:
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
            if mark != PLAIN and data[at + IPV6_NEXT_HEADER_OFFSET] == PROTO_TCP:
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

    def _write_one(self, packet: Packet, gso_size: int | None, partial: bool) -> bool:
        """Write one packet; False on EAGAIN (nothing written)."""
        if self.vnet_hdr:
            if len(packet) <= self._mtu:
                # (what gso_header_for says for a packet that fits, without the call)
                parts: list[Packet] = [CSUM_VNET_HDR if partial else ZERO_VNET_HDR, packet]
            elif (prefix := self._gso_headers.prefix(packet, gso_size, self._mtu)) is not None:
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
    offload (see :mod:`trio_tcp6.links.tunoffload`), falling back silently to plain
    packets when the kernel refuses; ``offload=False`` never asks (a capture on the
    interface then shows MTU-sized packets with complete checksums).
    ``netns`` creates the interface inside that named namespace. ``device`` is the
    clone device. Needs CAP_NET_ADMIN (:class:`PermissionError` otherwise); a missing
    device raises :class:`FileNotFoundError` saying how to get one.
    """
    if len(name.encode()) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
    await trio.lowlevel.checkpoint()
    fd, actual, control, vnet, rx_offload = create_device(name, device, netns, offload)
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
