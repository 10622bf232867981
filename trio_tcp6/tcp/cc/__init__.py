"""Congestion control: NewReno (RFC 5681/6582) and CUBIC (RFC 9438), both with
optional HyStart++ (RFC 9406). Sizes in bytes, times in seconds, no I/O."""

from __future__ import annotations

from .base import (
    ABC_L,
    INFINITE_SSTHRESH,
    CongestionControl,
    CongestionControlBase,
    initial_window_bytes,
)
from .cubic import Cubic
from .newreno import NewReno

__all__ = [
    "INFINITE_SSTHRESH",
    "CongestionControl",
    "CongestionControlBase",
    "NewReno",
    "initial_window_bytes",
    "make_congestion_control",
]


def make_congestion_control(
    name: str,
    *,
    mss: int,
    initial_window: int = 10,
    hystart: bool = True,
    validation: str = "rfc7661",
    abc_limit: int | None = ABC_L,
) -> CongestionControl:
    """Build the controller called ``name`` (``"newreno"`` or ``"cubic"``) with an
    initial window of ``initial_window`` segments (RFC 6928, see
    :func:`initial_window_bytes`), the application-limited rule ``validation``
    (``"rfc7661"`` or ``"linux"``, see :mod:`.base`) and slow start's largest
    increase per ACK ``abc_limit`` in SMSS (None: no limit)."""
    key = name.lower()
    if key == "newreno":
        return NewReno(
            mss=mss,
            initial_window=initial_window,
            hystart=hystart,
            validation=validation,
            abc_limit=abc_limit,
        )
    if key == "cubic":
        return Cubic(
            mss=mss,
            initial_window=initial_window,
            hystart=hystart,
            validation=validation,
            abc_limit=abc_limit,
        )
    raise ValueError(f"unknown congestion control {name!r} (expected 'newreno' or 'cubic')")
