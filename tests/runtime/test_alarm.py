"""The one sleep primitive of the runtime and the links (virtual time)."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from trio_tcp6.alarm import Alarm


async def test_deadline_and_wake(autojump_clock: trio.testing.MockClock) -> None:
    alarm = Alarm()
    start = trio.current_time()
    await alarm.sleep_until(start + 2.0)
    assert trio.current_time() == start + 2.0
    assert not alarm.sleeping

    async with trio.open_nursery() as nursery:
        nursery.start_soon(alarm.sleep_until, math.inf)
        await trio.testing.wait_all_tasks_blocked()
        assert alarm.sleeping
        await trio.sleep(1.0)
        alarm.wake()
        assert not alarm.sleeping and not alarm.pending
    assert trio.current_time() == start + 3.0


async def test_a_wake_while_nobody_sleeps_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarm = Alarm()
    alarm.wake()
    assert alarm.pending
    start = trio.current_time()
    await alarm.sleep_until(start + 5.0)  # returns at once
    assert trio.current_time() == start and not alarm.pending
    alarm.wake()
    alarm.clear()
    await alarm.sleep_until(start + 5.0)  # cleared: sleeps
    assert trio.current_time() == start + 5.0


async def test_wake_by_only_moves_the_deadline_earlier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    alarm = Alarm()
    start = trio.current_time()
    ended: list[float] = []

    async def sleeper(deadline: float) -> None:
        await alarm.sleep_until(deadline)
        ended.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper, start + 10.0)
        await trio.sleep(1.0)
        alarm.wake_by(start + 20.0)  # later: ignored
        alarm.wake_by(start + 4.0)
        alarm.wake_by(start + 6.0)  # later than 4 now: ignored
    assert ended == [4.0]
    alarm.wake_by(start)  # nobody sleeps: no effect, nothing pending
    assert not alarm.pending

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper, math.inf)
        await trio.sleep(1.0)
        alarm.wake_by(math.inf)  # no deadline to bring forward
        await trio.testing.wait_all_tasks_blocked()
        assert alarm.sleeping
        alarm.wake_by(trio.current_time() + 50.0)  # no timer yet: woken to take one
    assert ended == [4.0, 5.0]


async def test_one_sleeper_and_cancellation(autojump_clock: trio.testing.MockClock) -> None:
    alarm = Alarm("taken")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(alarm.sleep_until, math.inf)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match="taken"):
            await alarm.sleep_until(math.inf)
        nursery.cancel_scope.cancel()
    assert not alarm.sleeping
    with trio.move_on_after(1.0) as scope:
        await alarm.sleep_until(trio.current_time() + 5.0)
    assert scope.cancelled_caught and not alarm.sleeping
