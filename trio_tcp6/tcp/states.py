"""Named sets of connection states (RFC 9293 §3.3.2), the one place they are defined,
and the sender's congestion-avoidance states.

The engine and the runtime test membership in these sets rather than spelling the
states out, so that a rule such as "a RST is sent on abort" has one definition.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from .events import State

__all__ = [
    "RECEIVING",
    "RESET_ON_ABORT",
    "SENDING",
    "SYNCHRONIZED",
    "CAState",
    "StateTrace",
]

#: The synchronized states of RFC 9293 §3.10.7.4: both SYNs were seen and
#: acknowledged (ESTABLISHED through TIME-WAIT).
SYNCHRONIZED = frozenset(
    {
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.CLOSE_WAIT,
        State.CLOSING,
        State.LAST_ACK,
        State.TIME_WAIT,
    }
)
#: States in which an abort sends a RST (RFC 9293 §3.10.5: SYN-RECEIVED and the
#: synchronized states; in TIME-WAIT the connection is simply deleted). The peer
#: accepts a RST at SND.NXT in each of them.
RESET_ON_ABORT = (SYNCHRONIZED | {State.SYN_RECEIVED}) - {State.TIME_WAIT}
#: States in which we may transmit data and our FIN.
SENDING = frozenset(
    {State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK}
)
#: States in which received text is accepted (RFC 9293 §3.10.7.4 seventh).
RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})

#: A state-transition hook: called as ``hook(old, new, reason, now)`` for every
#: transition of a connection (see ``Connection.trace``). ``reason`` is a short
#: phrase naming the rule ("rst", "fin acked", "timeout", ...).
StateTrace = Callable[[State, State, str, float], None]


class CAState(enum.IntEnum):
    """The sender's congestion-avoidance state (Linux's names: open, recovery, loss)."""

    #: No loss being repaired.
    OPEN = 0
    #: Fast recovery (SACK/RFC 6675 or NewReno/RFC 6582) with PRR (RFC 6937).
    RECOVERY = 1
    #: After a retransmission timeout (RFC 6298 §5.4-5.7, RFC 5681 §3.1).
    LOSS = 2


CA_OPEN = CAState.OPEN
CA_RECOVERY = CAState.RECOVERY
CA_LOSS = CAState.LOSS
