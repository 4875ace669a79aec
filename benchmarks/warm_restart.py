"""A restarted studio's first visitor, before and after `python -m core warm`.

Takes a store where the demo is already built, encoded and trained (e.g. the one `benchmarks.first_start --keep
DIR` leaves) and copies it twice. On the first copy it starts the studio in a fresh process (a restarted
server: nothing in memory) and times what a first visitor does: open Home, run the tour's text query on
Recommend, ask "Why?" for the top item on Explain, open the Catalog's map (PCA) and switch it to UMAP. On the
second copy it runs `python -m core warm` first and then does the same. Each visit runs the app through
Streamlit's AppTest in its own process, with the background warm-up of a real server left on.

    HF_HUB_OFFLINE=1 python -m benchmarks.first_start --keep /tmp/prism-built
    HF_HUB_OFFLINE=1 python -m benchmarks.warm_restart --store /tmp/prism-built --think 5,30
                                                          # targets: query ≤ 2 s, Why ≤ 3 s (idle machine)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.tour.schema import tour_sentence  # noqa: E402

TARGETS = {"first query": 2.0, "first Why?": 3.0}  # seconds after a restart, idle 2-core machine
QUERY = tour_sentence()  # the demo tour's first sentence, as Home offers it

# one visitor, in a fresh process: prints one JSON line of stage -> seconds
VISIT = r'''
import json, sys, time
from streamlit.testing.v1 import AppTest

app, query, think = sys.argv[1], sys.argv[2], float(sys.argv[3])
times = {}

def timed(name, fn):
    t0 = time.perf_counter()
    fn()
    times[name] = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"{name}: {[e.value for e in at.exception]}")

at = AppTest.from_file(app, default_timeout=900)
timed("open Home", at.run)
time.sleep(think)  # the visitor reads the page before typing
at.switch_page("pages/recommend.py")
timed("open Recommend", at.run)
at.text_area(key="q_text").input(query)
timed("first query", at.button(key="q_submit").click().run)
top = at.session_state["result"].items[0].item_id
at.session_state["explain_target"] = {"item_id": top, "mode": "query", "catalog": "demo"}
at.switch_page("pages/explain.py")
timed("first Why?", at.run)
at.switch_page("pages/catalog.py")
timed("Catalog with its PCA map", at.run)
timed("UMAP map", at.radio(key="map_method").set_value("UMAP").run)
print(json.dumps(times))
'''


def visit(store: Path, think: float) -> dict[str, float]:
    """Time one first visitor of the studio over `store` in a fresh process."""
    env = {**os.environ, "PRISM_DATA_DIR": str(store), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PRISM_NO_WARMUP", None)
    out = subprocess.run([sys.executable, "-c", VISIT, str(REPO / "app.py"), QUERY, str(think)], cwd=REPO,
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True,
                        help="a store with the demo built, encoded and trained (it is copied, never changed)")
    parser.add_argument("--think", default="5,30",
                        help="seconds between the Home page and the first query, one visit after warm for each "
                             "(comma-separated; the visit before warm takes the first; default 5,30)")
    args = parser.parse_args()
    if not (args.store / "prism.sqlite").is_file():
        parser.error(f"{args.store} holds no store; build one with python -m benchmarks.first_start --keep DIR")

    thinks = [float(t) for t in args.think.split(",") if t.strip()]
    work = Path(tempfile.mkdtemp(prefix="prism-warm-restart-"))
    try:
        cold, warm = work / "cold", work / "warm"
        for copy in (cold, warm):
            shutil.copytree(args.store, copy, ignore=shutil.ignore_patterns("maps"))  # maps: not warmed yet
        print("restart without warm …", flush=True)
        before = visit(cold, thinks[0])
        print("python -m core warm …", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core", "--data-dir", str(warm), "warm"], cwd=REPO, check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True)
        warm_s = time.perf_counter() - t0
        after = {}
        for think in thinks:
            print(f"restart after warm, {think:g} s before the query …", flush=True)
            after[think] = visit(warm, think)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nA restarted studio's first visitor; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1 / 5 / 15 min); `core warm` took {warm_s:.1f} s. Columns: seconds, with the pause "
          "between Home and the first query in brackets.\n")
    head = f"{'stage':<28}{f'not warmed ({thinks[0]:g})':>18}" + "".join(f"{f'warm ({t:g})':>14}" for t in thinks)
    print(head + "  target")
    for name in before:
        target = TARGETS.get(name)
        best = after[thinks[-1]][name]
        mark = "" if target is None else f"≤ {target:g} s {'ok' if best <= target else 'MISSED'}"
        print(f"{name:<28}{before[name]:>18.1f}" + "".join(f"{after[t][name]:>14.1f}" for t in thinks) + f"  {mark}")
    out = REPO / "benchmarks" / "results" / "warm_restart.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"think_s": thinks, "warm_s": warm_s, "load_average": load, "not_warmed": before,
                               "after_warm": {str(t): v for t, v in after.items()}}, indent=1))

if __name__ == "__main__":
    main()
