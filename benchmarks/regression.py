"""Regression record: the outputs a refactor must not change, recorded on a fresh store and compared to the digit.

    HF_HUB_OFFLINE=1 python -m benchmarks.regression record OUT_DIR     # fresh store inside OUT_DIR
    python -m benchmarks.regression compare BEFORE_DIR AFTER_DIR         # exit status 1 on any difference

`record` runs, each in a fresh store (`OUT_DIR/store`) with the same seeds:
  1. `python -m core demo`: the demo built, encoded and its first model trained; `python -m core models list`
     lists it, and `first_model.json` keeps, from the saved model's own files, its best epoch, its validation
     metric (NDCG@20) and loss at every epoch and the SHA-256 of its weights;
  2. `python -m core explain-check`;
  3. `python -m benchmarks.retrieval --catalog demo` (JSON with --out);
  4. `python -m benchmarks.quality --catalog lfm2k --mask train --models fusion-gated --seeds 0` (JSON with --out),
     its fusion short tune limited to one trial (`--budget 0.001`), since a tune's trial count under a time budget
     depends on the machine's load, not on the code.

Each command's output is kept as it printed; `compare` drops what measures the machine rather than the code
(durations, dates, run ids, the store's folder) and compares every remaining line and every JSON number exactly.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "demo": ["-m", "core", "demo"],
    "models": ["-m", "core", "models", "list"],
    "explain_check": ["-m", "core", "explain-check"],
    "retrieval": ["-m", "benchmarks.retrieval", "--catalog", "demo", "--out", "{out}/retrieval.json"],
    "quality": ["-m", "benchmarks.quality", "--catalog", "lfm2k", "--mask", "train", "--models", "fusion-gated",
                "--seeds", "0", "--budget", "0.001", "--out", "{out}/quality.json"],
}

# What measures the machine, not the code: durations, clock times, dates, ids drawn from the clock.
_VOLATILE = [
    re.compile(r"\d+(?:[.,]\d+)*\s*(?:ms|s|sec|seconds|min|minutes|h)\b"),
    re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?"),
    re.compile(r"\b\d{8}-\d{6}(?:-[0-9a-f]+)?\b"),
    re.compile(r"[\d.]+\s*(?:items|rows|users|clips|interactions)/s\b"),
]
_VOLATILE_KEYS = re.compile(r"(time|seconds|elapsed|created|date|duration|_s$|run_id|path|dir|store|wall|"
                            r"per_sec|throughput|started|finished|latency)", re.I)


def record(out: Path, only: list[str] | None = None) -> None:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PRISM_DATA_DIR=str(out / "store"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    for name, args in COMMANDS.items():
        if only and name not in only:
            continue
        argv = [sys.executable, *[a.format(out=out) for a in args]]
        t0 = time.perf_counter()
        print(f"[regression] {name}: {' '.join(argv[1:])}", flush=True)
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        (out / f"{name}.txt").write_text(proc.stdout)
        (out / f"{name}.err").write_text(proc.stderr)
        print(f"[regression] {name}: exit {proc.returncode} in {time.perf_counter() - t0:.0f} s", flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed (exit {proc.returncode}); its output is in {out}")
        if name == "demo":
            model = first_model(out)
            print(f"[regression] first model: best epoch {model['best_epoch']}, validation {model['metric']} "
                  f"{model['valid_at_best']}", flush=True)


def _timed_column(line: str, end: int | None) -> str:
    """The token of a right-aligned table column ending at `end` (a column of seconds) replaced by <T>."""
    if end is None or len(line) < end or not line[end - 1].isdigit():
        return line
    start = end
    while start > 0 and not line[start - 1].isspace():
        start -= 1
    return line[:start] + "<T>" + line[end:]


def first_model(out: Path) -> dict[str, Any]:
    """The demo's first model as saved (models/<id>/config.json and its weights): best epoch, validation metric
    and loss per epoch, weights' SHA-256. Read from the files, so records of different code compare."""
    import hashlib

    folders = sorted((out / "store" / "models").glob("*/config.json"))
    if len(folders) != 1:
        raise SystemExit(f"expected one saved model in {out / 'store' / 'models'}, found {len(folders)}")
    saved = json.loads(folders[0].read_text())
    history = saved.get("history") or []
    best = saved.get("best_epoch")
    at_best = next((h for h in history if h.get("epoch") == best), {})
    weights = folders[0].parent / "model.safetensors"
    record = {"best_epoch": best, "metric": at_best.get("metric_name"), "valid_at_best": at_best.get("valid_metric"),
              "epochs": [{"epoch": h.get("epoch"), "loss": h.get("loss"), "valid": h.get("valid_metric")}
                         for h in history],
              "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else None}
    (out / "first_model.json").write_text(json.dumps(record, indent=1))
    return record


def _normalise(text: str, folder: Path) -> list[str]:
    text = text.replace(str(folder.resolve()), "<OUT>")
    lines = []
    seconds_column: int | None = None  # a table's "fit s" column, found in its header
    for line in text.splitlines():
        if " fit s" in line:
            seconds_column = line.index(" fit s") + len(" fit s")
        elif not line.strip():
            seconds_column = None
        else:
            line = _timed_column(line, seconds_column)
        line = re.sub(r"\s+", " ", _volatile(line)).strip()  # column widths follow the widest cell, a time
        if line:
            lines.append(line)
    return lines


def _volatile(text: str) -> str:
    for pattern in _VOLATILE:
        text = pattern.sub("<T>", text)
    return text


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            if _VOLATILE_KEYS.search(str(key)):
                continue
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        flat = {}
        for i, inner in enumerate(value):
            flat.update(_flatten(inner, f"{prefix}[{i}]"))
        return flat
    return {prefix: _volatile(value) if isinstance(value, str) else value}


def compare(before: Path, after: Path) -> int:
    differences = 0
    compared = 0
    for name in COMMANDS:
        a, b = before / f"{name}.txt", after / f"{name}.txt"
        if not a.exists() or not b.exists():
            print(f"{name}: missing in {'before' if not a.exists() else 'after'}")
            differences += 1
            continue
        la, lb = _normalise(a.read_text(), before), _normalise(b.read_text(), after)
        compared += 1
        if la == lb:
            print(f"{name}: {len(la)} lines equal")
        else:
            differences += 1
            print(f"{name}: output differs")
            for i, (x, y) in enumerate(zip(la, lb)):
                if x != y:
                    print(f"  line {i + 1}:\n    before: {x}\n    after:  {y}")
            if len(la) != len(lb):
                print(f"  {len(la)} lines before, {len(lb)} after")
    for name in ("first_model", "retrieval", "quality"):
        a, b = before / f"{name}.json", after / f"{name}.json"
        if not a.exists() or not b.exists():
            continue
        fa, fb = _flatten(json.loads(a.read_text())), _flatten(json.loads(b.read_text()))
        keys = sorted(set(fa) | set(fb))
        bad = [k for k in keys if fa.get(k, "<absent>") != fb.get(k, "<absent>")]
        compared += 1
        numbers = sum(isinstance(fa.get(k), (int, float)) for k in keys)
        if bad:
            differences += 1
            print(f"{name}.json: {len(bad)} of {len(keys)} fields differ")
            for k in bad[:40]:
                print(f"  {k}: {fa.get(k, '<absent>')!r} -> {fb.get(k, '<absent>')!r}")
        else:
            print(f"{name}.json: {len(keys)} fields equal ({numbers} numbers)")
    print(f"{compared} outputs compared, {differences} differ")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    rec = sub.add_parser("record", help="run every command on a fresh store and keep its output")
    rec.add_argument("out", type=Path)
    rec.add_argument("--only", default=None, help="comma-separated subset of: " + ", ".join(COMMANDS))
    fp = sub.add_parser("first-model", help="write first_model.json of a record made before it was kept")
    fp.add_argument("out", type=Path)
    cmp_ = sub.add_parser("compare", help="compare two records; exit 1 on any difference")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.verb == "record":
        if (args.out / "store").exists():
            raise SystemExit(f"{args.out / 'store'} exists; record into a new folder so the store starts fresh")
        record(args.out, args.only.split(",") if args.only else None)
        return 0
    if args.verb == "first-model":
        print(json.dumps({k: v for k, v in first_model(args.out).items() if k != "epochs"}))
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    raise SystemExit(main())
