"""trio_tcp6: a userspace TCP/IPv6 stack on trio whose connections are trio streams."""

from __future__ import annotations

from .config import Keepalive, TCPConfig
from .errors import Refused, TCPError, Timeout, Unknown, error_message
from .links import Link, VirtualNetwork, open_tun
from .results import EOF, Eof, Error, Ok, Result
from .runtime import Flow, FlowInfo, Listener, Stack, open_kernel_stack, open_stack
from .tcp.events import State

__all__ = [
    "EOF",
    "Eof",
    "Error",
    "Flow",
    "FlowInfo",
    "Keepalive",
    "Link",
    "Listener",
    "Ok",
    "Refused",
    "Result",
    "Stack",
    "State",
    "TCPConfig",
    "TCPError",
    "Timeout",
    "Unknown",
    "VirtualNetwork",
    "error_message",
    "open_kernel_stack",
    "open_stack",
    "open_tun",
]

__version__ = "0.1.0"
