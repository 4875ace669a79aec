"""Throughput progress: items per second and ETA on every update, and a plain line every few seconds in the
log (and on stderr when that is not a terminal), so long runs stay readable in log files too."""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def format_eta(seconds: float) -> str:
    """H:MM:SS of a duration (or '?' when unknown)."""
    if not seconds == seconds or seconds < 0 or seconds == float("inf"):  # NaN or unknown
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RateProgress:
    """Wraps a progress(done, total, message) callback: appends items/s and ETA to each message and emits a
    plain line at most every `every` seconds to the log and, when `echo` is set, to `stream`."""

    def __init__(self, inner: Progress | None = None, what: str = "items", every: float = 5.0,
                 echo: bool | None = None, stream: TextIO | None = None) -> None:
        self.inner = inner
        self.what = what
        self.every = every
        self.stream = stream or sys.stderr
        self.echo = (not self.stream.isatty()) if echo is None else echo
        self.start: float | None = None
        self.first_done = 0
        self.last_line = 0.0
        self.last_total = -1

    def rate(self, done: int, now: float) -> float:
        """Items per second since the first update of this stage."""
        elapsed = now - (self.start or now)
        return (done - self.first_done) / elapsed if elapsed > 0 else 0.0

    def __call__(self, done: int, total: int, message: str = "") -> None:
        now = time.perf_counter()
        if self.start is None or total != self.last_total:  # a new stage restarts the clock
            self.start, self.first_done, self.last_total = now, done, total
        rate = self.rate(done, now)
        eta = (total - done) / rate if rate > 0 else float("nan")
        text = f"{rate:,.1f} {self.what}/s · ETA {format_eta(eta)}" if done > self.first_done else ""
        full = f"{message} · {text}" if message and text else (message or text)
        if self.inner is not None:
            self.inner(done, total, full)
        if now - self.last_line >= self.every or done >= total:
            self.last_line = now
            line = f"{done:,}/{total:,} {self.what}" + (f" · {full}" if full else "")
            log.info(line)
            if self.echo:
                print(line, file=self.stream, flush=True)
