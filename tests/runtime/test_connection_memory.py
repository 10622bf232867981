"""What an idle established connection costs, measured with tracemalloc.

One connection end is the engine (``Connection`` and its records, buffers,
scoreboard, RTT estimator, congestion control, memory-account share), the flow
(``DirectFlow``, its inbox memory channel, two alarms; waiter lots only once a user
task waited) and the flow's two
trio tasks (their coroutine frames and ``Task`` objects). Every per-connection class
has slots, so none of them carries a ``__dict__``; without the slots (and with three
trio ``ParkingLot`` objects per flow) an end measured about 18 KB here.
"""

from __future__ import annotations

import gc
import tracemalloc

import trio
import trio.testing

from trio_tcp6.alarm import Alarm, Waiters
from trio_tcp6.runtime.flow import DirectFlow, Inbox
from trio_tcp6.tcp.cc.cubic import Cubic
from trio_tcp6.tcp.cc.hystart import HyStartPlusPlus
from trio_tcp6.tcp.cc.newreno import NewReno
from trio_tcp6.tcp.connection import Connection
from trio_tcp6.tcp.options import Options
from trio_tcp6.tcp.recovery import PRR, LossRecovery
from trio_tcp6.tcp.recvbuf import ReceiveBuffer
from trio_tcp6.tcp.rtt import RTTEstimator
from trio_tcp6.tcp.sendbuf import SendBuffer
from trio_tcp6.tcp.tcb import ReceiveState, SendState
from trio_tcp6.tcp.timers import Timers

from .helpers import two_stacks

#: Measured on CPython 3.11 and trio 0.35 (the same figure in every run): 8017 bytes
#: per end in the pure build, 7699 in the compiled one (9005 and 8698 before the
#: second round of cuts, 10756 and 10625 before the memory work of issue 12). Issue
#: 12's target for an idle connection is 10 KiB in the scale benchmark, whose RSS
#: figure is ~1 KiB above this one (the stack's tables growing in steps, the
#: allocator's slack); the bound is the pure figure with ~3.5 % to spare, so that a
#: regression fails here. The trio memory channel (the design card's) is ~1.7 KiB of
#: it, the two trio tasks asleep ~2.7 KiB (their coroutines and frames, contexts,
#: Task objects, and each sleep's trap: trio's wait coroutine and its yield).
BOUND_PER_END = 8300

N = 200
#: Only allocations made at least once per eight ends count: a table's resize is one
#: allocation, and landing inside or outside the window it swung the figure by 2 KB.
MIN_COUNT = N // 4


def test_every_per_connection_class_is_slotted() -> None:
    """No instance of these carries a ``__dict__`` (the engine's slotted records
    from tcp/sack.py and tcp/rack.py included)."""
    from trio_tcp6.tcp.rack import Rack
    from trio_tcp6.tcp.sack import Scoreboard

    for cls in (
        Connection,
        Options,
        SendState,
        ReceiveState,
        Timers,
        LossRecovery,
        PRR,
        SendBuffer,
        ReceiveBuffer,
        RTTEstimator,
        Cubic,
        NewReno,
        HyStartPlusPlus,
        DirectFlow,
        Inbox,
        Alarm,
        Waiters,
        Scoreboard,
        Rack,
    ):
        # Zero exactly when instances have no __dict__: every class in the MRO declares
        # __slots__, or the class is a compiled (mypyc) native class.
        unslotted = [k.__name__ for k in cls.__mro__[:-1] if "__slots__" not in vars(k)]
        assert cls.__dictoffset__ == 0, f"{cls.__name__}: no __slots__ in {unslotted}"


async def test_an_idle_established_connection_end_is_small(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_stacks() as (_net, client, server):
        listener = await server.open_tcp_listener(80)
        # Warm every cache and free list first.
        warm = [await client.open_tcp_stream(server.address, 80), await listener.accept()]
        await trio.sleep(1)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            ends = []
            for _ in range(N):
                ends.append(await client.open_tcp_stream(server.address, 80))
                ends.append(await listener.accept())
            # The last ACKs are out, no timer is armed any more, and every sender has
            # had its one spurious wake-up at its handshake's stale RTO deadline (the
            # initial RTO, 1 s, after its SYN) and sleeps without a deadline.
            await trio.sleep(2)
            gc.collect()
            grown = tracemalloc.take_snapshot().compare_to(before, "lineno")
        finally:
            tracemalloc.stop()
        per_end = sum(s.size_diff for s in grown if s.count_diff >= MIN_COUNT) / (2 * N)
        assert len(client.flows) == len(server.flows) == N + 1
        assert all(f.engine.next_deadline is None for f in client.flows + server.flows)
        for stream in ends + warm:
            await stream.aclose()
    print(f"memory per idle established connection end: {per_end:.0f} bytes")
    assert per_end <= BOUND_PER_END
