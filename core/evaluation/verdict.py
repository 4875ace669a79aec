"""The verdict: the fusion model against the strongest baseline, chosen on validation, with every paired
interval Holm-corrected over the baselines compared (the family), so "leads" holds for the family as a whole.

Each comparison is the paired bootstrap over the users both models were evaluated on (each user's value
averaged over the model seeds), fusion minus baseline, the same resamples for every pair; its two-sided
p-value is the bootstrap's (twice the smaller share of resampled differences on either side of 0, with the
add-one rule), and its interval is the percentile interval at the level core.evaluation.holm.holm_alphas
gives it. The outcome is "leads" when the strongest baseline's corrected interval lies above 0, "trails"
when below, else "ties": a tie is a result, printed as such.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.evaluation.bootstrap import bootstrap_means
from core.evaluation.holm import holm_adjust, holm_alphas

ALPHA = 0.05


def _paired(a: dict[str, list], b: dict[str, list], metric: str) -> np.ndarray:
    """Per-user differences a − b of `metric` over the users both blocks hold (NaN where either is)."""
    pos_b = {u: i for i, u in enumerate(b["users"])}
    pairs = [(i, pos_b[u]) for i, u in enumerate(a["users"]) if u in pos_b]
    if not pairs:
        return np.empty(0)
    ia, ib = (np.array(x, dtype=np.int64) for x in zip(*pairs))
    va = np.array([np.nan if v is None else v for v in a[metric]], dtype=np.float64)[ia]
    vb = np.array([np.nan if v is None else v for v in b[metric]], dtype=np.float64)[ib]
    return va - vb


def bootstrap_p(resampled: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the mean difference is 0" from resampled mean differences."""
    r = np.asarray(resampled, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return 1.0
    below, above = (np.sum(r <= 0) + 1) / (r.size + 1), (np.sum(r >= 0) + 1) / (r.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def verdict(fusion: str, per_user: dict[str, dict[str, list]], valid: dict[str, float | None],
            baselines: list[str], metric: str, *, chosen_by: str = "valid recall@20", n_bootstrap: int = 1000,
            seed: int = 0, alpha: float = ALPHA) -> dict[str, Any] | None:
    """The fusion model `fusion` against every baseline in `baselines` (those with per-user values of `metric`),
    Holm-corrected; the strongest is the baseline with the best `valid` figure. None without a baseline."""
    family = [b for b in baselines if b in per_user and metric in per_user[b] and valid.get(b) is not None]
    if fusion not in per_user or metric not in per_user[fusion] or not family:
        return None
    strongest = max(family, key=lambda b: float(valid[b]))  # type: ignore[arg-type]
    rows: dict[str, dict[str, Any]] = {}
    samples: dict[str, np.ndarray] = {}
    for b in family:
        diff = _paired(per_user[fusion], per_user[b], metric)
        keep = diff[np.isfinite(diff)]
        samples[b] = bootstrap_means(keep, n_bootstrap, seed)[:, 0] if keep.size else np.full(n_bootstrap, np.nan)
        rows[b] = {"difference": float(keep.mean()) if keep.size else float("nan"), "users": int(keep.size),
                   "p": bootstrap_p(samples[b])}
    p = [rows[b]["p"] for b in family]
    adjusted, levels = holm_adjust(p), holm_alphas(p, alpha)
    for b, p_holm, level in zip(family, adjusted, levels):
        lo, hi = np.nanpercentile(samples[b], [50 * level, 100 - 50 * level]) if np.isfinite(samples[b]).any() \
            else (float("nan"), float("nan"))
        rows[b].update(p_holm=float(p_holm), level=float(1 - level), ci=[float(lo), float(hi)])
    ci = rows[strongest]["ci"]
    outcome = "leads" if ci[0] > 0 else "trails" if ci[1] < 0 else "ties"
    return {"fusion": fusion, "strongest": strongest, "chosen_by": chosen_by, "metric": metric,
            "valid": {"fusion": valid.get(fusion), "strongest": valid.get(strongest)},
            "outcome": outcome, "difference": rows[strongest]["difference"], "ci": ci,
            "p_holm": rows[strongest]["p_holm"], "family": len(family), "alpha": alpha, "comparisons": rows,
            "method": f"paired bootstrap over users ({n_bootstrap} resamples), Holm-corrected over {len(family)} "
                      f"baseline(s) at family-wise {1 - alpha:.0%}"}


def sentence(v: dict[str, Any]) -> str:
    """One line that says the verdict and every number it rests on."""
    what = {"leads": "leads", "ties": "ties", "trails": "trails"}[v["outcome"]]
    lo, hi = v["ci"]
    return (f"{v['fusion']} {what} the strongest baseline, {v['strongest']} (chosen on {v['chosen_by']}): test "
            f"{v['metric']} {v['difference']:+.4f}, Holm-corrected CI [{lo:+.4f}, {hi:+.4f}] over {v['family']} "
            f"baseline(s) (adjusted p {v['p_holm']:.3g})")


def verdict_card(judged: dict[str, dict[str, Any]], metric: str, *, chosen_on: str = "recall@20",
                 n_bootstrap: int = 1000, seed: int = 0) -> dict[str, str] | None:
    """The verdict of one evaluation as a protocol card ({label: text}): the fusion model with the best
    validation figure against the strongest baseline. `judged` maps a model name to {"kind", "valid" (its
    validation `chosen_on`), "per_user" (its run record's per-user block)}; None without a fusion model and a
    baseline, or without the metric's per-user values."""
    valid = {n: j.get("valid") for n, j in judged.items()}
    fusion = [n for n, j in judged.items() if j.get("kind") == "fusion" and valid[n] is not None]
    baselines = [n for n, j in judged.items() if j.get("kind") == "baseline"]
    if not fusion or not baselines:
        return None
    lead = max(fusion, key=lambda n: float(valid[n]))  # type: ignore[arg-type]
    v = verdict(lead, {n: j["per_user"] for n, j in judged.items()}, valid, baselines, metric,
                chosen_by=f"valid {chosen_on}", n_bootstrap=n_bootstrap, seed=seed)
    if v is None:
        return None
    lo, hi = v["ci"]
    return {"verdict": sentence(v),
            "strongest baseline": f"{v['strongest']}: valid {chosen_on} {float(valid[v['strongest']]):.4f}, the best "
                                  f"of {v['family']} baseline(s) on validation",
            "fusion model": f"{lead}: valid {chosen_on} {float(valid[lead]):.4f}",
            f"test {metric}, fusion − baseline": f"{v['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]",
            "comparisons": v["method"] + "; a tie (interval containing 0) is a result"}
