"""Error types of the public API (the MirageOS ``Timeout | Refused | Unknown`` set).

They subclass :class:`OSError` with the matching errno so code written against the
kernel's sockets (and trio) keeps working: :class:`Refused` is also a
:class:`ConnectionRefusedError` and :class:`Timeout` a :class:`TimeoutError`, so
``except ConnectionRefusedError``, ``except TimeoutError``, ``except OSError`` and
``e.errno == errno.ECONNREFUSED`` all match as they would for a kernel socket.
"""

from __future__ import annotations

import errno

__all__ = ["Refused", "TCPError", "Timeout", "Unknown", "error_message"]


class TCPError(OSError):
    """Base class of every TCP error this package raises or returns."""

    def __init__(self, message: str, err: int = errno.EIO) -> None:
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TCPError)
            and type(other) is type(self)
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((type(self), self.message))


class Timeout(TCPError, TimeoutError):
    """ETIMEDOUT: the connection attempt, or the peer, gave no valid response in time
    (also a :class:`TimeoutError`)."""

    def __init__(self, message: str = "connection timed out") -> None:
        super().__init__(message, errno.ETIMEDOUT)


class Refused(TCPError, ConnectionRefusedError):
    """ECONNREFUSED: the peer actively refused the connection with a RST (also a
    :class:`ConnectionRefusedError`)."""

    def __init__(self, message: str = "connection refused") -> None:
        super().__init__(message, errno.ECONNREFUSED)


class Unknown(TCPError):
    """Any other failure (reset by peer, aborted, network unreachable, ...)."""

    def __init__(self, message: str = "unknown error", err: int = errno.EIO) -> None:
        super().__init__(message, err)


def error_message(err: BaseException) -> str:
    """A human-readable one-line description of ``err``, suitable for logs."""
    if isinstance(err, Timeout):
        return f"Timeout: {err.message}"
    if isinstance(err, Refused):
        return f"Refused: {err.message}"
    if isinstance(err, Unknown):
        return f"Unknown error: {err.message}"
    if isinstance(err, TCPError):
        return f"TCP error: {err.message}"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
