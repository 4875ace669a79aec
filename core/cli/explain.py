"""`python -m core explain-check`: explanations checked against the demo catalog's ground truth (core.explain.check).

`python -m core.cli.explain` runs the same check on the stored model only, without building or training anything.
"""
from __future__ import annotations

import argparse

from core.cli.command import Command
from core.cli.models import _load_catalog
from core.cli.progress import TqdmProgress
from core.errors import StoreError
from core.explain import check as explain_check_module
from core.explain.check import _catalog as demo_catalog  # the store's demo catalog, as run_check reads it
from core.explain.check import format_report, run_check
from core.serving.prior import DEFAULT_PRIOR_WEIGHT
from core.store.database import Store


def _add_explain_check(p: argparse.ArgumentParser) -> None:
    from core.limits import option_type

    p.add_argument("--max-listeners", type=option_type("max_listeners", "--max-listeners"), default=None,
                   help="check a seeded sample of listeners")
    p.add_argument("--k", type=option_type("results_k", "--k"), default=10,
                   help="recommendations explained per listener")
    p.add_argument("--shap", action="store_true", help="compute Shapley values with shap's explainer")
    p.add_argument("--prior-weight", type=float, default=None,
                   help="popularity prior weight of the new-user (content) queries (default: core.serving.prior's)")


def _run_explain_check(args: argparse.Namespace, store: Store) -> int:
    from core.workspace.prepare import ensure_model, prepare_embeddings

    catalog = _load_catalog(store, "demo")
    with TqdmProgress("embeddings of demo") as bar:
        embeddings = prepare_embeddings(store, catalog, progress=bar)
    model = ensure_model(store, catalog, embeddings)
    with TqdmProgress("explaining listeners") as bar:
        result = run_check(catalog, embeddings, model, max_listeners=args.max_listeners, k=args.k,
                           progress=bar, use_shap=args.shap,
                           **({} if args.prior_weight is None else {"prior_weight": args.prior_weight}))
    print(format_report(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m core.cli.explain`: the check on the stored demo catalog with its embeddings and active model
    (nothing is built or trained; a missing model says how to make one)."""
    from tqdm import tqdm

    from core.limits import option_type
    from core.workspace.prepare import load_active_model, load_embeddings

    parser = argparse.ArgumentParser(description=explain_check_module.__doc__.splitlines()[0])
    parser.add_argument("--max-listeners", type=option_type("max_listeners", "--max-listeners"), default=None,
                        help="check a seeded sample of listeners")
    parser.add_argument("--k", type=option_type("report_k", "--k"), default=10,
                        help="recommendations explained per listener")
    parser.add_argument("--shap", action="store_true", help="compute Shapley values with shap's explainer")
    parser.add_argument("--prior-weight", type=option_type("prior_weight", "--prior-weight"),
                        default=DEFAULT_PRIOR_WEIGHT,
                        help="popularity prior weight of the new-user (content) queries")
    args = parser.parse_args(argv)
    store = Store()
    catalog = demo_catalog(store)
    embeddings = load_embeddings(store, catalog)
    model = load_active_model(store, catalog, embeddings) if embeddings is not None else None
    if embeddings is None or model is None:
        raise StoreError(f"catalog {catalog.name!r} has no stored embeddings or active model in {store.root}; "
                         "start the app once (or `python -m core train`) to build them")
    with tqdm(unit="listener") as bar:
        def progress(done: int, total: int, _: str) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = run_check(catalog, embeddings, model, max_listeners=args.max_listeners, k=args.k,
                           progress=progress, use_shap=args.shap, prior_weight=args.prior_weight)
    print(format_report(result))
    return 0


COMMANDS: tuple[Command, ...] = (
    Command("explain-check", "check explanations against the demo catalog's ground truth", _add_explain_check,
            _run_explain_check),
)


if __name__ == "__main__":
    raise SystemExit(main())
