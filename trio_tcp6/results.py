"""Result values of the mirage-style API: ``Ok(value)``, ``Error(error)`` and ``EOF``.

They are frozen attrs classes, so they compare by value and work with ``match``::

    match await flow.read():
        case tcp6.Ok(data): ...
        case tcp6.Eof(): ...
        case tcp6.Error(err): ...
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from .errors import TCPError

__all__ = ["EOF", "Eof", "Error", "Ok", "Result"]

T = TypeVar("T")


@attrs.frozen
class Ok(Generic[T]):
    """A successful result carrying ``value``."""

    value: T
    __match_args__ = ("value",)


@attrs.frozen
class Error:
    """A failed result carrying a :class:`~trio_tcp6.TCPError`."""

    error: TCPError
    __match_args__ = ("error",)


@attrs.frozen
class Eof:
    """End of stream: the peer sent FIN and every byte before it was read.

    Use the singleton :data:`EOF`; ``Eof()`` compares equal to it anyway.
    """

    def __repr__(self) -> str:
        return "EOF"


EOF = Eof()

Result = Ok[T] | Error | Eof
