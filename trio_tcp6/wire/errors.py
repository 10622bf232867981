"""The one exception type every wire codec raises for bad input."""

from __future__ import annotations

__all__ = ["ParseError"]


class ParseError(ValueError):
    """A packet could not be parsed.

    ``reason`` is a short, stable, snake_case key (``"tcp_bad_data_offset"``,
    ``"ipv6_truncated"``, ...) that stacks use as the name of a drop counter in
    ``stack.stats()``; the message says what exactly was wrong.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason
