"""Packet Too Big staircase: forged valid reports stepping the path MTU down one
byte at a time (1499 to 1280, one every 10 ms) against a bulk sender with a 64 KiB
window over a 100 ms RTT. Figures: retransmissions the staircase caused, MSS
reductions applied and ignored, CPU per report (process time of ``set_path_mtu``).
"""

from __future__ import annotations

import time

from trio_tcp6.config import TCPConfig

from .ack_loop import EnginePair, Periodic


def staircase(steps: int) -> tuple[int, int, int, float, bool]:
    cfg = TCPConfig(send_buffer=65536, receive_buffer=65536)
    pair = EnginePair(cfg, b"p" * 3_000_000, delay=0.05)
    pair.run_until(1.0)
    mtus = iter(range(1499, 1499 - steps, -1))
    cpu = [0.0]

    def ptb(now: float) -> None:
        t0 = time.process_time()
        pair.a.set_path_mtu(next(mtus), now)
        cpu[0] += time.process_time() - t0

    pair.run_until(1.0 + steps * 0.01, Periodic(1.0, 0.01, ptb, count=steps))
    st = pair.stats[0]
    pair.run_until(30.0)
    done = bytes(pair.received) == pair.data
    return st["retransmits"], st["pmtu_reductions"], st["pmtu_ratelimited"], cpu[0] / steps, done


def run(quick: bool) -> list[tuple[str, str]]:
    """Figures for the PTB staircase (``quick``: 100 reports instead of 220)."""
    steps = 100 if quick else 220
    retrans, applied, ignored, cpu, done = staircase(steps)
    return [
        (f"PTB staircase ({steps} reports): retransmissions", str(retrans)),
        ("PTB staircase: MSS reductions applied / ignored", f"{applied} / {ignored}"),
        ("PTB staircase: CPU per report (incl. the resends)", f"{cpu * 1e6:.1f} us"),
        ("PTB staircase: transfer completed", str(done)),
    ]
