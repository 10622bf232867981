"""Ephemeral port selection, RFC 6056 §3.3.4 Algorithm 4 ("Double-Hash Port
Selection").

For each destination the search starts at a secret, per-(local address, remote
address, remote port) offset F, and walks the range from there using a counter
``table[G % TABLE_LENGTH]`` shared by the destinations that hash to the same
slot. A peer therefore learns nothing about the ports used towards other
destinations, while consecutive connections to one destination still use
different ports (less TIME-WAIT collision than random choice).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable

__all__ = ["DEFAULT_HIGH", "DEFAULT_LOW", "TABLE_LENGTH", "EphemeralPorts"]

#: IANA's dynamic/private range (RFC 6335 §6). RFC 6056 §3.2 suggests the whole of
#: 1024-65535 for more entropy; the narrower default keeps ephemeral ports clear of
#: registered ones (as Windows and macOS do); pass ``low``/``high`` to widen it.
DEFAULT_LOW = 49152
DEFAULT_HIGH = 65535
#: Size of the counter table of Algorithm 4.
TABLE_LENGTH = 256


class EphemeralPorts:
    """Chooses local ports in ``[low, high]`` per RFC 6056 Algorithm 4."""

    def __init__(
        self, secret: bytes | None = None, low: int = DEFAULT_LOW, high: int = DEFAULT_HIGH
    ) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"need 1 <= low <= high <= 65535, got {low}..{high}")
        if secret is not None and not secret:
            raise ValueError("the secret must not be empty")
        key = os.urandom(32) if secret is None else secret
        if len(key) > 32:
            key = hashlib.blake2s(key).digest()
        self._key = key
        self.low = low
        self.high = high
        self._table = [0] * TABLE_LENGTH
        # F and G of the last destination: successive connections mostly go to the
        # same one, and each hash is a keyed BLAKE2s.
        self._last_dest: tuple[bytes, bytes, int] | None = None
        self._last_hashes = (0, 0)

    @property
    def count(self) -> int:
        """``num_ephemeral``: how many ports the range holds."""
        return self.high - self.low + 1

    def _hash(self, person: bytes, local_addr: bytes, remote_addr: bytes, remote_port: int) -> int:
        data = b"".join(
            (
                struct.pack("!B", len(local_addr)),
                local_addr,
                struct.pack("!B", len(remote_addr)),
                remote_addr,
                struct.pack("!H", remote_port & 0xFFFF),
            )
        )
        h = hashlib.blake2s(data, digest_size=8, key=self._key, person=person)
        return int.from_bytes(h.digest(), "big")

    def choose(
        self,
        local_addr: bytes,
        remote_addr: bytes,
        remote_port: int,
        in_use: Callable[[int], bool],
    ) -> int | None:
        """A port for a connection from ``local_addr`` to ``(remote_addr,
        remote_port)``. ``in_use(port)`` says whether a port is unsuitable (the
        4-tuple exists, or the port is bound by a listener). None when every port of
        the range is unsuitable for this destination.

        For a port with no destination (a listener bound to port 0) pass
        ``remote_addr=b""`` and ``remote_port=0``.
        """
        num = self.count
        dest = (local_addr, remote_addr, remote_port)
        if dest == self._last_dest:
            offset, index = self._last_hashes
        else:
            offset = self._hash(b"tcp6pF", local_addr, remote_addr, remote_port)
            index = self._hash(b"tcp6pG", local_addr, remote_addr, remote_port) % TABLE_LENGTH
            self._last_dest = dest
            self._last_hashes = (offset, index)
        for _ in range(num):
            port = self.low + (offset + self._table[index]) % num
            self._table[index] = (self._table[index] + 1) % num
            if not in_use(port):
                return port
        return None
