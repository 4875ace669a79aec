"""Read stored evaluation runs as plot-ready DataFrames, protocol cards and downloads (commands: core.cli.evaluate)."""
from __future__ import annotations

import io
import json
import math
import re
import time
from typing import Any

import pandas as pd

from core.errors import DamagedFileError
from core.store.database import Store
from core.store.run_records import RECORD_BLOCKS, parse_record  # noqa: F401  (part of this module's read API)

# columns of runs_table beyond the identity ones, in display order (NaN where a run lacks one)
MAIN_METRICS: tuple[str, ...] = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "map@10",
                                 "hit_rate@10", "auc", "coverage@10", "novelty@10")
_METRIC_AT_K = re.compile(r"^(?P<metric>.+)@(?P<k>\d+)$")


def damaged_runs(store: Store, catalog: str | None = None) -> list[tuple[str, str]]:
    """(run id, message naming it and the fix) for every stored run record that cannot be read."""
    damaged: list[tuple[str, str]] = []
    _records(store, catalog, damaged=damaged)
    return damaged


def _records(store: Store, catalog: str | None = None, run_ids: list[str] | None = None,
             damaged: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Stored run records, newest first, filtered by catalog or picked by id (in the order given). A damaged
    record is left out (and appended to `damaged` as (id, message)): one bad run never hides the others."""
    with store.transaction() as con:
        if run_ids is not None:
            rows = {r[0]: r[1] for r in con.execute(
                f"SELECT id, record FROM runs WHERE id IN ({','.join('?' * len(run_ids))})", list(run_ids))}
            found = [(i, rows[i]) for i in run_ids if i in rows]
        else:
            q = ("SELECT id, record FROM runs" + (" WHERE catalog = ?" if catalog else "")
                 + " ORDER BY created_at DESC")
            found = con.execute(q, (catalog,) if catalog else ()).fetchall()
    records = []
    for run_id, text in found:
        try:
            records.append(parse_record(run_id, text))
        except DamagedFileError as e:
            if damaged is not None:
                damaged.append((run_id, str(e)))
    return records


def _num(value: Any) -> float:
    """A float, NaN for None/missing."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


MASK_TEXT = {"train": "train items only (MMRec/RecBole: validation items stay candidates)",
             "train+valid": "train and valid items (validation items are not candidates)",
             "none": "nothing (held-out items ranked among themselves)"}


def mask_of(record: dict[str, Any]) -> str:
    """The run's masking rule ('train', 'train+valid', 'none'); older runs without one are read from their
    list of masked splits."""
    p = record.get("protocol", {})
    if p.get("mask"):
        return str(p["mask"])
    masked = list(p.get("masked") or [])
    return "+".join(masked) if masked else "none"


def _encoders_text(encoders: dict[str, str] | None) -> str:
    """'text=minilm, audio=vggish' (empty when none)."""
    return ", ".join(f"{f}={e}" for f, e in (encoders or {}).items())


def runs_table(store: Store, catalog: str | None = None) -> pd.DataFrame:
    """One row per stored run, newest first: identity, protocol, MAIN_METRICS, cost and encoders."""
    rows = []
    for r in _records(store, catalog):
        proto, metrics, model = r.get("protocol", {}), r.get("metrics", {}), r.get("model", {})
        rows.append({
            "id": r.get("id"), "name": r.get("name"), "kind": model.get("kind", "baseline"),
            "catalog": r.get("catalog"), "created_at": _num(r.get("created_at")),
            "split": proto.get("split"), "target": proto.get("target"), "mask": mask_of(r),
            **{m: _num(metrics.get(m)) for m in MAIN_METRICS},
            "users_evaluated": proto.get("users_evaluated"), "wall_time_s": _num(r.get("wall_time_s")),
            "encoders": _encoders_text(r.get("encoders")),
            "data_hash": str(r.get("dataset", {}).get("content_hash", ""))[:12],
        })
    columns = ["id", "name", "kind", "catalog", "created_at", "split", "target", "mask", *MAIN_METRICS,
               "users_evaluated", "wall_time_s", "encoders", "data_hash"]
    return pd.DataFrame(rows, columns=columns)


def metrics_long(store: Store, run_ids: list[str]) -> pd.DataFrame:
    """One row per (run, metric@K): run_id, model, metric, k, value, lo, hi (CI NaN where none).

    Only metrics with a K are listed (AUC has none; it is a column of runs_table).
    """
    rows = []
    for r in _records(store, run_ids=list(run_ids)):
        ci = r.get("ci", {})
        for key, value in r.get("metrics", {}).items():
            match = _METRIC_AT_K.match(key)
            if match is None:
                continue
            lo, hi = (ci.get(key) or [None, None])[:2]
            rows.append({"run_id": r["id"], "model": r.get("name"), "metric": match["metric"],
                         "k": int(match["k"]), "value": _num(value), "lo": _num(lo), "hi": _num(hi)})
    frame = pd.DataFrame(rows, columns=["run_id", "model", "metric", "k", "value", "lo", "hi"])
    return frame.astype({"k": "int64"})


def training_curves(store: Store, run_ids: list[str]) -> pd.DataFrame:
    """One row per (run, epoch): run_id, model, epoch, loss, valid_metric (runs without training are absent)."""
    rows = []
    for r in _records(store, run_ids=list(run_ids)):
        for i, h in enumerate(r.get("training") or []):
            if not isinstance(h, dict):
                continue
            rows.append({"run_id": r["id"], "model": r.get("name"), "epoch": int(h.get("epoch", i + 1)),
                         "loss": _num(h.get("loss")), "valid_metric": _num(h.get("valid_metric"))})
    return pd.DataFrame(rows, columns=["run_id", "model", "epoch", "loss", "valid_metric"])


def paired_comparison(store: Store, run_a: str, run_b: str, n_bootstrap: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Per metric kept per user (recall@K, ndcg@K, auc): the two runs' means over their common users and
    the difference B − A with its paired bootstrap 95% CI (the same users resampled for both runs), beside
    whether the runs' own CIs overlap. Columns: name ("ndcg@10", "auc"), metric, k (NA for AUC), A, B,
    difference, lo, hi, users, separate_cis_overlap.

    Raises ComparisonError when the runs were made on different data, splits, targets or masking rules, or
    when one was stored without per-user values.
    """
    import numpy as np

    from core.errors import ComparisonError
    from core.evaluation.bootstrap import paired_difference_ci
    from core.limits import check_option

    n_bootstrap = int(check_option("bootstrap", n_bootstrap, "bootstrap resamples"))

    records = {r["id"]: r for r in _records(store, run_ids=[run_a, run_b])}
    for rid in (run_a, run_b):
        if rid not in records:
            raise ComparisonError(f"no run with id {rid!r}; list them with `python -m core runs list`")
        if not (records[rid].get("per_user") or {}).get("users"):
            raise ComparisonError(f"run {rid} ({records[rid].get('name')}) was stored without per-user values; "
                                  "evaluate that model again to compare it user by user")
    a, b = records[run_a], records[run_b]
    checks = {"data": lambda r: r.get("dataset", {}).get("content_hash"),
              "split": lambda r: (r.get("protocol", {}).get("split"), r.get("protocol", {}).get("split_seed")),
              "target": lambda r: r.get("protocol", {}).get("target"),
              "masking rule": mask_of}
    for what, get in checks.items():
        if get(a) != get(b):
            raise ComparisonError(f"runs {run_a} and {run_b} differ in {what} ({get(a)} vs {get(b)}); a paired "
                                  "comparison needs both evaluated on the same users and held-out items")
    users_a, users_b = a["per_user"]["users"], b["per_user"]["users"]
    common = sorted(set(users_a) & set(users_b))
    pos_a = {u: i for i, u in enumerate(users_a)}
    pos_b = {u: i for i, u in enumerate(users_b)}
    rows_a = np.array([pos_a[u] for u in common], dtype=np.int64)
    rows_b = np.array([pos_b[u] for u in common], dtype=np.int64)
    rows = []
    for key in a["per_user"]:
        if key == "users" or key not in b["per_user"]:
            continue
        va = np.array(a["per_user"][key], dtype=np.float64)[rows_a]  # None (non-finite) → NaN
        vb = np.array(b["per_user"][key], dtype=np.float64)[rows_b]
        d = paired_difference_ci(vb, va, n_bootstrap=n_bootstrap, seed=seed)
        ci_a, ci_b = a.get("ci", {}).get(key), b.get("ci", {}).get(key)
        overlap = None
        if ci_a and ci_b and None not in (*ci_a, *ci_b):
            overlap = bool(ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1])
        match = _METRIC_AT_K.match(key)
        with np.errstate(invalid="ignore"):
            rows.append({"name": key, "metric": match["metric"] if match else key,
                         "k": int(match["k"]) if match else None,
                         "A": float(np.nanmean(va)) if np.isfinite(va).any() else math.nan,
                         "B": float(np.nanmean(vb)) if np.isfinite(vb).any() else math.nan,
                         "difference": float(d.mean[0]), "lo": float(d.lo[0]), "hi": float(d.hi[0]),
                         "users": int((np.isfinite(va) & np.isfinite(vb)).sum()), "separate_cis_overlap": overlap})
    frame = pd.DataFrame(rows, columns=["name", "metric", "k", "A", "B", "difference", "lo", "hi", "users",
                                        "separate_cis_overlap"])
    return frame.astype({"k": "Int64"}).sort_values(["metric", "k"], na_position="last").reset_index(drop=True)


def protocol_card(record: dict[str, Any]) -> dict[str, str]:
    """Human-readable protocol of one run: split, target, ranking, masking, K, seeds, data and encoders."""
    p, d = record.get("protocol", {}), record.get("dataset", {})
    seeds = f"split {p.get('split_seed', p.get('seed', '?'))}, bootstrap {p.get('seed', '?')}"
    created = record.get("created_at")
    card = {
        "model": f"{record.get('name', '?')} ({record.get('model', {}).get('kind', '?')})",
        "split": str(p.get("split", "?")),
        "target": str(p.get("target", "?")),
        "ranking": "full (all items)" if p.get("ranking") == "full" else str(p.get("ranking", "?")),
        "mask": MASK_TEXT.get(mask_of(record), mask_of(record)),
        "masked": ", ".join(p.get("masked") or []) or "nothing",
        "K": ", ".join(str(k) for k in p.get("ks", [])),
        "seeds": seeds,
        "CI": f"95% percentile bootstrap over users, {p.get('n_bootstrap', '?')} resamples",
        "users": f"{p.get('users_evaluated', '?')} evaluated of {d.get('n_users', '?')}",
        "data": f"{d.get('name', record.get('catalog', '?'))} · {str(d.get('content_hash', ''))[:10]} · "
                f"{d.get('n_items', '?')} items · {d.get('n_interactions', '?')} interactions",
        "encoders": _encoders_text(record.get("encoders")) or "none (ids only)",
    }
    if created is not None:
        card["created"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(created)))
    return card


def run_to_csv(record: dict[str, Any]) -> str:
    """The run's metrics as CSV: run_id, model, metric, k, value, ci_low, ci_high (k empty for AUC)."""
    ci = record.get("ci", {})
    rows = []
    for key, value in record.get("metrics", {}).items():
        match = _METRIC_AT_K.match(key)
        lo, hi = (ci.get(key) or [None, None])[:2]
        rows.append({"run_id": record.get("id", ""), "model": record.get("name"),
                     "metric": match["metric"] if match else key, "k": int(match["k"]) if match else None,
                     "value": _num(value), "ci_low": _num(lo), "ci_high": _num(hi)})
    frame = pd.DataFrame(rows, columns=["run_id", "model", "metric", "k", "value", "ci_low", "ci_high"])
    frame["k"] = frame["k"].astype("Int64")
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def _json_safe(value: Any) -> Any:
    """NaN/inf → None so the output is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_to_json(record: dict[str, Any]) -> str:
    """The whole run record as indented, strict JSON."""
    return json.dumps(_json_safe(record), indent=2, allow_nan=False, default=str)
