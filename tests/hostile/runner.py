"""Run one hostile case under a time limit and say what happened: the unit of the suite and the ledger."""
from __future__ import annotations

import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from core.errors import PrismError
from tests.hostile.cases import Case, kept_intact, kept_store, snapshot

HANG_SECONDS = 120  # a case still running after this is a hang


class Hang(Exception):
    """A case ran past its time limit."""


@dataclass
class Outcome:
    """What one case did."""

    case: str
    target: str
    status: str  # "clear error", "accepted", "unclear error", "not refused", "wrong", "crash", "hang"
    detail: str
    seconds: float
    store_changed: bool  # a refused input changed the store
    data_lost: bool  # the catalog the store held before is gone or changed

    @property
    def good(self) -> bool:
        return self.status in ("clear error", "accepted") and not self.store_changed and not self.data_lost


def run_case(case: Case, tmp: Path | None = None, limit: float = HANG_SECONDS) -> Outcome:
    """Run `case` against a fresh store holding one catalog; classify the result."""
    with tempfile.TemporaryDirectory(prefix=f"prism-hostile-{case.name[:30]}-") as scratch:
        base = Path(tmp or scratch)
        work = base / "work"
        work.mkdir(parents=True, exist_ok=True)
        store = kept_store(base / "store")
        before = snapshot(store)
        status, detail = "", ""
        use_alarm = hasattr(signal, "SIGALRM")
        if use_alarm:
            def on_alarm(signum, frame):
                raise Hang(f"still running after {limit:.0f} s")
            try:
                old = signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, limit)
            except ValueError:  # not in the main thread: no time limit
                use_alarm = False
        t0 = time.perf_counter()
        try:
            case.run(work, store)
        except Hang as e:
            status, detail = "hang", str(e)
        except PrismError as e:
            message = str(e)
            missing = [f for f in case.fragments if f not in message]
            if case.expect == "ok":
                status, detail = "wrong", f"refused: {message}"
            elif missing:
                status, detail = "unclear error", f"message lacks {missing}: {message}"
            else:
                status, detail = "clear error", message
        except AssertionError as e:
            status, detail = "wrong", f"{e}\n{traceback.format_exc(limit=3)}"
        except Exception as e:  # anything else escaping an importer is a crash
            status, detail = "crash", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
        else:
            status = "accepted" if case.expect == "ok" else "not refused"
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        seconds = time.perf_counter() - t0
        changed = case.expect == "error" and snapshot(store) != before
        return Outcome(case.name, case.target, status, detail, seconds, changed, not kept_intact(store))
