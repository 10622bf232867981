"""Small helpers shared by the runtime modules."""

from __future__ import annotations

import operator
from types import TracebackType

import trio

__all__ = ["DEFAULT_RECEIVE_SIZE", "ConflictDetector", "check_max_bytes"]

#: What ``receive_some()`` returns at most when no ``max_bytes`` is given.
DEFAULT_RECEIVE_SIZE = 65536


class ConflictDetector:
    """Raise :class:`trio.BusyResourceError` when two tasks enter at once."""

    __slots__ = ("_held", "_msg")

    def __init__(self, msg: str) -> None:
        self._msg = msg
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._msg)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held = False


def check_max_bytes(max_bytes: int | None) -> int:
    """Validate ``receive_some``'s argument the way trio's streams do."""
    if max_bytes is None:
        return DEFAULT_RECEIVE_SIZE
    max_bytes = operator.index(max_bytes)
    if max_bytes < 1:
        raise ValueError("max_bytes must be >= 1")
    return max_bytes
