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
"items like your upload" (core.similarity) are chosen together on the validation half (grids
core.prior.PRIOR_GRID × core.similarity.SIMILARITY_GRID × LIKE_GRID, criterion: mean over query modalities
of (precision@10 + self@10) / 2) and every figure printed is measured on the other (test) half at them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

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
                  overrides: dict[str, Any] | None = None, store: Any = None) -> tuple[Any, Any]:
    """(the fusion model a first start trains on `catalog`, with `overrides`; its InteractionData).

    The configuration is the one the studio's first model takes (core.tuning.quick_fusion_config): the
    catalog's tuned configuration when one is stored for these interactions, else the "content" starting
    point of the search; never one looked up by the catalog's name."""
    from core.evaluation.splits import build_interaction_data
    from core.models.fusion import FusionRecommender
    from core.store import Store
    from core.tuning import quick_fusion_config

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

    return FusionRecommender(config).fit(data, progress=report), data


def run(catalog_name: str, label: str | None = None, share: float = 0.2, seed: int = 0, k: int = 10,
        epochs: int | None = None, store: Any = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole benchmark on a stored (or the demo) catalog; the JSON document as a dict."""
    from benchmarks.quality import load_catalog
    from core.evaluation.retrieval import choose_weights, evaluate_retrieval, held_out_rows, split_halves
    from core.prior import PRIOR_GRID
    from core.similarity import LIKE_GRID, NEIGHBOURS, SIMILARITY_GRID
    from core.recommend import RecommendService
    from core.store import Store

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
    model, data = train_without(train_catalog, embeddings, epochs, seed, overrides, store)
    service = RecommendService(train_catalog, embeddings, model, encoders={}, data=data)
    say("choosing the prior, similarity and like weights on the validation half")
    (chosen, lam, mu), criterion = choose_weights(service, labels, valid, PRIOR_GRID, SIMILARITY_GRID, LIKE_GRID,
                                                  k, progress=lambda d, t, m: say(f"  {m}: {d}/{t}"))
    say(f"chosen prior weight {chosen}, similarity weight {lam}, like weight {mu}; measuring the test half")
    queries = evaluate_retrieval(service, labels, test, k, prior_weight=chosen, similarity_weight=lam,
                                 like_weight=mu, progress=lambda d, t, m: say(f"  {m} queries done ({d}/{t})"))
    on_valid = evaluate_retrieval(service, labels, valid, k, prior_weight=chosen, restricted=False,
                                  similarity_weight=lam, like_weight=mu)
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
                       "carrying the modality",
            "weight_selection": "prior, similarity and like weights chosen together on the validation half of the "
                                "held-out items (per category) by the mean over query modalities of "
                                f"(precision@{k} + self@{k}) / 2; the smaller weights on ties; figures reported "
                                "on the test half",
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
        "validation_criterion": {f"{w},{s},{m}": v for (w, s, m), v in criterion.items()},
        "queries": queries,
        "validation": {m: {"fusion": r["fusion"], "raw_knn": r["raw_knn"]} for m, r in on_valid.items()},
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as plain text tables: one row per query modality, then the restricted rankings."""
    k = result["protocol"]["k"]
    p, s = f"precision@{k}", f"self@{k}"
    prot = result["protocol"]
    lines = [f"Cross-modal retrieval on {prot['catalog']!r}: {prot['test_items']} held-out test items "
             f"({prot['label']}, {prot['categories']} categories); chosen on the validation half: popularity prior "
             f"{result['prior']['chosen']}, similarity to the upload {result['similarity']['chosen']}, items like "
             f"your upload {result['like']['chosen']}",
             "",
             f"{'query':<7} {'n':>4} {'chance':>7} {'fusion ' + p:>18} {'fusion ' + s:>13} {'raw kNN ' + p:>19} "
             f"{'chance (mod.)':>13} {'raw kNN ' + s:>14}"]
    for m, r in result["queries"].items():
        lines.append(f"{m:<7} {r['queries']:>4} {r['chance']:>7.3f} {r['fusion'][p]:>18.3f} {r['fusion'][s]:>13.3f} "
                     f"{r['raw_knn'][p]:>19.3f} {r['chance_with_modality']:>13.3f} {r['raw_knn'][s]:>14.3f}")
        for f, v in (r.get("raw_knn_fields") or {}).items():
            lines.append(f"{'':<7} {'':>4} {'':>7} {'':>18} {'':>13} {v[p]:>19.3f}  raw field {f}")
    lines += ["", f"fusion, the joint space alone (no prior, no similarity terms) / with the learned item bias "
              f"instead (content queries before): {p} / {s}"]
    for m, r in result["queries"].items():
        if "fusion_learned_bias" in r:
            lines.append(f"{m:<7} {r['fusion_joint_space'][p]:.3f} / {r['fusion_joint_space'][s]:.3f}     "
                         f"{r['fusion_learned_bias'][p]:.3f} / {r['fusion_learned_bias'][s]:.3f}")
    lines += ["", f"restricted (single-modality what-if): {p} / {s} / chance / share of top {k} lacking the modality"]
    for m, r in result["queries"].items():
        cells = [f"{rm}: {v[p]:.3f} / {v[s]:.3f} / {v['chance']:.3f} / {v['lacking_in_top']:.2f}"
                 for rm, v in (r.get("restricted") or {}).items()]
        lines.append(f"{m:<7} " + "   ".join(cells))
    crit = result["validation_criterion"]
    best = sorted(crit.items(), key=lambda kv: -kv[1])[:5]
    lines += ["", "validation criterion, best five (prior, similarity, like): "
              + ", ".join(f"({w}): {v:.3f}" for w, v in best)
              + f"; all three 0: {crit.get('0.0,0.0,0.0', float('nan')):.3f}"]
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
