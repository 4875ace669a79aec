"""Cross-modal retrieval benchmark: held-out items queried with their own text, image and audio, as a new
user would upload them. Prints a table per query modality and writes JSON.

    HF_HUB_OFFLINE=1 python -m benchmarks.retrieval --catalog demo --out retrieval-demo.json
    HF_HUB_OFFLINE=1 python -m benchmarks.retrieval --catalog NAME --label category

Protocol (details in core.evaluation.retrieval): a seeded 20% of the items of every category (`--label`,
by default the metadata column `genre`, else `category`) is held out; a fusion model with the catalog's
preset is trained with their interactions removed, so they stay in the catalog as cold items scored from
content alone. Each held-out item is a query of each modality it carries (its own stored vectors, through
the recommend service); its results are all catalog items. The held-out items are split in two halves per
category: the popularity prior's weight, the weight λ of the similarity to the upload and the weight μ of
"items like your upload" (core.serving.similarity) are chosen together on the validation half (grids
core.serving.prior.PRIOR_GRID × core.serving.similarity.SIMILARITY_GRID × LIKE_GRID, criterion: mean over query modalities
of (precision@10 + self@1 + MRR@10) / 3, where self@1 is the query item itself ranked first and MRR@10 the
mean of 1 / its own rank) and every figure printed is measured on the other (test) half at them. Beside
the raw encoders' kNN over a modality's fields joined, every single field is reported; the fusion-versus-raw
line compares with the best of them (chosen on the validation half) with a paired bootstrap CI. The table
also says which fusion configuration was trained (the stored tuned one, or the untuned starting point).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LABEL_COLUMNS = ("genre", "category")  # metadata columns tried in order when --label is not given


def say(message: str) -> None:
    """A plain progress line that shows in a log file as well as on a terminal."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def item_labels(catalog: Any, column: str | None) -> tuple[list[Any], str]:
    """(category per item, None where absent; the metadata column used); SystemExit naming the problem."""
    columns = [column] if column else list(LABEL_COLUMNS)
    for c in columns:
        labels = [(item.metadata or {}).get(c) for item in catalog.items]
        labels = [None if v is None or (isinstance(v, float) and v != v) or str(v) == "" else str(v) for v in labels]
        if sum(v is not None for v in labels) >= 2:
            return labels, c
    raise SystemExit(f"catalog {catalog.name!r} has no item metadata column {' or '.join(map(repr, columns))}; "
                     "import it with a category column (any extra manifest column is kept as metadata) or "
                     "name one with --label")


def without_interactions_of(catalog: Any, rows: Any) -> Any:
    """A copy of the catalog whose interactions on the items `rows` are dropped (the items stay)."""
    held = {catalog.items[int(r)].id for r in rows}
    inter = catalog.interactions
    return dataclasses.replace(catalog, interactions=inter[~inter["item_id"].astype(str).isin(held)]
                               .reset_index(drop=True))


def train_without(catalog: Any, embeddings: Any, epochs: int | None, seed: int,
                  overrides: dict[str, Any] | None = None, store: Any = None) -> tuple[Any, Any, str]:
    """(the fusion model a first start trains on `catalog`, with `overrides`; its InteractionData; which
    configuration that was, in words).

    The configuration is the one the studio's first model takes (core.tuning.quick_fusion_config): the
    catalog's tuned configuration when one is stored for these interactions, else the "content" starting
    point of the search; never one looked up by the catalog's name."""
    from core.data.splits import build_interaction_data
    from core.models.fusion.recommender import FusionRecommender
    from core.store.database import Store
    from core.tuning import quick_fusion_config
    from core.tuning.baselines import member_search

    data = build_interaction_data(catalog, embeddings, split="auto", seed=seed)
    base, source = quick_fusion_config(store or Store(), catalog, data)
    say(f"fusion configuration: {source}")
    config = dataclasses.replace(base, seed=seed, **(overrides or {}))
    if epochs is not None:
        config = dataclasses.replace(config, epochs=min(config.epochs, epochs))

    def report(r: Any) -> None:
        if r.epoch == 1 or r.epoch % 10 == 0:
            say(f"training epoch {r.epoch}/{r.epochs}: loss {r.loss:.4f}"
                + (f", valid {r.metric_name} {r.valid_metric:.4f}" if r.valid_metric is not None else ""))

    return FusionRecommender(config, member_search=member_search).fit(data, progress=report), data, source


def run(catalog_name: str, label: str | None = None, share: float = 0.2, seed: int = 0, k: int = 10,
        epochs: int | None = None, store: Any = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole benchmark on a stored (or the demo) catalog; the JSON document as a dict."""
    from benchmarks.quality import load_catalog
    from core.evaluation.retrieval import choose_weights, evaluate_retrieval, held_out_rows, split_halves
    from core.evaluation.retrieval import CRITERION
    from core.serving.prior import DEFAULT_PRIOR_WEIGHT, PRIOR_GRID
    from core.serving.similarity import (CLOSEST_GRID, DEFAULT_CLOSEST_WEIGHT, DEFAULT_LIKE_WEIGHT,
                                 DEFAULT_SIMILARITY_WEIGHT, LIKE_GRID, NEIGHBOURS, SIMILARITY_GRID)
    from core.serving.service import RecommendService
    from core.store.database import Store

    start = time.perf_counter()
    store = store or Store()
    say(f"loading catalog {catalog_name!r} and its embeddings")
    catalog, embeddings = load_catalog(catalog_name, store)
    labels, column = item_labels(catalog, label)
    held = held_out_rows(labels, share=share, seed=seed)
    valid, test = split_halves(held, labels, seed=seed)
    say(f"{len(held)} of {len(catalog.items)} items held out ({share:.0%} per {column}); "
        f"{len(valid)} to choose the prior weight on, {len(test)} to report on")
    train_catalog = without_interactions_of(catalog, held)
    say(f"training the {catalog_name} preset without the held-out items' {len(catalog.interactions) - len(train_catalog.interactions)} interactions")
    model, data, source = train_without(train_catalog, embeddings, epochs, seed, overrides, store)
    service = RecommendService(train_catalog, embeddings, model, encoders={}, data=data)
    say("choosing the prior, similarity and like weights on the validation half")
    details: dict[tuple[float, float, float, float], dict[str, dict[str, float]]] = {}
    (chosen, lam, mu, kappa), criterion = choose_weights(
        service, labels, valid, PRIOR_GRID, SIMILARITY_GRID, LIKE_GRID, k,
        progress=lambda d, t, m: say(f"  {m}: {d}/{t}"), details=details, closest_grid=CLOSEST_GRID)
    say(f"chosen prior weight {chosen}, similarity weight {lam}, like weight {mu}, closest-match weight {kappa}; "
        "measuring the test half")
    queries = evaluate_retrieval(service, labels, test, k, prior_weight=chosen, similarity_weight=lam,
                                 like_weight=mu, closest_weight=kappa,
                                 progress=lambda d, t, m: say(f"  {m} queries done ({d}/{t})"))
    on_valid = evaluate_retrieval(service, labels, valid, k, prior_weight=chosen, restricted=False,
                                  similarity_weight=lam, like_weight=mu, closest_weight=kappa)
    shipped = (DEFAULT_PRIOR_WEIGHT, DEFAULT_SIMILARITY_WEIGHT, DEFAULT_LIKE_WEIGHT, DEFAULT_CLOSEST_WEIGHT)
    at_defaults = evaluate_retrieval(service, labels, test, k, prior_weight=shipped[0], restricted=False,
                                     similarity_weight=shipped[1], like_weight=shipped[2],
                                     closest_weight=shipped[3])
    versus = {m: fusion_versus_raw(queries[m], on_valid[m], k, seed) for m in queries if queries[m]["queries"]}
    # the weights the earlier criterion ((precision@k + self@k) / 2, no closest-match term) chose, for comparison
    earlier = [t for t in details if t[3] == 0.0]
    before = max(sorted(earlier), key=lambda t: (round(float(np.mean(
        [(v[f"precision@{k}"] + v[f"self@{k}"]) / 2 for v in details[t].values()])), 12), -t[2], -t[1], -t[0]))
    at_before = evaluate_retrieval(service, labels, test, k, prior_weight=before[0], restricted=False,
                                   similarity_weight=before[1], like_weight=before[2])
    return {
        "protocol": {
            "catalog": catalog.name, "items": len(catalog.items), "label": column,
            "categories": len({x for x in labels if x is not None}), "held_out": len(held),
            "held_out_share_per_category": share, "seed": seed, "k": k,
            "held_out_items": "cold: their interactions removed before training; they stay in the catalog",
            "queries": "each held-out item's own stored vectors of one modality, as an upload (not a known listener)",
            "candidates": "every catalog item; the query item counts for self@k and is left out of precision@k",
            "restricted": "the single-modality what-if {r: 1}: items carrying r first",
            "raw_knn": "cosine over the modality's raw encoder fields joined (each L2-normalised), among the items "
                       "carrying the modality; and over each single field",
            "fusion_versus_raw": f"against the best raw kNN (single field or joined) chosen on the validation half "
                                 f"by precision@{k}; paired bootstrap 95% CI over the test queries",
            "exact_match": "self@1: the query item itself ranked first; MRR: mean of 1 / its own rank within the "
                           f"top {k} (0 beyond)",
            "weight_selection": "prior, similarity, like and closest-match weights chosen together on the validation half of the "
                                "held-out items (per category) by the " + CRITERION.format(k=k)
                                + "; the smaller weights on ties; figures reported on the test half",
            "fusion_configuration": source,
            "like_neighbours": NEIGHBOURS,
            "validation_items": len(valid), "test_items": len(test),
            "model": {"name": model.name, "config": dataclasses.asdict(model.config), "best_epoch": model.best_epoch,
                      "overrides": dict(overrides or {})},
            "encoders": dict(embeddings.encoder_ids), "split": data.split_name,
            "seconds": round(time.perf_counter() - start, 1),
        },
        "prior": {"grid": list(PRIOR_GRID), "chosen": chosen},
        "similarity": {"grid": list(SIMILARITY_GRID), "chosen": lam},
        "like": {"grid": list(LIKE_GRID), "chosen": mu},
        "closest": {"grid": list(CLOSEST_GRID), "chosen": kappa},
        "at_grid_top": [name for name, v, grid in (("prior", chosen, PRIOR_GRID), ("similarity", lam, SIMILARITY_GRID),
                                                   ("like", mu, LIKE_GRID), ("closest", kappa, CLOSEST_GRID))
                        if v == max(grid) and v > 0],
        "validation_criterion": {",".join(map(str, t)): v for t, v in criterion.items()},
        "validation_figures": {",".join(map(str, t)): v for t, v in details.items()},
        "queries": queries,
        "validation": {m: {"fusion": r["fusion"], "raw_knn": r["raw_knn"], "raw_knn_fields": r["raw_knn_fields"]}
                       for m, r in on_valid.items()},
        "fusion_versus_raw": versus,
        "previous_criterion": {"criterion": f"mean over query modalities of (precision@{k} + self@{k}) / 2",
                               "weights": {"prior": before[0], "similarity": before[1], "like": before[2]},
                               "queries": {m: r["fusion"] for m, r in at_before.items()}},
        "at_core_defaults": {"weights": {"prior": shipped[0], "similarity": shipped[1], "like": shipped[2],
                                         "closest": shipped[3]},
                             "queries": {m: r["fusion"] for m, r in at_defaults.items()}},
    }


def fusion_versus_raw(test: dict[str, Any], valid: dict[str, Any], k: int, seed: int = 0) -> dict[str, Any]:
    """The fusion model against the best raw encoder kNN of one query modality: the best among each single
    field and the fields joined, chosen on the validation half by precision@k, then compared on the test
    half's queries with a paired bootstrap 95% CI of the per-query precision@k difference."""
    from core.evaluation.bootstrap import paired_difference_ci

    p = f"precision@{k}"
    candidates = {"joined": valid["raw_knn"][p], **{f: v[p] for f, v in valid["raw_knn_fields"].items()}}
    best = max(candidates, key=lambda c: (candidates[c], c == "joined"))
    raw = test["per_query"]["raw_knn" if best == "joined" else f"raw_knn:{best}"][p]
    fusion = test["per_query"]["fusion"][p]
    ci = paired_difference_ci(np.asarray(fusion), np.asarray(raw), n_bootstrap=2000, seed=seed)
    lo, hi = float(ci.lo[0]), float(ci.hi[0])
    verdict = "fusion ahead" if lo > 0 else "fusion behind" if hi < 0 else "no distinguishable difference"
    return {"best_raw": best, "chosen_on": f"validation half, {p}", "valid_candidates": candidates,
            "fusion": float(np.mean(fusion)), "raw": float(np.mean(raw)), "difference": float(ci.mean[0]),
            "lo": lo, "hi": hi, "queries": len(fusion), "verdict": verdict}


def format_table(result: dict[str, Any]) -> str:
    """The result as plain text tables: one row per query modality (fusion, the raw kNN joined and each raw
    field), the fusion-versus-best-raw verdict, then the restricted rankings."""
    k = result["protocol"]["k"]
    p, s, mrr = f"precision@{k}", f"self@{k}", f"mrr@{k}"
    prot = result["protocol"]
    lines = [f"Cross-modal retrieval on {prot['catalog']!r}: {prot['test_items']} held-out test items "
             f"({prot['label']}, {prot['categories']} categories); chosen on the validation half by the "
             f"{prot['weight_selection'].split(' by the ')[-1].split(';')[0]}: popularity prior "
             f"{result['prior']['chosen']}, similarity to the upload {result['similarity']['chosen']}, items like "
             f"your upload {result['like']['chosen']}, closest match {result.get('closest', {}).get('chosen', 0.0)}",
             f"fusion configuration: {prot.get('fusion_configuration', '?')}",
             *([f"at the top of its grid (extend the grid and run again): {', '.join(result['at_grid_top'])}"]
               if result.get("at_grid_top") else []),
             "",
             f"{'query':<7} {'ranker':<22} {'n':>4} {p:>13} {'self@1':>7} {'MRR@' + str(k):>7} {s:>8} {'chance':>7}"]

    def row(m: str, name: str, n: Any, v: dict[str, float], chance: float | None) -> str:
        return (f"{m:<7} {name:<22} {n!s:>4} {v[p]:>13.3f} {v['self@1']:>7.3f} {v[mrr]:>7.3f} {v[s]:>8.3f} "
                + (f"{chance:>7.3f}" if chance is not None else f"{'':>7}"))

    for m, r in result["queries"].items():
        lines.append(row(m, "fusion", r["queries"], r["fusion"], r["chance"]))
        lines.append(row("", "raw kNN, fields joined", "", r["raw_knn"], r["chance_with_modality"]))
        for f, v in (r.get("raw_knn_fields") or {}).items():
            lines.append(row("", f"raw kNN, {f}"[:22], "", v, None))
    versus = result.get("fusion_versus_raw") or {}
    if versus:
        lines += ["", f"fusion against the best raw kNN (chosen on the validation half by {p}), test half, paired "
                      "bootstrap 95% CI over the queries:"]
        for m, v in versus.items():
            lines.append(f"{m:<7} best raw: {v['best_raw']:<12} fusion {v['fusion']:.3f} vs {v['raw']:.3f}: "
                         f"{v['difference']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}] over {v['queries']} queries: "
                         f"{v['verdict']}")
    earlier = result.get("previous_criterion")
    if earlier:
        w = earlier["weights"]
        lines += ["", f"chosen by the earlier criterion, {earlier['criterion']} (prior {w['prior']}, similarity "
                      f"{w['similarity']}, like {w['like']}), test half: {p} / self@1 / MRR@{k}"]
        for m, v in earlier["queries"].items():
            lines.append(f"{m:<7} {v[p]:.3f} / {v['self@1']:.3f} / {v[mrr]:.3f}")
    defaults = result.get("at_core_defaults")
    if defaults:
        w = defaults["weights"]
        lines += ["", f"at the weights core ships (prior {w['prior']}, similarity {w['similarity']}, like "
                      f"{w['like']}, closest match {w.get('closest', 0.0)}), test half: {p} / self@1 / MRR@{k}"]
        for m, v in defaults["queries"].items():
            lines.append(f"{m:<7} {v[p]:.3f} / {v['self@1']:.3f} / {v[mrr]:.3f}")
    lines += ["", f"fusion, the joint space alone (no prior, no similarity terms) / with the learned item bias "
              f"instead (content queries before): {p} / self@1"]
    for m, r in result["queries"].items():
        if "fusion_learned_bias" in r:
            lines.append(f"{m:<7} {r['fusion_joint_space'][p]:.3f} / {r['fusion_joint_space']['self@1']:.3f}     "
                         f"{r['fusion_learned_bias'][p]:.3f} / {r['fusion_learned_bias']['self@1']:.3f}")
    lines += ["", f"restricted (single-modality what-if): {p} / self@1 / chance / share of top {k} lacking the "
                  "modality"]
    for m, r in result["queries"].items():
        cells = [f"{rm}: {v[p]:.3f} / {v['self@1']:.3f} / {v['chance']:.3f} / {v['lacking_in_top']:.2f}"
                 for rm, v in (r.get("restricted") or {}).items()]
        lines.append(f"{m:<7} " + "   ".join(cells))
    crit = result["validation_criterion"]
    best = sorted(crit.items(), key=lambda kv: -kv[1])[:5]
    lines += ["", "validation criterion, best five (prior, similarity, like, closest match): "
              + ", ".join(f"({w}): {v:.3f}" for w, v in best)
              + f"; all four 0: {crit.get('0.0,0.0,0.0,0.0', float('nan')):.3f}"]
    return "\n".join(lines)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """{"align_weight": 0.3, ...} from ["align_weight=0.3", ...] (values read as JSON when they parse)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: write it as KEY=VALUE, e.g. --set align_weight=0.3")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default="demo", help="demo, or the name of a stored catalog")
    parser.add_argument("--label", default=None, help="item metadata column with the category "
                                                      f"(default: the first of {', '.join(LABEL_COLUMNS)})")
    parser.add_argument("--share", type=float, default=0.2, help="share of each category held out")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw, the halves and training")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="cap the preset's training epochs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the catalog's fusion preset (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = run(args.catalog, label=args.label, share=args.share, seed=args.seed, k=args.k, epochs=args.epochs,
                 overrides=parse_overrides(args.set))
    print(format_table(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
