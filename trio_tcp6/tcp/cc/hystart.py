"""HyStart++: modified slow start with a delay-based exit (RFC 9406).

Sans-I/O helper used by every congestion controller while it is in its *initial*
slow start (RFC 9406 §4.1: only while ssthresh still has its initial, "infinite",
value; later slow starts, e.g. after an RTO, are standard).

Rounds are delimited by sequence numbers (§4.2): a round starts by recording
``snd_nxt`` as ``window_end`` and ends when an ACK moves ``snd_una`` to or past
``window_end``. In each round the minimum RTT sample is tracked; once
``N_RTT_SAMPLE`` samples were seen in a round and the round's minimum exceeds the
last round's minimum by ``RttThresh``, slow start changes to Conservative Slow Start
(CSS), whose growth is divided by ``CSS_GROWTH_DIVISOR``. If the RTT drops back below
the baseline taken on entry, the increase was spurious and slow start resumes;
after ``CSS_ROUNDS`` rounds of CSS, slow start ends (the caller sets
``ssthresh = cwnd``).
"""

from __future__ import annotations

import enum
import math

from ..seq import seq_ge

__all__ = [
    "CSS_GROWTH_DIVISOR",
    "CSS_ROUNDS",
    "HS_CSS",
    "HS_EXIT",
    "HS_SLOW_START",
    "MAX_RTT_THRESH",
    "MIN_RTT_DIVISOR",
    "MIN_RTT_THRESH",
    "N_RTT_SAMPLE",
    "HyStartPhase",
    "HyStartPlusPlus",
]

#: RFC 9406 §4.3 recommended constants (seconds where they are times).
MIN_RTT_THRESH = 0.004
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5


class HyStartPhase(enum.Enum):
    """What the slow-start algorithm should do with the current ACK."""

    #: Standard slow start (RFC 5681).
    SLOW_START = "slow_start"
    #: Conservative Slow Start: grow by ``increment / CSS_GROWTH_DIVISOR``.
    CSS = "css"
    #: Leave slow start now: set ``ssthresh = cwnd`` (RFC 9406 §4.2, after CSS_ROUNDS).
    EXIT = "exit"


# The phases as module constants, for the per-ACK code: reading a member through
# its Enum class goes through the metaclass (in CPython 3.11 several times the
# cost of reading a global).
HS_SLOW_START = HyStartPhase.SLOW_START
HS_CSS = HyStartPhase.CSS
HS_EXIT = HyStartPhase.EXIT


class HyStartPlusPlus:
    """Per-connection HyStart++ state (RFC 9406 §4.2)."""

    __slots__ = (
        "css_baseline_min_rtt",
        "css_rounds",
        "current_round_min_rtt",
        "done",
        "in_css",
        "last_round_min_rtt",
        "rtt_sample_count",
        "window_end",
    )

    def __init__(self) -> None:
        self.window_end: int | None = None
        self.last_round_min_rtt = math.inf
        self.current_round_min_rtt = math.inf
        self.rtt_sample_count = 0
        #: ``cssBaselineMinRtt``: infinite while in standard slow start.
        self.css_baseline_min_rtt = math.inf
        #: Rounds completed since CSS was entered (the entry round counts when it ends).
        self.css_rounds = 0
        self.in_css = False
        #: True once HyStart++ has ended slow start (it is then inert).
        self.done = False

    @property
    def growth_divisor(self) -> int:
        """Divide the slow-start increment by this (``CSS_GROWTH_DIVISOR`` in CSS)."""
        return CSS_GROWTH_DIVISOR if self.in_css else 1

    def on_ack(self, rtt: float | None, snd_una: int, snd_nxt: int) -> HyStartPhase:
        """Account one ACK received in slow start; ``snd_una`` is the value after the
        ACK was processed, ``rtt`` the ACK's RTT sample if it yielded one."""
        if self.done:
            return HS_EXIT
        if self.window_end is None or seq_ge(snd_una, self.window_end):
            # A round ended (or this is the first ACK): start the next one.
            started = self.window_end is not None
            self.window_end = snd_nxt
            self.last_round_min_rtt = self.current_round_min_rtt
            self.current_round_min_rtt = math.inf
            self.rtt_sample_count = 0
            if started and self.in_css:
                self.css_rounds += 1
                if self.css_rounds >= CSS_ROUNDS:
                    self.done = True
                    self.in_css = False
                    return HS_EXIT
        if rtt is not None:
            if rtt < self.current_round_min_rtt:
                self.current_round_min_rtt = rtt
            self.rtt_sample_count += 1
        if self.rtt_sample_count >= N_RTT_SAMPLE:
            if not self.in_css:
                if math.isfinite(self.last_round_min_rtt) and math.isfinite(
                    self.current_round_min_rtt
                ):
                    rtt_thresh = max(
                        MIN_RTT_THRESH,
                        min(self.last_round_min_rtt / MIN_RTT_DIVISOR, MAX_RTT_THRESH),
                    )
                    if self.current_round_min_rtt >= self.last_round_min_rtt + rtt_thresh:
                        self.css_baseline_min_rtt = self.current_round_min_rtt
                        self.in_css = True
                        self.css_rounds = 0
            elif self.current_round_min_rtt < self.css_baseline_min_rtt:
                # The RTT increase was spurious: back to standard slow start (§4.2).
                self.css_baseline_min_rtt = math.inf
                self.in_css = False
        return HS_CSS if self.in_css else HS_SLOW_START

    def copy(self) -> HyStartPlusPlus:
        # Field by field: compiled, this is a native class without ``__slots__``.
        new = HyStartPlusPlus()
        new.window_end = self.window_end
        new.last_round_min_rtt = self.last_round_min_rtt
        new.current_round_min_rtt = self.current_round_min_rtt
        new.rtt_sample_count = self.rtt_sample_count
        new.css_baseline_min_rtt = self.css_baseline_min_rtt
        new.css_rounds = self.css_rounds
        new.in_css = self.in_css
        new.done = self.done
        return new
