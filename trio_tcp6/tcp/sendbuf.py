"""The send buffer: bytes the user queued that are not yet acknowledged.

Positions are *absolute* sequence offsets counted from the ISS (the SYN is offset 0,
the first data byte offset 1), so they never wrap; the connection converts to and
from 32-bit sequence numbers at the edges.

Storage is a list of chunks, not one contiguous ``bytearray``: dropping acknowledged
bytes from the front of a large ``bytearray`` and appending at its end makes CPython
reallocate and copy the *whole* buffer on many appends (measured ~17 µs per 64 KiB
append with 4 MiB queued). Here a write backed by immutable memory (``bytes``, or a
memoryview of ``bytes``) is kept by reference (no copy at all); other writes are
copied once; small writes are coalesced into a ``bytearray`` tail chunk so that
many tiny writes do not make many tiny chunks. A segment's payload that lies within
one immutable chunk is handed out as a view of it (long ones: see
:data:`~trio_tcp6.wire.tcp.VIEW_MIN`), so the payload is first copied when the packet
is built.
"""

from __future__ import annotations

from bisect import bisect_right

from ..wire.tcp import VIEW_MIN, Payload

__all__ = ["SendBuffer"]

#: Writes at least this long become chunks of their own (by reference when immutable).
_BIG = 2048
#: A small-write tail chunk grows up to this many bytes.
_TAIL_MAX = 65536

_Chunk = bytes | bytearray | memoryview

# What an empty buffer's two lists are: shared, and never added to (a buffer with
# nothing queued, an idle connection's, then keeps two list objects fewer); only
# append adds to the lists, and it first gives the buffer lists of its own.
_NO_CHUNKS: list[_Chunk] = []
_NO_STARTS: list[int] = []


class SendBuffer:
    """Data from offset :attr:`base` (the first unacknowledged data byte) to
    :attr:`end` (just past the last queued byte), kept as a list of chunks."""

    __slots__ = ("_chunks", "_head", "_starts", "base", "capacity", "end", "queued")

    def __init__(self, capacity: int, base: int = 1) -> None:
        self.capacity = capacity
        self.base = base
        #: Just past the last queued byte (``base`` plus what is queued): an
        #: attribute, not a property, because the sender reads it several times per
        #: segment; only :meth:`append` moves it (:meth:`drop_to` moves ``base`` and
        #: shortens the queue by the same amount).
        self.end = base
        #: Chunks in order; ``_chunks[i]`` holds the bytes from absolute ``_starts[i]``.
        #: Entries before ``_head`` were dropped (compacted from time to time).
        self._chunks: list[_Chunk] = _NO_CHUNKS
        self._starts: list[int] = _NO_STARTS
        self._head = 0
        #: Bytes queued (``len()``; an attribute for the per-segment memory
        #: accounting, which would otherwise call ``__len__``).
        self.queued = 0

    def __len__(self) -> int:
        return self.queued

    @property
    def space(self) -> int:
        n = self.capacity - self.queued
        return n if n > 0 else 0

    def append(self, data: bytes | bytearray | memoryview, most: int | None = None) -> int:
        """Queue as much of ``data`` as fits (and at most ``most`` bytes, if given);
        return how many bytes were taken."""
        space = self.capacity - self.queued
        if most is not None and most < space:
            space = most
        n = len(data) if type(data) is not memoryview else data.nbytes
        if n > space:
            n = space if space > 0 else 0
        if n == 0:
            return 0
        if type(data) is memoryview:
            if data.ndim != 1 or data.itemsize != 1:
                data = data.cast("B")
            if not data.c_contiguous:
                # A view with a step: what is taken is copied contiguous once, since
                # the tail's += and the packet builders accept no other buffer.
                data = data[:n].tobytes()
        chunks = self._chunks
        if chunks is _NO_CHUNKS:
            chunks = self._chunks = []
            self._starts = []
        if n < _BIG:
            # Small write: coalesce into a bytearray tail (copied).
            if chunks and len(chunks) > self._head:
                tail = chunks[-1]
                if type(tail) is bytearray and len(tail) + n <= _TAIL_MAX:
                    tail += data[:n] if n < len(data) else data
                    self.queued += n
                    self.end += n
                    return n
            piece: _Chunk = bytearray(data[:n] if n < len(data) else data)
        elif type(data) is bytes:
            piece = data if n == len(data) else memoryview(data)[:n]
        elif type(data) is memoryview and data.readonly and type(data.obj) is bytes:
            piece = data if n == len(data) else data[:n]  # immutable memory: no copy
        else:
            piece = bytes(data[:n] if n < len(data) else data)
        self._starts.append(self.end)
        chunks.append(piece)
        self.queued += n
        self.end += n
        return n

    def get(self, start: int, n: int) -> Payload:
        """The ``n`` bytes beginning at absolute offset ``start``: a view if they are
        at least :data:`~trio_tcp6.wire.tcp.VIEW_MIN` bytes of one immutable chunk,
        else a copy."""
        if n <= 0:
            return b""
        chunks = self._chunks
        starts = self._starts
        i = bisect_right(starts, start, self._head) - 1
        if i < self._head:
            i = self._head
        chunk = chunks[i]
        off = start - starts[i]
        end = off + n
        size = len(chunk)
        if end <= size:
            if type(chunk) is bytes:
                if off == 0 and end == size:
                    return chunk
                return memoryview(chunk)[off:end] if n >= VIEW_MIN else chunk[off:end]
            if type(chunk) is memoryview:
                # (Views are only ever kept of immutable memory: none to release.)
                return chunk[off:end] if n >= VIEW_MIN else chunk[off:end].tobytes()
            with memoryview(chunk) as mv:
                return mv[off:end].tobytes()
        parts: list[_Chunk] = [memoryview(chunk)[off:] if off else chunk]
        need = end - size
        last = len(chunks)
        i += 1
        while need > 0 and i < last:
            chunk = chunks[i]
            size = len(chunk)
            if size <= need:
                parts.append(chunk)
                need -= size
            else:
                parts.append(memoryview(chunk)[:need])
                need = 0
            i += 1
        out = b"".join(parts)
        for p in parts:
            if type(p) is memoryview and type(p.obj) is bytearray:
                p.release()  # let the bytearray tail grow again
        return out

    def drop_to(self, offset: int) -> int:
        """Discard everything before absolute ``offset`` (acknowledged data)."""
        n = offset - self.base
        if n <= 0:
            return 0
        if n > self.queued:
            n = self.queued
        new_base = self.base + n
        chunks = self._chunks
        starts = self._starts
        head = self._head
        last = len(chunks)
        while head < last and starts[head] + len(chunks[head]) <= new_base:
            chunks[head] = b""  # free the memory now
            head += 1
        if head < last and starts[head] < new_base:
            cut = new_base - starts[head]
            chunk = chunks[head]
            if type(chunk) is bytearray:
                del chunk[:cut]
            else:
                chunks[head] = memoryview(chunk)[cut:]
            starts[head] = new_base
        if head >= last:
            # Everything queued is acknowledged: back to the shared empty lists.
            self._chunks = _NO_CHUNKS
            self._starts = _NO_STARTS
            head = 0
        elif head > 64 and head * 2 > last:
            del chunks[:head]
            del starts[:head]
            head = 0
        self._head = head
        self.base = new_base
        self.queued -= n
        return n
