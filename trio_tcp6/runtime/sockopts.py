"""A :class:`~trio_tcp6.config.TCPConfig` applied to a kernel socket, and what the
kernel stack asks a socket beyond ``TCP_INFO``.

The kernel stack (:mod:`trio_tcp6.runtime.kernel`) offers the direct stack's API, so
the same config has to mean the same thing on a kernel socket. That translation is a
table of Linux socket options, apart from the stack's connection logic: buffer sizes
(only when changed from the defaults, so the kernel's autotuning stays on
otherwise), Nagle, keepalive, ``TCP_USER_TIMEOUT``, ``TCP_SYNCNT`` and
``TCP_CONGESTION``.
"""

from __future__ import annotations

import socket as _stdsocket
import struct
import sys

import trio

from ..config import TCPConfig

__all__ = ["configure_socket", "unacked_bytes"]

_DEFAULTS = TCPConfig()

# Linux socket option numbers that the socket module may not name.
_TCP_CONGESTION = getattr(_stdsocket, "TCP_CONGESTION", 13)
_TCP_USER_TIMEOUT = getattr(_stdsocket, "TCP_USER_TIMEOUT", 18)
_TCP_SYNCNT = getattr(_stdsocket, "TCP_SYNCNT", 7)
_SIOCOUTQ = 0x5411  # == TIOCOUTQ: bytes written but not yet acknowledged (Linux)


def configure_socket(sock: _stdsocket.socket | trio.socket.SocketType, config: TCPConfig) -> None:
    """Set the options ``config`` asks for on ``sock`` (before it connects or
    listens); off Linux only the buffer sizes and Nagle."""
    cfg = config
    sol, tcp = _stdsocket.SOL_SOCKET, _stdsocket.IPPROTO_TCP
    if cfg.send_buffer != _DEFAULTS.send_buffer:
        sock.setsockopt(sol, _stdsocket.SO_SNDBUF, cfg.send_buffer)
    if cfg.receive_buffer != _DEFAULTS.receive_buffer:
        sock.setsockopt(sol, _stdsocket.SO_RCVBUF, cfg.receive_buffer)
    sock.setsockopt(tcp, _stdsocket.TCP_NODELAY, not cfg.nagle)
    if not sys.platform.startswith("linux"):
        return
    if cfg.keepalive is not None:
        sock.setsockopt(sol, _stdsocket.SO_KEEPALIVE, 1)
        sock.setsockopt(tcp, _stdsocket.TCP_KEEPIDLE, max(1, int(cfg.keepalive.idle)))
        sock.setsockopt(tcp, _stdsocket.TCP_KEEPINTVL, max(1, int(cfg.keepalive.interval)))
        sock.setsockopt(tcp, _stdsocket.TCP_KEEPCNT, max(1, cfg.keepalive.probes))
    if cfg.user_timeout is not None:
        sock.setsockopt(tcp, _TCP_USER_TIMEOUT, max(1, int(cfg.user_timeout * 1000)))
    sock.setsockopt(tcp, _TCP_SYNCNT, min(127, max(1, cfg.syn_retries)))
    algorithm = b"reno" if cfg.congestion == "newreno" else b"cubic"
    try:
        sock.setsockopt(tcp, _TCP_CONGESTION, algorithm)
    except OSError:
        pass  # not available in this kernel: keep its default


def unacked_bytes(sock: trio.socket.SocketType) -> int:
    """Bytes written to the socket that the peer has not acknowledged yet
    (``SIOCOUTQ``, Linux)."""
    import fcntl

    buf = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", buf)[0])
