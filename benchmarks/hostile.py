"""Hostile-input ledger: every case of tests/hostile against the importers, media loaders, store, command line
(out-of-range options, read-only store, full disk), value bounds in core and tour files.

    python -m benchmarks.hostile            # the fast cases
    python -m benchmarks.hostile --all      # with the slow ones (a 400k-entry zip, an hour-long FLAC)

Prints one line per case, then the ledger: inputs tried / clear errors / handled as intended / unclear
errors / crashes / hangs / store changed / data lost. Targets: 0 crashes, 0 hangs, 0 unintended store
changes, 0 data lost. The cases that need a running studio (HTML injection, markdown in titles and tour
files, server paths, overwrite from the browser) are in the browser test (`pytest -m browser`).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="include the slow cases")
    parser.add_argument("-k", help="only cases whose name contains this")
    args = parser.parse_args(argv)

    from tests.hostile.cases import CASES
    from tests.hostile.runner import run_case

    cases = [c for c in CASES if (args.all or not c.slow) and (not args.k or args.k in c.name)]
    outcomes = []
    print(f"{'case':<52} {'target':<13} {'outcome':<14} {'s':>6}", flush=True)
    for case in cases:
        o = run_case(case)
        outcomes.append(o)
        flags = (" STORE CHANGED" if o.store_changed else "") + (" DATA LOST" if o.data_lost else "")
        print(f"{o.case:<52} {o.target:<13} {o.status:<14} {o.seconds:>6.2f}{flags}", flush=True)
        if not o.good:
            print("    " + o.detail.replace("\n", "\n    ")[:2000], flush=True)
    status = Counter(o.status for o in outcomes)
    ledger = {
        "inputs tried": len(outcomes),
        "clear errors": status["clear error"],
        "handled as intended": status["accepted"],
        "unclear errors": status["unclear error"],
        "not refused / wrong": status["not refused"] + status["wrong"],
        "crashes": status["crash"],
        "hangs": status["hang"],
        "store changed": sum(o.store_changed for o in outcomes),
        "data lost": sum(o.data_lost for o in outcomes),
    }
    print("\nledger (targets: 0 crashes, 0 hangs, 0 store changed, 0 data lost)")
    for key, value in ledger.items():
        print(f"  {key:<22} {value:>4}")
    bad = ledger["crashes"] + ledger["hangs"] + ledger["store changed"] + ledger["data lost"]
    return 1 if bad or ledger["unclear errors"] or ledger["not refused / wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
