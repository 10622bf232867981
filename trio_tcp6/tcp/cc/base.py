"""The congestion-control interface and what every algorithm shares.

All sizes are in bytes. The engine owns loss detection and recovery (fast
retransmit, PRR); a controller only answers these events:

* :meth:`~CongestionControl.on_ack` — new data acknowledged outside loss recovery;
* :meth:`~CongestionControl.on_congestion_event` — loss detected, recovery begins:
  the controller sets ``ssthresh`` (and its own state) and leaves ``cwnd`` to the
  engine's recovery algorithm (RFC 6937 PRR writes ``cwnd`` directly);
* :meth:`~CongestionControl.on_recovery_exit` — recovery over: ``cwnd = ssthresh``
  (RFC 6582 §3.2 step 3 option 2, RFC 6937 §3);
* :meth:`~CongestionControl.on_rto` — retransmission timeout: loss window;
* :meth:`~CongestionControl.save` / :meth:`~CongestionControl.restore` — undo after a
  spurious timeout or recovery (F-RTO RFC 5682, Eifel RFC 4015, DSACK RFC 3708);
* :meth:`~CongestionControl.on_idle_restart` — restart after idleness (RFC 5681 §4.1).

Application-limited rule (cwnd validation), one of two, chosen with ``validation``
(``TCPConfig.cwnd_validation``); both judge the flight an ACK found,
``in_flight + acked`` (``in_flight`` being what is still outstanding after it):

* ``"rfc7661"``: an ACK grows ``cwnd`` only when that flight is at least half of
  ``cwnd``, RFC 7661's "validated" condition (pipeACK >= cwnd/2) evaluated per ACK,
  in slow start and congestion avoidance alike;
* ``"linux"``: per round (the data outstanding when it began gets acknowledged),
  slow start grows ``cwnd`` while it is below twice the largest flight of this or
  the previous round, and congestion avoidance only after the sender was
  cwnd-limited (less than one SMSS of ``cwnd`` unused) in this or the previous
  round (Linux ``tcp_is_cwnd_limited``). Congestion avoidance never grows a window
  the flow does not fill, which is the measure RFC 9438 §4.6 asks of a sender that
  computes ssthresh from ``cwnd``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..seq import seq_ge
from .hystart import HS_CSS, HS_EXIT, HyStartPlusPlus
from .interface import CongestionControl
from .native import mypyc_attr

__all__ = [
    "ABC_L",
    "CWND_VALIDATION",
    "INFINITE_SSTHRESH",
    "CongestionControl",
    "CongestionControlBase",
    "initial_window_bytes",
]

#: The initial, "arbitrarily high" ssthresh of RFC 5681 §3.1.
INFINITE_SSTHRESH = 1 << 62

#: Slow start's largest increase per ACK in SMSS, by default: RFC 9406 §4.3's L
#: for a HyStart++ sender that does not pace (RFC 3465 §2.2 had L = 2).
ABC_L = 8

#: The application-limited rules of the module docstring.
CWND_VALIDATION = ("rfc7661", "linux")


def initial_window_bytes(mss: int, segments: int = 10) -> int:
    """RFC 6928 §2 ``min(10*MSS, max(2*MSS, 14600))`` generalised to ``segments``
    (14600 being 10 * 1460): ``min(n*MSS, max(2*MSS, n*1460))``, at least 1 MSS."""
    if mss <= 0 or segments <= 0:
        raise ValueError("mss and the initial window must be positive")
    return max(mss, min(segments * mss, max(2 * mss, segments * 1460)))


_STATE_NAMES: dict[type, tuple[str, ...]] = {}


def state_names(cls: type) -> tuple[str, ...]:
    """Every instance attribute ``cls`` and its bases declare (the state an undo must
    copy; a ``__dict__`` comes on top): an interpreted class's ``__slots__``, and for
    a class compiled by mypyc, which keeps its attributes in C fields and drops
    ``__slots__``, the names mypyc records in ``__mypyc_attrs__`` (its own pickling
    support reads the same list)."""
    cached = _STATE_NAMES.get(cls)
    if cached is not None:
        return cached
    names: list[str] = []
    for klass in cls.__mro__:
        namespace = vars(klass)
        declared = namespace.get("__mypyc_attrs__", namespace.get("__slots__", ()))
        for name in (declared,) if isinstance(declared, str) else declared:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    cached = _STATE_NAMES[cls] = tuple(names)
    return cached


# Compiled, this is a native class that interpreted classes may still derive from
# (user algorithms): their overrides are called through Python, the built-in
# algorithms' methods natively.
@mypyc_attr(allow_interpreted_subclasses=True)
class CongestionControlBase:
    """Shared machinery: initial window, slow start with ABC and HyStart++, the
    application-limited rule, RTO and idle restart, MSS changes, save/restore.

    Subclasses implement :meth:`_congestion_avoidance` and :meth:`on_congestion_event`
    and may extend the other hooks. A subclass may keep its own state in slots or in
    a ``__dict__``: :meth:`save` and :meth:`restore` include both.
    """

    name: ClassVar[str] = "base"

    # Slots keep an idle connection small in the pure build (the compiled build's
    # native class ignores them: its attributes are C fields); a subclass without
    # ``__slots__`` simply gets a ``__dict__`` as well, which save()/restore() include.
    __slots__ = (
        "abc_limit",
        "congestion_events",
        "cwnd",
        "hystart",
        "initial_window",
        "limited_prev",
        "limited_round",
        "max_flight",
        "max_flight_prev",
        "mss",
        "round_end",
        "rto_events",
        "ssthresh",
        "validation",
    )

    cwnd: int
    ssthresh: int
    mss: int

    def __init__(
        self,
        *,
        mss: int,
        initial_window: int = 10,
        hystart: bool = True,
        validation: str = "rfc7661",
        abc_limit: int | None = ABC_L,
    ) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss!r}")
        if validation not in CWND_VALIDATION:
            raise ValueError(f"unknown cwnd validation {validation!r}")
        #: The application-limited rule (see the module docstring).
        self.validation = validation
        #: Slow start's largest increase per ACK in SMSS (None: no limit).
        self.abc_limit = abc_limit
        # Per-round usage for the "linux" rule: the round ends when SND.UNA passes
        # round_end; the largest flight seen and whether cwnd was filled, for this
        # round and the previous one.
        self.round_end: int | None = None
        self.max_flight = 0
        self.max_flight_prev = 0
        self.limited_round = False
        self.limited_prev = False
        self.mss = mss
        self.initial_window = initial_window
        self.cwnd = initial_window_bytes(mss, initial_window)
        self.ssthresh = INFINITE_SSTHRESH
        self.hystart: HyStartPlusPlus | None = HyStartPlusPlus() if hystart else None
        #: Congestion events (fast retransmits) and timeouts seen, for statistics.
        self.congestion_events = 0
        self.rto_events = 0

    # -- helpers ------------------------------------------------------------------

    @property
    def iw(self) -> int:
        """The initial window for the current MSS (RFC 6928)."""
        return initial_window_bytes(self.mss, self.initial_window)

    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def is_cwnd_limited(self, acked: int, in_flight: int) -> bool:
        """The ``"rfc7661"`` application-limited rule of the module docstring."""
        return 2 * (in_flight + acked) >= self.cwnd

    def may_grow(self, acked: int, in_flight: int, snd_una: int, snd_nxt: int) -> bool:
        """Whether this ACK may grow ``cwnd`` under the configured rule."""
        if self.validation == "rfc7661":
            return self.is_cwnd_limited(acked, in_flight)
        flight = in_flight + acked
        filled = flight + self.mss > self.cwnd
        if self.round_end is None or seq_ge(snd_una, self.round_end):
            self.max_flight_prev = self.max_flight
            self.limited_prev = self.limited_round
            self.max_flight = flight
            self.limited_round = filled
            self.round_end = snd_nxt
        else:
            if flight > self.max_flight:
                self.max_flight = flight
            self.limited_round = self.limited_round or filled
        if self.in_slow_start():
            return self.cwnd < 2 * max(self.max_flight, self.max_flight_prev)
        return self.limited_round or self.limited_prev

    def reno_ssthresh(self, in_flight: int) -> int:
        """RFC 5681 eq. (4): ``max(FlightSize / 2, 2*SMSS)``."""
        return max(in_flight // 2, 2 * self.mss)

    # -- events -------------------------------------------------------------------

    def on_ack(
        self, acked: int, now: float, rtt: float | None, snd_una: int, snd_nxt: int, in_flight: int
    ) -> None:
        if acked <= 0:
            return
        limited = self.may_grow(acked, in_flight, snd_una, snd_nxt)
        if self.in_slow_start():
            self._slow_start(acked, now, rtt, snd_una, snd_nxt, limited)
        else:
            self._congestion_avoidance(acked, now, rtt, limited)

    def _slow_start(
        self, acked: int, now: float, rtt: float | None, snd_una: int, snd_nxt: int, limited: bool
    ) -> None:
        """RFC 5681 §3.1 slow start with byte counting (at most ``abc_limit`` SMSS
        per ACK, RFC 9406 §4.3's 8 by default; no limit if None) and, during the
        initial slow start, HyStart++ (RFC 9406)."""
        divisor = 1
        hs = self.hystart
        if hs is not None and not hs.done and self.ssthresh == INFINITE_SSTHRESH:
            phase = hs.on_ack(rtt, snd_una, snd_nxt)
            if phase is HS_EXIT:
                self.ssthresh = self.cwnd
                self._on_slow_start_exit(now)
                return
            if phase is HS_CSS:
                divisor = hs.growth_divisor
        if not limited:
            return
        limit = self.abc_limit
        increment = (acked if limit is None else min(acked, limit * self.mss)) // divisor
        self.cwnd = min(self.cwnd + increment, max(self.ssthresh, self.cwnd))

    def _on_slow_start_exit(self, now: float) -> None:
        """HyStart++ ended slow start without a loss (hook for CUBIC)."""

    def _congestion_avoidance(
        self, acked: int, now: float, rtt: float | None, limited: bool
    ) -> None:
        raise NotImplementedError

    def on_congestion_event(self, now: float, in_flight: int) -> None:
        raise NotImplementedError

    def on_recovery_exit(self, now: float) -> None:
        if self.ssthresh < INFINITE_SSTHRESH:  # (no congestion event: nothing to do)
            self.cwnd = self.ssthresh

    def on_rto(self, now: float, in_flight: int, *, repeated: bool = False) -> None:
        """RFC 5681 §3.1: ``ssthresh`` per eq. (4) (subclasses may differ) and
        ``cwnd = 1 SMSS`` (the loss window). With ``repeated`` (the segment was already
        retransmitted by the timer), ssthresh is held constant (RFC 5681 §3.1)."""
        self.rto_events += 1
        if not repeated:
            self.ssthresh = self._ssthresh_after_rto(now, in_flight)
        self.cwnd = self.mss

    def _ssthresh_after_rto(self, now: float, in_flight: int) -> int:
        return self.reno_ssthresh(in_flight)

    def on_idle_restart(self, now: float, rto: float) -> None:
        """RFC 5681 §4.1: ``cwnd = RW = min(IW, cwnd)``."""
        self.cwnd = min(self.iw, self.cwnd)

    def set_mss(self, mss: int) -> None:
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss!r}")
        old = self.mss
        if mss == old:
            return
        self.mss = mss
        self.cwnd = max(mss, self.cwnd * mss // old)
        if self.ssthresh != INFINITE_SSTHRESH:
            self.ssthresh = max(2 * mss, self.ssthresh * mss // old)
        self._rescale(mss / old)

    def _rescale(self, factor: float) -> None:
        """Hook: scale byte-valued algorithm state by ``factor`` on an MSS change."""

    # -- undo ---------------------------------------------------------------------

    def save(self) -> object:
        state: dict[str, Any] = {
            name: getattr(self, name) for name in state_names(type(self)) if hasattr(self, name)
        }
        state.update(getattr(self, "__dict__", {}))
        del state["mss"]
        if self.hystart is not None:
            state["hystart"] = self.hystart.copy()
        return (self.mss, state)

    def restore(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict)):
            raise TypeError("restore() needs a value returned by save()")
        saved_mss, values = state
        hs = values.get("hystart")
        for name, value in values.items():
            setattr(self, name, value)
        if isinstance(hs, HyStartPlusPlus):
            self.hystart = hs.copy()
        if saved_mss != self.mss:
            new_mss = self.mss
            self.mss = saved_mss
            self.set_mss(new_mss)

    def __repr__(self) -> str:
        ssthresh = "inf" if self.ssthresh == INFINITE_SSTHRESH else str(self.ssthresh)
        return f"<{type(self).__name__} cwnd={self.cwnd} ssthresh={ssthresh} mss={self.mss}>"
