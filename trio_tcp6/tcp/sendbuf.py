"""The send buffer: bytes the user queued that are not yet acknowledged.

Positions are *absolute* sequence offsets counted from the ISS (the SYN is offset 0,
the first data byte offset 1), so they never wrap; the connection converts to and
from 32-bit sequence numbers at the edges.
"""

from __future__ import annotations

__all__ = ["SendBuffer"]


class SendBuffer:
    """A bytearray holding data from offset :attr:`base` (the first unacknowledged
    data byte) to :attr:`end` (just past the last queued byte)."""

    __slots__ = ("_buf", "base", "capacity")

    def __init__(self, capacity: int, base: int = 1) -> None:
        self._buf = bytearray()
        self.capacity = capacity
        self.base = base

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def end(self) -> int:
        return self.base + len(self._buf)

    @property
    def space(self) -> int:
        n = self.capacity - len(self._buf)
        return n if n > 0 else 0

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as fits; return how many bytes were taken."""
        space = self.capacity - len(self._buf)
        n = len(data)
        if n > space:
            n = max(space, 0)
            if n == 0:
                return 0
            with memoryview(data) as mv:
                self._buf += mv.cast("B")[:n]
            return n
        self._buf += data
        return n

    def get(self, start: int, n: int) -> bytes:
        """Copy ``n`` bytes beginning at absolute offset ``start``."""
        i = start - self.base
        with memoryview(self._buf) as mv:
            return mv[i : i + n].tobytes()

    def drop_to(self, offset: int) -> int:
        """Discard everything before absolute ``offset`` (acknowledged data)."""
        n = offset - self.base
        if n <= 0:
            return 0
        if n > len(self._buf):
            n = len(self._buf)
        del self._buf[:n]
        self.base += n
        return n
