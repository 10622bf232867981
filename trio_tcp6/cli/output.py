"""What the command line prints: a progress display for a transfer (a bar with rate and
ETA on a terminal, plain periodic lines otherwise: a log, a pipe, CI) and aligned
tables of counters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Progress", "counter_table", "format_bytes", "format_duration", "format_table"]

_BAR_WIDTH = 30


def format_bytes(n: float) -> str:
    """``1.5 MiB``, ``512 KiB``, ``80 B``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:03``; ``--:--`` when unknown."""
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return "--:--"
    whole = int(seconds + 0.5)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}:{secs:02d}"


class Progress:
    """Show ``done`` of ``total`` bytes as :meth:`update` is called.

    ``tty=True`` redraws one line in place (``\\r``) at most every ``tty_interval``
    seconds; ``tty=False`` writes a full line every ``line_interval`` seconds. The
    times are whatever clock the caller's ``elapsed`` comes from (the demo passes trio's,
    so under a virtual clock the rate and ETA are simulated). :meth:`finish` draws the
    final state and ends the line.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        tty: bool,
        prefix: str = "   ",
        tty_interval: float = 0.1,
        line_interval: float = 1.0,
    ) -> None:
        self.total = total
        self.stream = stream
        self.tty = tty
        self.prefix = prefix
        self.interval = tty_interval if tty else line_interval
        self._next = 0.0
        self.lines = 0

    def render(self, done: int, elapsed: float) -> str:
        """The progress text for ``done`` bytes after ``elapsed`` seconds."""
        total = self.total
        fraction = min(done / total, 1.0) if total else 1.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else math.inf
        figures = (
            f"{format_bytes(done)} / {format_bytes(total)} {fraction:4.0%}  "
            f"{rate * 8 / 1e6:6.1f} Mbit/s  ETA {format_duration(eta)}"
        )
        if not self.tty:
            return f"{self.prefix}progress: {figures}"
        filled = int(fraction * _BAR_WIDTH)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        return f"{self.prefix}[{bar}] {figures}"

    def update(self, done: int, elapsed: float) -> None:
        """Draw if the interval since the last drawing has passed."""
        if elapsed < self._next:
            return
        self._next = elapsed + self.interval
        self._draw(self.render(done, elapsed), final=False)

    def finish(self, done: int, elapsed: float) -> None:
        """Draw the final state and end the line."""
        self._draw(self.render(done, elapsed), final=True)

    def _draw(self, text: str, *, final: bool) -> None:
        if self.tty:
            # \x1b[K clears what a longer previous line left behind.
            self.stream.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.lines += 1


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = ""
) -> str:
    """An aligned text table: the first column left-aligned, the others (numbers)
    right-aligned, a rule under the headers."""
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def counter_table(columns: dict[str, dict[str, int]], indent: str = "") -> str:
    """Counters of several sources side by side (``{"client": stats, ...}``): one row
    per counter that is non-zero in at least one source, in name order."""
    names = sorted({k for stats in columns.values() for k, v in stats.items() if v})
    rows = [[name, *(stats.get(name, 0) for stats in columns.values())] for name in names]
    return format_table(["counter", *columns], rows, indent)
