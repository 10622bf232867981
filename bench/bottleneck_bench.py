"""Congestion control on a shared bottleneck, in virtual time: the figures of the
user guide's congestion-control page.

    python bench/bottleneck_bench.py [--duration 30] [--only NAME ...]

Every experiment is a dumbbell (``trio_tcp6.sim.dumbbell``): N sender stacks, one
10 Mbit/s bottleneck, N receiver stacks, each pair with its own round-trip time.
Each sender pushes bulk data from its start time to the end; a sampler records,
every 100 ms of virtual time, the bytes each receiver got, each sender's
``flow.info()`` (cwnd, ssthresh, srtt, retransmissions) and the bottleneck's
counters (busy time, queue length, the queue's stats). Experiments:

* ``utilisation``: one CUBIC flow, 40 ms RTT, a 1-BDP drop-tail queue;
* ``fairness``: 4 CUBIC flows starting 2 s apart, Jain's index over the last 20 s;
* ``cubic-reno``: a CUBIC flow beside a NewReno flow, same RTT;
* ``rtt``: CUBIC flows of 20 ms and 80 ms RTT (and the same with NewReno);
* ``bufferbloat``: one flow through a 10-BDP drop-tail queue, then CoDel, then CoDel
  with ECN at both ends (when ``TCPConfig`` has an ``ecn`` field);
* ``hystart``: when a flow on a deep-buffered path leaves slow start, compared
  with its first retransmission;
* ``speed``: wall-clock speed of the simulation, dumbbell with 4 flows.

The tests in ``tests/sim/test_congestion.py`` run the same functions, shorter.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio
import trio.testing

import trio_tcp6 as tcp6
from trio_tcp6.sim import CoDel, DropTail, Queue, dumbbell

RATE = 10e6
RTT = 0.040
MSS_PACKET = 1500
#: Bandwidth-delay product of the reference path, in full-size packets (33).
BDP_PACKETS = int(RATE * RTT / 8 / MSS_PACKET)
PORT = 5001
CHUNK = b"x" * (1 << 16)


def has_ecn() -> bool:
    """Whether the engine's ``TCPConfig`` has an ``ecn`` switch (RFC 3168)."""
    return any(a.name == "ecn" for a in attrs.fields(tcp6.TCPConfig))


@attrs.define
class Sample:
    """The state of the experiment at one virtual instant."""

    t: float
    busy_time: float
    queue_packets: int
    queue: dict[str, float]
    received: list[int]
    infos: list[tcp6.FlowInfo | None]


@attrs.define
class Run:
    """What :func:`simulate` measured. Windows are ``[start, end)`` in virtual
    seconds, taken from the samples (every ``sample`` seconds)."""

    rate: float
    duration: float
    samples: list[Sample]
    wall: float
    #: CPU seconds of this process during the run (the wall clock includes other
    #: programs' turns on a shared machine).
    cpu: float
    bottleneck: dict[str, float]
    names: list[str]

    def at(self, t: float) -> Sample:
        """The last sample taken at or before ``t``."""
        best = self.samples[0]
        for s in self.samples:
            if s.t <= t + 1e-9:
                best = s
        return best

    def goodput(self, i: int, start: float, end: float) -> float:
        """Flow ``i``'s goodput in bits/s over the window."""
        a, b = self.at(start), self.at(end)
        return (b.received[i] - a.received[i]) * 8 / (b.t - a.t)

    def shares(self, start: float, end: float) -> list[float]:
        """Each flow's fraction of the total goodput over the window."""
        g = [self.goodput(i, start, end) for i in range(len(self.names))]
        total = sum(g)
        return [x / total if total else 0.0 for x in g]

    def utilisation(self, start: float, end: float) -> float:
        """Fraction of the window the bottleneck's serializer was busy."""
        a, b = self.at(start), self.at(end)
        return (b.busy_time - a.busy_time) / (b.t - a.t)

    def jain(self, start: float, end: float) -> float:
        """Jain's fairness index of the flows' goodputs over the window:
        ``(sum x)^2 / (n sum x^2)``, 1 when equal, 1/n when one flow has it all."""
        g = [self.goodput(i, start, end) for i in range(len(self.names))]
        return sum(g) ** 2 / (len(g) * sum(x * x for x in g))

    def queue_delay(self, start: float, end: float) -> float:
        """Mean sojourn time (seconds) of the packets that left the bottleneck queue
        in the window."""
        a, b = self.at(start).queue, self.at(end).queue
        n = b["dequeued"] - a["dequeued"]
        if n <= 0:
            return 0.0
        return (b["sojourn_mean"] * b["dequeued"] - a["sojourn_mean"] * a["dequeued"]) / n

    def queue_drops(self, start: float = 0.0, end: float = math.inf) -> float:
        """Packets the bottleneck queue dropped in the window."""
        return self.at(end).queue["drops"] - self.at(start).queue["drops"]

    def queue_marks(self, start: float = 0.0, end: float = math.inf) -> float:
        """Packets the bottleneck queue CE-marked in the window."""
        return self.at(end).queue.get("marks", 0) - self.at(start).queue.get("marks", 0)

    def srtt(self, i: int, start: float, end: float) -> float:
        """Flow ``i``'s smoothed RTT averaged over the samples in the window: the
        RTT the flow lived with, queueing included."""
        values = [
            info.srtt
            for s in self.samples
            if start <= s.t <= end and (info := s.infos[i]) is not None and info.srtt
        ]
        return sum(values) / len(values) if values else math.nan

    def first_retransmit(self, i: int) -> Sample | None:
        """The first sample where flow ``i`` had retransmitted anything."""
        for s in self.samples:
            info = s.infos[i]
            if info is not None and info.retransmits > 0:
                return s
        return None

    def slow_start_exit(self, i: int) -> Sample | None:
        """The first sample where flow ``i`` had a finite ssthresh."""
        for s in self.samples:
            info = s.infos[i]
            if info is not None and info.ssthresh is not None:
                return s
        return None


def simulate(
    *,
    n: int = 1,
    rtt: float | Sequence[float] = RTT,
    rate: float = RATE,
    queue: Callable[[], Queue] | None = None,
    duration: float = 30.0,
    starts: Sequence[float] | None = None,
    configs: Sequence[tcp6.TCPConfig] | None = None,
    receiver_config: tcp6.TCPConfig | None = None,
    names: Sequence[str] | None = None,
    sample: float = 0.1,
    seed: int = 1,
) -> Run:
    """Run ``n`` bulk flows over a dumbbell for ``duration`` virtual seconds.

    ``queue``: the bottleneck's queue factory (default: 1 BDP of drop-tail);
    ``starts``: each flow's start time (default all at 0); ``configs``: each
    sender's ``TCPConfig`` (default CUBIC); ``receiver_config``: every receiver's.
    """
    if queue is None:

        def queue() -> Queue:
            return DropTail(packets=BDP_PACKETS)

    flow_starts = list(starts) if starts is not None else [0.0] * n
    sender_configs = list(configs) if configs is not None else [tcp6.TCPConfig()] * n
    labels = list(names) if names is not None else [f"flow{i}" for i in range(n)]
    d = dumbbell(n, rate=rate, rtt=rtt, queue=queue, seed=seed)
    received = [0] * n
    flows: list[tcp6.Flow | None] = [None] * n
    samples: list[Sample] = []

    def snapshot() -> None:
        samples.append(
            Sample(
                t=trio.current_time(),
                busy_time=d.bottleneck.busy_time,
                queue_packets=len(d.bottleneck.queue),
                queue=dict(d.bottleneck.queue.stats()),
                received=list(received),
                infos=[f.info() if f is not None else None for f in flows],
            )
        )

    async def sink(i: int, stream: trio.abc.Stream) -> None:
        while chunk := await stream.receive_some(1 << 16):
            received[i] += len(chunk)

    async def receiver(i: int, task_status: trio.TaskStatus[None]) -> None:
        host = d.receivers[i]
        async with tcp6.open_stack(host.link, host.address, config=receiver_config) as stack:
            listener = await stack.open_tcp_listener(PORT)
            task_status.started()
            async with trio.open_nursery() as nursery:
                while True:
                    stream = await listener.accept()
                    nursery.start_soon(sink, i, stream)

    async def sender(i: int) -> None:
        host = d.senders[i]
        async with tcp6.open_stack(host.link, host.address, config=sender_configs[i]) as stack:
            await trio.sleep_until(flow_starts[i])
            flow = await stack.open_tcp_stream(d.receivers[i].address, PORT)
            flows[i] = flow
            while True:
                await flow.send_all(CHUNK)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(n):
                await nursery.start(receiver, i)
            for i in range(n):
                nursery.start_soon(sender, i)
            t = 0.0
            while t <= duration + 1e-9:
                await trio.sleep_until(t)
                snapshot()
                t += sample
            nursery.cancel_scope.cancel()
        d.net.close()

    wall, cpu = time.perf_counter(), time.process_time()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Run(
        rate=rate,
        duration=duration,
        samples=samples,
        wall=wall,
        cpu=cpu,
        bottleneck=d.bottleneck.stats(),
        names=labels,
    )


# -- the experiments ---------------------------------------------------------------


def utilisation(duration: float = 30.0) -> Run:
    """One CUBIC flow, 10 Mbit/s, 40 ms RTT, a 1-BDP drop-tail queue."""
    return simulate(duration=duration)


def fairness(duration: float = 30.0, n: int = 4, stagger: float = 2.0) -> Run:
    """``n`` CUBIC flows starting ``stagger`` seconds apart."""
    return simulate(n=n, duration=duration, starts=[i * stagger for i in range(n)])


def cubic_vs_reno(duration: float = 30.0) -> Run:
    """A CUBIC and a NewReno flow, same 40 ms RTT, 1-BDP drop-tail."""
    return simulate(
        n=2,
        duration=duration,
        configs=[tcp6.TCPConfig(), tcp6.TCPConfig(congestion="newreno")],
        names=["cubic", "newreno"],
    )


def rtt_unfairness(
    duration: float = 30.0, congestion: str = "cubic", buffer_rtt: float = 0.080
) -> Run:
    """Two flows of the same algorithm, 20 ms and 80 ms RTT; the bottleneck queue
    is one BDP of a ``buffer_rtt`` path (default: the 80 ms one)."""
    config = tcp6.TCPConfig(congestion=congestion)  # type: ignore[arg-type]
    deep = int(RATE * buffer_rtt / 8 / MSS_PACKET)
    return simulate(
        n=2,
        rtt=[0.020, 0.080],
        duration=duration,
        configs=[config, config],
        names=[f"{congestion} 20 ms", f"{congestion} 80 ms"],
        queue=lambda: DropTail(packets=deep),
    )


def bufferbloat(duration: float = 30.0, aqm: str = "droptail", n: int = 1) -> Run:
    """``n`` flows through a 10-BDP queue: ``aqm`` is ``"droptail"`` (10 BDP of
    drop-tail), ``"codel"`` (CoDel, the same 10-BDP packet limit) or ``"codel-ecn"``
    (CoDel marking, ECN on at both ends; needs :func:`has_ecn`)."""
    limit = 10 * BDP_PACKETS
    config = tcp6.TCPConfig()
    if aqm == "droptail":

        def queue() -> Queue:
            return DropTail(packets=limit)
    elif aqm == "codel":

        def queue() -> Queue:
            return CoDel(limit=limit, ecn=False)
    elif aqm == "codel-ecn":
        config = tcp6.TCPConfig(ecn=True)  # type: ignore[call-arg]

        def queue() -> Queue:
            return CoDel(limit=limit, ecn=True)
    else:
        raise ValueError(aqm)
    return simulate(
        n=n,
        duration=duration,
        queue=queue,
        configs=[config] * n,
        receiver_config=config,
        starts=[i * 1.0 for i in range(n)],
    )


def hystart(duration: float = 10.0, hystart_on: bool = True, buffer_bdp: int = 15) -> Run:
    """One flow on a deep-buffered path (a ``buffer_bdp``-BDP drop-tail queue),
    HyStart++ on or off, sampled every 10 ms.

    15 BDP (495 packets, 600 ms): HyStart++ enters Conservative Slow Start when the
    queue is about 130 packets deep, and CSS then grows cwnd by a quarter per round
    for 5 rounds (x3.05, RFC 9406's CSS_GROWTH_DIVISOR and CSS_ROUNDS), so the
    buffer must hold about 3 times the window CSS starts from; at 10 BDP the last
    CSS round overflows it."""
    config = tcp6.TCPConfig(hystart=hystart_on)
    return simulate(
        duration=duration,
        queue=lambda: DropTail(packets=buffer_bdp * BDP_PACKETS),
        configs=[config],
        sample=0.01,
    )


# -- printing ----------------------------------------------------------------------


def _mbit(bits: float) -> str:
    return f"{bits / 1e6:6.2f} Mbit/s"


def report(names: set[str] | None, duration: float) -> None:
    def want(name: str) -> bool:
        return names is None or name in names

    warm = 5.0
    if want("utilisation"):
        run = utilisation(duration)
        print(f"utilisation: 1 CUBIC flow, 10 Mbit/s, 40 ms, 1-BDP ({BDP_PACKETS} pkt) drop-tail")
        print(
            f"  link utilisation {warm:.0f}-{duration:.0f} s: "
            f"{run.utilisation(warm, duration) * 100:.1f} %, goodput "
            f"{_mbit(run.goodput(0, warm, duration))}, queue drops {run.queue_drops():.0f}"
        )
    if want("fairness"):
        run = fairness(max(duration, 26.0))
        end = run.duration
        start = end - 20.0
        g = [run.goodput(i, start, end) for i in range(4)]
        print("fairness: 4 CUBIC flows starting 2 s apart, 1-BDP drop-tail")
        print(
            f"  Jain's index {start:.0f}-{end:.0f} s: {run.jain(start, end):.4f}; goodputs "
            + ", ".join(_mbit(x).strip() for x in g)
        )
    if want("cubic-reno"):
        run = cubic_vs_reno(duration)
        s = run.shares(warm, duration)
        print("cubic-reno: CUBIC beside NewReno, 40 ms each, 1-BDP drop-tail")
        print(f"  shares {warm:.0f}-{duration:.0f} s: CUBIC {s[0]:.3f}, NewReno {s[1]:.3f}")
    if want("rtt"):
        for buffer_rtt in (0.080, 0.020):
            packets = int(RATE * buffer_rtt / 8 / MSS_PACKET)
            print(
                f"rtt: 20 ms and 80 ms base RTT, drop-tail of {packets} pkt"
                f" (1 BDP at {buffer_rtt * 1e3:.0f} ms)"
            )
            for cc in ("cubic", "newreno"):
                run = rtt_unfairness(duration, cc, buffer_rtt)
                s = run.shares(warm, duration)
                r0, r1 = run.srtt(0, warm, duration), run.srtt(1, warm, duration)
                ratio = r1 / r0
                print(
                    f"  {cc:7} shares {warm:.0f}-{duration:.0f} s: 20 ms {s[0]:.3f},"
                    f" 80 ms {s[1]:.3f}: ratio {s[0] / s[1]:.2f}; mean srtt"
                    f" {r0 * 1e3:.0f} / {r1 * 1e3:.0f} ms: 1/RTT predicts {ratio:.2f},"
                    f" 1/RTT^2 {ratio**2:.2f}"
                )
    if want("bufferbloat"):
        kinds = ["droptail", "codel"] + (["codel-ecn"] if has_ecn() else [])
        print(f"bufferbloat: 1 CUBIC flow, 10-BDP ({10 * BDP_PACKETS} pkt) queue")
        for kind in kinds:
            run = bufferbloat(duration, kind)
            print(
                f"  {kind:9}: queueing delay {run.queue_delay(warm, duration) * 1e3:6.1f} ms"
                f" mean {warm:.0f}-{duration:.0f} s, goodput "
                f"{_mbit(run.goodput(0, warm, duration))}, drops {run.queue_drops():.0f},"
                f" marks {run.queue_marks():.0f}"
            )
        if not has_ecn():
            print("  codel-ecn: skipped (TCPConfig has no ecn field)")
    if want("hystart"):
        print("hystart: 1 CUBIC flow, 40 ms, deep drop-tail buffers, slow-start exit")
        for on, bdps in ((True, 15), (False, 15), (True, 10), (False, 10)):
            run = hystart(5.0, on, bdps)
            exit_ = run.slow_start_exit(0)
            loss = run.first_retransmit(0)
            when = f"at {exit_.t:.2f} s" if exit_ else "never"
            first = f"at {loss.t:.2f} s" if loss else "none"
            print(
                f"  {bdps}-BDP HyStart++ {'on ' if on else 'off'}: ssthresh set {when}"
                f" (cwnd {_info(exit_, 'cwnd')}), first retransmission {first},"
                f" queue drops {run.queue_drops():.0f}"
            )
    if want("speed"):
        run = fairness(duration)
        sent = run.bottleneck["sent_bytes"]
        print("speed: dumbbell with 4 CUBIC flows (8 stacks), 10 Mbit/s")
        for clock, spent in (("wall", run.wall), ("CPU", run.cpu)):
            print(
                f"  {duration:.0f} simulated s in {spent:.1f} {clock} s:"
                f" {duration / spent:.2f} simulated s per {clock} s,"
                f" {sent / spent / 1e6:.2f} simulated MB per {clock} s"
                f" ({sent / 1500 / spent:.0f} full-size packets per {clock} s on the bottleneck)"
            )


def _info(s: Sample | None, field: str) -> Any:
    if s is None or s.infos[0] is None:
        return None
    return getattr(s.infos[0], field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="virtual seconds")
    parser.add_argument("--only", nargs="*", help="experiments to run (default: all)")
    args = parser.parse_args()
    report(set(args.only) if args.only else None, args.duration)


if __name__ == "__main__":
    main()
