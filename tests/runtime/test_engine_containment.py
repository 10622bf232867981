"""An unexpected exception inside the engine breaks that connection, and only it.

The engine does what h11 does: the exception marks the connection broken and
propagates; the runtime aborts the connection (RST, since it is synchronized), logs
the traceback, counts ``engine_errors``, and the user sees ``BrokenResourceError``
(``Error(Unknown(...))`` from the mirage API). The fault is injected into an inner
procedure (the ACK processing), not into the public call that wraps it: through the
congestion controller, which stays interpreted in the compiled build, where patching
a compiled module's function would not change its compiled callers.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.tcp.connection import Connection, EngineError

from .helpers import connect, receive_exactly, two_stacks

SIZE = 200_000


def pattern(n: int, salt: int) -> bytes:
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def break_ack_processing_once(
    monkeypatch: pytest.MonkeyPatch, victim: Connection, after: int
) -> list[int]:
    """Make the victim's ACK processing raise once, when more than ``after`` bytes
    are acknowledged; returns a list that records the failure."""
    cc_class = type(victim.cc)
    original = cc_class.on_ack
    fired: list[int] = []

    def on_ack(cc: Any, *args: Any) -> None:
        if cc is victim.cc and not fired and victim.info().bytes_acked > after:
            fired.append(victim.info().bytes_acked)
            raise RuntimeError("boom in ACK processing")
        original(cc, *args)

    monkeypatch.setattr(cc_class, "on_ack", on_ack)
    return fired


async def test_ack_processing_bug_breaks_only_its_connection(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with two_stacks(delay=0.001) as (_net, a, b):
        c1, s1 = await connect(a, b, 80)
        c2, s2 = await connect(a, b, 81)
        fired = break_ack_processing_once(monkeypatch, c1._conn, SIZE // 2)
        payload1, payload2 = pattern(SIZE, 1), pattern(SIZE, 2)
        got2 = bytearray()
        peer_error: list[BaseException] = []

        async def sender1() -> None:
            with pytest.raises(trio.BrokenResourceError, match="internal error"):
                await c1.send_all(payload1)  # (may all fit in the send buffer)
                await c1.receive_some()  # the peer sends nothing: this waits

        async def receiver1() -> None:
            try:
                while await s1.receive_some():
                    pass
            except trio.BrokenResourceError as exc:
                peer_error.append(exc)

        async def transfer2() -> None:
            await c2.send_all(payload2)
            got2.extend(await receive_exactly(s2, SIZE))

        with caplog.at_level(logging.ERROR, logger="trio_tcp6"), trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender1)
                nursery.start_soon(receiver1)
                nursery.start_soon(transfer2)
        # It failed in the middle of the transfer, once.
        assert len(fired) == 1 and SIZE // 2 < fired[0] < SIZE
        assert a.stats()["engine_errors"] == 1
        assert any(
            r.exc_text and "boom in ACK processing" in r.exc_text for r in caplog.records
        ), "the traceback is logged"
        # The engine refuses to act on its half-applied state.
        assert c1._conn.broken is not None
        with pytest.raises(EngineError):
            c1._conn.on_timer(trio.current_time())
        # The mirage API reports it as an Unknown error.
        match await c1.read():
            case tcp6.Error(tcp6.Unknown() as err):
                assert "internal error" in str(err)
            case other:
                pytest.fail(f"unexpected {other!r}")
        # The peer was reset.
        assert peer_error and "reset" in str(peer_error[0])
        assert b.stats()["resets_received"] >= 1
        # The other connection on the same stack completed byte-exact.
        assert bytes(got2) == payload2
        for f in (c1, s1, c2, s2):
            await f.aclose()
        a._counters["engine_errors"] = 0  # expected here: two_stacks checks for none


async def test_bug_during_a_user_call_is_contained_the_same_way(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with two_stacks(delay=0.001) as (_net, a, b):
        c1, s1 = await connect(a, b, 80)
        c2, s2 = await connect(a, b, 81)
        victim = c1._conn

        class BrokenCongestionControl:
            """Fails as soon as the output path consults the window."""

            def __getattr__(self, name: str) -> Any:
                raise RuntimeError("boom in output")

        monkeypatch.setattr(victim, "cc", BrokenCongestionControl())
        with caplog.at_level(logging.ERROR, logger="trio_tcp6"):
            with pytest.raises(trio.BrokenResourceError, match="internal error"):
                await c1.send_all(b"never sent")
            with pytest.raises(trio.BrokenResourceError, match="internal error"):
                await c1.send_all(b"again")
        assert a.stats()["engine_errors"] == 1
        assert any(r.exc_text and "boom in output" in r.exc_text for r in caplog.records)
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError, match="reset"):
            await s1.receive_some()
        await c2.send_all(b"unharmed")
        assert await receive_exactly(s2, 8) == b"unharmed"
        for f in (c1, s1, c2, s2):
            await f.aclose()
        a._counters["engine_errors"] = 0
