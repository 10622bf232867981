"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982 style).

Comparisons are only meaningful between numbers less than 2**31 apart, which TCP
guarantees for any two sequence numbers that are compared in one connection.
"""

from __future__ import annotations

__all__ = [
    "MASK",
    "seq_add",
    "seq_diff",
    "seq_ge",
    "seq_gt",
    "seq_le",
    "seq_lt",
    "seq_max",
    "seq_min",
    "seq_between",
]

MASK = 0xFFFFFFFF
_HALF = 0x80000000


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (``n`` may be negative)."""
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` in (-2**31, 2**31]."""
    d = (a - b) & MASK
    return d - 0x100000000 if d > _HALF else d


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` in sequence space."""
    return a != b and ((a - b) & MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    """``a <= b`` in sequence space."""
    return a == b or ((a - b) & MASK) >= _HALF


def seq_gt(a: int, b: int) -> bool:
    """``a > b`` in sequence space."""
    return a != b and ((b - a) & MASK) >= _HALF


def seq_ge(a: int, b: int) -> bool:
    """``a >= b`` in sequence space."""
    return a == b or ((b - a) & MASK) >= _HALF


def seq_max(a: int, b: int) -> int:
    return b if seq_lt(a, b) else a


def seq_min(a: int, b: int) -> int:
    return a if seq_lt(a, b) else b


def seq_between(lo: int, x: int, hi: int) -> bool:
    """``lo <= x < hi`` in sequence space (the half-open window test)."""
    return ((x - lo) & MASK) < ((hi - lo) & MASK)
