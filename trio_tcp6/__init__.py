"""trio_tcp6: a userspace TCP/IPv6 stack on trio whose connections are trio streams."""

from __future__ import annotations

from .config import Keepalive, TCPConfig
from .errors import Refused, TCPError, Timeout, Unknown, error_message
from .results import EOF, Eof, Error, Ok, Result

__all__ = [
    "EOF", "Eof", "Error", "Keepalive", "Ok", "Refused", "Result", "TCPConfig",
    "TCPError", "Timeout", "Unknown", "error_message",
]

__version__ = "0.1.0"
