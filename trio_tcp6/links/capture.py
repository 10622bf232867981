"""Capture: a running pcap capture of a simulated network.

Both in-memory networks, :class:`~trio_tcp6.links.virtual.VirtualNetwork` and the
simulator's :class:`~trio_tcp6.sim.network.Network`, write the packets they carry
through one of these (``net.capture(path)``). A capture problem never breaks the
network that writes it: an error writing or closing the file stops the capture and
is kept in :attr:`Capture.error`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..wire.pcap import PcapWriter

__all__ = ["Capture"]


class Capture:
    """A running capture (from ``net.capture(path)``); stop it with :meth:`close`, or
    use it as a (sync or async) context manager. ``count`` = packets written;
    ``error``: what stopped it, if a write or the close failed.

    ``stop(capture)`` is the network's: it forgets the capture, once, on close."""

    def __init__(self, writer: PcapWriter, stop: Callable[[Capture], None]) -> None:
        self.writer = writer
        self.count = 0
        self.closed = False
        self.error: Exception | None = None
        self._stop = stop

    def write(self, data: bytes, timestamp: float) -> None:
        try:
            self.writer.write(data, timestamp if timestamp > 0.0 else 0.0)
        except (OSError, ValueError) as exc:
            # Never let a capture problem break the network: stop this capture.
            self.error = exc
            self.close()
            return
        self.count += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop(self)
        try:
            self.writer.close()
        except OSError as exc:
            self.error = exc

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Capture:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
