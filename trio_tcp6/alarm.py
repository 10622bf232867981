"""Alarm: one task's sleep that other code ends early or brings forward.

Several tasks of the runtime and the links sleep "until a deadline, or until
something happens", and the something is noticed by synchronous code running in
another task:

* a connection's sender task sleeps until the engine's next timer, or until a user
  call queues output or changes the timers;
* the VirtualNetwork's delivery task and the impairment filter's schedulers sleep
  until the next delayed packet is due, and a new packet may be due sooner;
* a link's receiver sleeps until a packet arrives in its inbound queue.

They all use :class:`Alarm`, so the trio.lowlevel parking is written once. Its cost
is that of the parking itself: :meth:`Alarm.wake` is one
:func:`trio.lowlevel.reschedule` (no cancellation, no memory channel), and a sleep
opens a cancel scope only when it has a finite deadline. The deadline of a sleep only
ever moves *earlier* (:meth:`Alarm.wake_by`): a later deadline costs the sleeper one
spurious wake-up, after which it computes its deadline again (as Linux's lazy timers
do). Callers therefore treat every return of :meth:`Alarm.sleep_until` as "look
again", never as proof that the deadline passed or that someone woke them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Generator
from typing import Any

import trio

__all__ = ["Alarm", "Waiters"]

_reschedule = trio.lowlevel.reschedule
_current_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED


class Alarm:
    """A sleep for one task at a time, ended by its deadline, by :meth:`wake` (from
    synchronous code anywhere in the same trio run) or by cancellation.

    A :meth:`wake` while nobody sleeps is remembered (:attr:`pending`): the next
    :meth:`sleep_until` returns at once, so a wake-up is never lost between a task's
    last look at its work and its sleep. A second task trying to sleep on the same
    alarm gets :class:`trio.BusyResourceError` with ``busy_message``.
    """

    __slots__ = ("_busy_message", "_pending", "_scope", "_task")

    def __init__(self, busy_message: str = "another task is already waiting") -> None:
        self._busy_message = busy_message
        self._task: trio.lowlevel.Task | None = None
        self._scope: trio.CancelScope | None = None
        self._pending = False

    @property
    def sleeping(self) -> bool:
        """True while a task sleeps in :meth:`sleep_until`."""
        return self._task is not None

    @property
    def pending(self) -> bool:
        """True when :meth:`wake` was called while nobody slept (and not cleared)."""
        return self._pending

    def clear(self) -> None:
        """Forget a pending wake-up: call it before doing the work wake-ups ask for,
        so that only the ones that come during that work count."""
        self._pending = False

    def wake(self) -> None:
        """End the current sleep now; if nobody sleeps, make the next sleep return at
        once."""
        task = self._task
        if task is not None:
            self._task = None
            _reschedule(task)
        else:
            self._pending = True

    def wake_by(self, deadline: float) -> None:
        """Make the current sleep end no later than ``deadline``.

        Only ever moves the deadline earlier; no effect when nobody sleeps (a sleeper
        computes its deadline before it sleeps). A sleep without a deadline is woken
        at once instead (the sleeper then sleeps again with a deadline)."""
        if self._task is None:
            return
        scope = self._scope
        if scope is None:
            if deadline != math.inf:
                self.wake()
        elif deadline < scope.deadline:
            scope.deadline = deadline

    def __call__(self, _: Any) -> trio.lowlevel.Abort:
        """The sleep's abort function (trio calls it when the sleeper is cancelled).

        The alarm itself rather than a bound method: the parked trap holds its abort
        function while the task sleeps, and a bound method made per sleep is one
        object more that every sleeping task (two per idle connection) keeps."""
        self._task = None
        return _SUCCEEDED

    async def sleep_until(self, deadline: float = math.inf) -> None:
        """Sleep until ``deadline`` (trio clock; ``math.inf``: no deadline), a
        :meth:`wake`, or cancellation (raised as usual).

        Returns at once, without a checkpoint, when a wake-up is pending (the caller's
        loop did work since it last slept). A deadline already past returns at the
        next scheduling point. May return early: the caller looks again."""
        await self.wait_until(deadline)

    def wait_until(self, deadline: float = math.inf) -> Awaitable[None]:
        """:meth:`sleep_until` for a task that calls it and awaits the result at once
        (``await alarm.wait_until(t)``): a plain function, so that a task asleep
        without a deadline (an idle connection's sender) holds no frame of its own
        for the sleep, one coroutine object less per sleeping task."""
        if self._pending:
            self._pending = False
            return _READY
        if self._task is not None:
            raise trio.BusyResourceError(self._busy_message)
        self._task = _current_task()
        if deadline == math.inf:
            return _wait_task_rescheduled(self)
        return self._sleep_scoped(deadline)

    async def _sleep_scoped(self, deadline: float) -> None:
        with trio.CancelScope(deadline=deadline) as scope:
            self._scope = scope
            try:
                await _wait_task_rescheduled(self)
            finally:
                self._scope = None


class _Ready:
    """An awaitable that is done at once (no checkpoint); one is shared."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_READY = _Ready()


class Waiters:
    """Tasks waiting for one condition, woken all at once: what
    :class:`trio.lowlevel.ParkingLot` does for a connection's user calls, at a tenth
    of its memory (one slot, and a list only while somebody waits; a connection makes
    up to three of these, each when a user task first waits on it).

    True while a task waits. :meth:`park` is a checkpoint (cancellation is raised as
    usual); :meth:`unpark_all` wakes the waiters in the order they parked.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: list[trio.lowlevel.Task] | None = None

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def __len__(self) -> int:
        tasks = self._tasks
        return len(tasks) if tasks else 0

    async def park(self) -> None:
        """Wait until :meth:`unpark_all` (or cancellation)."""
        task = _current_task()
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = []
        tasks.append(task)

        def abort(_: Any) -> trio.lowlevel.Abort:
            tasks.remove(task)
            return _SUCCEEDED

        await _wait_task_rescheduled(abort)

    def unpark_all(self) -> None:
        """Wake every waiting task."""
        tasks = self._tasks
        if tasks:
            self._tasks = None
            for task in tasks:
                _reschedule(task)
