"""The identity shortcuts on the per-segment and per-connection paths keep the
answers of the slow paths: state sets answer by identity, and ``shared_config``
returns the same shared object whichever way it finds it."""

from __future__ import annotations

import attrs

from trio_tcp6.config import TCPConfig
from trio_tcp6.tcp.connection import shared_config
from trio_tcp6.tcp.events import State
from trio_tcp6.tcp.states import RECEIVING, SENDING


def test_state_sets_answer_as_before() -> None:
    assert State.ESTABLISHED in SENDING and State.CLOSE_WAIT in SENDING
    assert State.LISTEN not in SENDING and State.CLOSED not in RECEIVING
    assert {s: s.value for s in State}[State.TIME_WAIT] == "TIME-WAIT"
    assert len(set(State) | set(State)) == len(State)


def test_shared_config_same_object_by_identity_and_by_equality() -> None:
    base = TCPConfig(send_buffer=123457)
    first = shared_config(base, nagle=False)
    assert first.nagle is False and attrs.evolve(base, nagle=False) == first
    assert shared_config(base, nagle=False) is first  # (the identity shortcut)
    other = shared_config(TCPConfig(), nagle=False)  # another question in between
    assert other is not first
    equal = TCPConfig(send_buffer=123457)  # an equal config, another object
    assert shared_config(equal, nagle=False) is first  # (found by equality)
    assert shared_config(base, nagle=True) == base
    assert shared_config(base, nagle=False) is first
