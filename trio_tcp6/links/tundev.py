"""A Linux TUN device's setup: creating it (in a network namespace if asked),
negotiating its offloads, and the interface's kernel side (MTU, up, addresses).

:class:`~trio_tcp6.links.tun.TunLink` moves packets; everything here is the control
plane around it -- ``ioctl`` numbers and structs of ``linux/if_tun.h`` and
``linux/sockios.h``, ``setns(2)``, the error messages that say how to get the
privilege or the device -- which runs once per device or per configuration call,
never per packet, and is read apart from the packet path for that reason.

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

Offload negotiation (:func:`create_device` with ``offload=True``): ``IFF_VNET_HDR``
with a 10-byte little-endian header (``TUNSETVNETHDRSZ``, ``TUNSETVNETLE``), then
``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO6)``; a kernel that refuses the offloads leaves
a device with a virtio header and MTU-sized packets, one that refuses the header a
plain device. Both fallbacks are silent.
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
from collections.abc import Iterator

from ..wire.virtio import VNET_HDR_LEN

__all__ = [
    "DEFAULT_DEVICE",
    "IFF_NO_PI",
    "IFF_TUN",
    "IFF_UP",
    "IFF_VNET_HDR",
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
    "TUN_F_CSUM",
    "TUN_F_TSO4",
    "TUN_F_TSO6",
    "TUN_F_TSO_ECN",
    "change_address",
    "control_socket",
    "create_device",
    "in_netns",
    "interface_mtu",
    "set_interface_mtu",
    "set_interface_up",
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
def in_netns(netns: str | None) -> Iterator[None]:
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


# --- the interface's kernel side -------------------------------------------------------


def control_socket(netns: str | None) -> socket.socket:
    """A socket in ``netns`` (or here) to address the interface's ioctls to."""
    with in_netns(netns):
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)


def interface_mtu(control: socket.socket, name: str) -> int:
    """The MTU of interface ``name`` (``SIOCGIFMTU``)."""
    ifr = _IFREQ_INT.pack(name.encode(), 0)
    out = fcntl.ioctl(control.fileno(), SIOCGIFMTU, ifr)
    return int(_IFREQ_INT.unpack(out)[1])


def set_interface_mtu(control: socket.socket, name: str, mtu: int) -> None:
    """Set the MTU of interface ``name`` (``SIOCSIFMTU``)."""
    ifr = _IFREQ_INT.pack(name.encode(), mtu)
    try:
        fcntl.ioctl(control.fileno(), SIOCSIFMTU, ifr)
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot set MTU {mtu} on {name}: {os.strerror(exc.errno or 0)}"
        ) from exc


def _ifindex(control: socket.socket, name: str) -> int:
    out = fcntl.ioctl(control.fileno(), SIOCGIFINDEX, _IFREQ_INT.pack(name.encode(), 0))
    return int(_IFREQ_INT.unpack(out)[1])


def set_interface_up(control: socket.socket, name: str, up: bool) -> None:
    """Bring interface ``name`` up or down (``SIOCGIFFLAGS``, ``SIOCSIFFLAGS``)."""
    fd = control.fileno()
    ifr = _IFREQ_INT.pack(name.encode(), 0)
    flags = int(struct.unpack_from("16sH", fcntl.ioctl(fd, SIOCGIFFLAGS, ifr))[1])
    flags = flags | IFF_UP if up else flags & ~IFF_UP
    fcntl.ioctl(fd, SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags))


def change_address(
    control: socket.socket,
    name: str,
    netns: str | None,
    address: str | ipaddress.IPv6Address,
    prefixlen: int,
    *,
    add: bool,
) -> None:
    """Add (``SIOCSIFADDR``) or remove (``SIOCDIFADDR``) an IPv6 address of the
    kernel side of interface ``name``, in ``netns``."""
    request = SIOCSIFADDR if add else SIOCDIFADDR
    req = _IN6_IFREQ.pack(
        ipaddress.IPv6Address(address).packed, prefixlen, _ifindex(control, name)
    )
    with in_netns(netns):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    with sock:
        fcntl.ioctl(sock.fileno(), request, req)


# --- creation --------------------------------------------------------------------------


def create_device(
    name: str, device: str, netns: str | None, offload: bool
) -> tuple[int, str, socket.socket, bool, bool]:
    """Create the device (in ``netns`` if given); returns (fd, name, control socket,
    vnet_hdr, offload)."""
    with in_netns(netns):
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
