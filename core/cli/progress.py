"""Progress on the terminal: one tqdm bar on stderr, or plain lines when stderr is a log file."""
from __future__ import annotations

import sys
import time
from typing import Any


class TqdmProgress:
    """A `progress(done, total, message)` callback drawing one tqdm bar on stderr; when stderr is not a
    terminal (a log file) it writes a plain line instead, at most every LOG_EVERY_S seconds and at the end."""

    LOG_EVERY_S = 10.0

    def __init__(self, desc: str, disable: bool | None = None) -> None:
        self.desc = desc
        self.disable = disable
        self.bar: Any = None
        self._plain = disable is None and not sys.stderr.isatty()
        self._last_line = -float("inf")

    def __call__(self, done: int, total: int, message: str = "") -> None:
        from tqdm import tqdm

        if self._plain:
            now = time.monotonic()
            if done >= total or now - self._last_line >= self.LOG_EVERY_S:
                self._last_line = now
                print(f"{self.desc}: {done}/{total}" + (f" · {message}" if message else ""), file=sys.stderr,
                      flush=True)
            return
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit="step", disable=self.disable, leave=True,
                            dynamic_ncols=True)
        if self.bar.total != total:  # a new stage with its own total
            self.bar.reset(total=total)
        self.bar.n = done
        if message:
            self.bar.set_postfix_str(message[:60], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
