"""Internet checksum speed: trio_tcp6.wire.checksum vs a naive 16-bit word loop.

Run: ``python bench/checksum_bench.py``. Prints µs per call (best of several
timeit repeats) for a 1440-byte segment and a 64 KiB buffer, and the speedup.
"""

from __future__ import annotations

import os
import timeit

from trio_tcp6.wire.checksum import checksum


def naive_checksum(data: bytes) -> int:
    """RFC 1071 word by word, as a reference."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def best_us(func: object, data: bytes, number: int, repeat: int = 7) -> float:
    timer = timeit.Timer(lambda: func(data))  # type: ignore[operator]
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    print(f"{'size':>8} {'trio_tcp6 µs':>13} {'naive µs':>10} {'speedup':>8}")
    for size, number in ((1440, 2000), (65536, 100)):
        data = os.urandom(size)
        assert checksum(data) == naive_checksum(data)
        fast = best_us(checksum, data, number)
        slow = best_us(naive_checksum, data, max(1, number // 20))
        print(f"{size:>8} {fast:>13.2f} {slow:>10.1f} {slow / fast:>7.0f}x")


if __name__ == "__main__":
    main()
