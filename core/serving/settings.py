"""The serving settings: which index a catalog gets, how approximate results are re-ranked exactly, and what
the recommend service checks and samples when it starts. One dataclass with commented defaults, saved as
JSON beside an approximate index when it is built and read back with it (an index saved before this file
existed has none: the defaults apply), and said in plain words on the protocol card of a ranking.

The approximate indexes' own knobs (graph degree, beam-width ladder, cells, heads) stay in their configs
(core.serving.index: HNSWConfig, IVFConfig); these are the service's.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"  # beside index.bin and index.json in a saved index's folder


@dataclass(frozen=True)
class ServingSettings:
    """The recommend service's and index choice's settings (defaults measured: see each comment)."""

    # -- which index -------------------------------------------------------------------------------------
    auto_exact_below: int = 50_000  # "auto" uses exact search below this many items: a (N, d) product is fast
    auto_ann: str = "ivf"  # the approximate index "auto" uses above that (benchmarks.scale, both parts: README)
    # -- what-if weights through an approximate index --------------------------------------------------
    # What-if queries through an approximate index are re-ranked exactly over this many of its candidates
    # (benchmarks.scale measures recall@10 against exact what-if scoring of every item). None: the count is
    # chosen when the index is built (tune_whatif_candidates) and saved with it; an int overrides that choice.
    whatif_candidates: int | None = None
    whatif_target_recall: float = 0.97  # recall@10 of sample what-if queries that the candidate count is chosen for
    whatif_max_share: float = 0.02  # ceiling on candidates as a share of the catalog; past it what-if is scored exactly
    whatif_min_candidates: int = 500  # the first rung of the candidate ladder (doubling from there)
    whatif_sample: int = 16  # sample queries (the index's own item vectors plus noise) × weight sets used to choose it
    whatif_sample_noise: float = 0.5  # that noise's norm relative to the item's
    # -- upload terms through an approximate index ---------------------------------------------------------
    # Upload queries add per-item terms the index does not hold (similarity to the upload, items like it). With
    # an approximate index they are re-ranked exactly, those terms added, over the index's top C candidates for
    # the model-space part. None: C is chosen when the index is built (tune_term_candidates) and saved with it;
    # an int overrides that choice (0: scored exactly over every item).
    term_candidates: int | None = None
    term_min_candidates: int = 250  # the first rung of the upload candidate ladder (doubling up to whatif_max_share)
    term_sample: int = 32  # sample uploads the count is chosen on: catalog items' own field vectors plus noise
    term_sample_noise: float = 0.25  # that noise's norm per field vector (unit rows: cosine ≈ 0.97, a re-encoded
    #   copy)
    history_candidates: int = 2000  # a known listener's collaborative term (core.models.collaborative) is
    #   re-ranked the same way over at least this many candidates: the earlier fixed count, as that term is not
    #   in the samples
    # -- the sample queries an approximate index tunes its search width on ------------------------------
    index_sample: int = 200  # sample queries per kind (listener, liked, similar items)
    index_sample_liked: int = 3  # liked items per "liked" sample query (one listener's training items)
    index_sample_seed: int = 0  # which listeners and items those samples are drawn from
    # -- checks and blocks when the service starts -----------------------------------------------------------
    linearity_tolerance: float = 1e-3  # relative error allowed between model scores and item_vectors @ q + bias
    linearity_sample: int = 512  # items the what-if formula is checked on when the service starts
    parts_chunk: int = 65_536  # items per block when single-modality parts of a large catalog are scored row-locally

    def __post_init__(self) -> None:
        problems = []
        for name in ("whatif_candidates", "term_candidates"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                problems.append(f"{name} must be None (chosen with the index) or an integer ≥ 0, not {value!r}")
        for name in ("auto_exact_below", "whatif_min_candidates", "whatif_sample", "term_min_candidates",
                     "term_sample", "history_candidates", "index_sample", "index_sample_liked", "linearity_sample",
                     "parts_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an integer ≥ 1, not {value!r}")
        for name in ("whatif_target_recall", "whatif_max_share"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value <= 1:
                problems.append(f"{name} must be a number in (0, 1], not {value!r}")
        for name in ("whatif_sample_noise", "term_sample_noise", "linearity_tolerance"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                problems.append(f"{name} must be a number ≥ 0, not {value!r}")
        if self.auto_ann not in ("hnsw", "ivf"):
            problems.append(f"auto_ann must be 'hnsw' or 'ivf', not {self.auto_ann!r}")
        if problems:
            raise ValueError("serving settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ServingSettings:
        """Settings from `to_dict`'s values; ValueError naming any setting this version does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown serving settings {unknown}; known: {sorted(known)}")
        return cls(**values)


def save_settings(folder: Path, settings: ServingSettings) -> None:
    """Write `settings` as JSON to `folder`/settings.json (atomically)."""
    from core.store.atomic import write_text_atomic

    write_text_atomic(Path(folder) / SETTINGS_FILE, json.dumps(settings.to_dict(), indent=1), "serving settings")


def load_settings(folder: Path) -> ServingSettings | None:
    """The settings saved in `folder`/settings.json; None when there is no such file (an index saved before
    settings were saved: the defaults apply) or, with a logged warning, when it cannot be read."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("the file does not hold a JSON object")
        return ServingSettings.from_dict(values)
    except (OSError, ValueError, TypeError) as e:
        log.warning("the serving settings in %s do not load (%s); the defaults apply (delete the file or fix "
                    "it)", path, e)
        return None


def _candidates(count: int, override: int | None, what: str) -> str:
    """One re-rank line of the protocol card in words."""
    if override is not None:
        count = override
        how = "set in the serving settings"
    else:
        how = "chosen by recall when the index was built"
    if not count:
        return f"every item scored exactly for {what}"
    return f"{what}: the index's top {count:,} candidates re-ranked exactly ({how})"


def ranking_card(index_kind: str, n_items: int, settings: ServingSettings, whatif_candidates: int,
                 term_candidates: int) -> dict[str, str]:
    """How a ranking was made, in plain words: the path that ranked it, the index the catalog gets, the
    re-ranking candidate counts and the settings behind them (the studio's protocol card of a ranking)."""
    path = {"exact": "exact: every item scored",
            "parts": "exact: every item scored from the single-modality parts (what-if weights)",
            "model": "exact: every item scored by the model"}.get(index_kind, index_kind)
    if index_kind.endswith("+exact re-rank"):
        path = f"{index_kind.split('+')[0].upper()} candidates, re-ranked exactly"
    approximate = n_items >= settings.auto_exact_below
    card = {
        "ranked by": path,
        "index": (f"{settings.auto_ann.upper()} (approximate: {n_items:,} items, from "
                  f"{settings.auto_exact_below:,} up)" if approximate else
                  f"exact ({n_items:,} items, below the {settings.auto_exact_below:,} where an approximate "
                  f"{settings.auto_ann.upper()} index starts)"),
    }
    if index_kind != "exact" or approximate:
        card["what-if re-rank"] = _candidates(whatif_candidates, settings.whatif_candidates, "what-if weights")
        card["upload re-rank"] = _candidates(term_candidates, settings.term_candidates, "uploads")
        card["known listener re-rank"] = (f"at least {settings.history_candidates:,} candidates (the "
                                          "collaborative term is added to them)")
        card["counts chosen for"] = (f"recall@10 ≥ {settings.whatif_target_recall:.2f} on sample queries, at most "
                                     f"{settings.whatif_max_share:.0%} of the catalog")
        card["search width tuned on"] = (f"{settings.index_sample} sample queries per kind (listeners, liked "
                                         f"items, similar items; {settings.index_sample_liked} liked items each, "
                                         f"seed {settings.index_sample_seed})")
    card["what-if formula checked"] = (f"on {min(settings.linearity_sample, n_items):,} items, relative "
                                       f"tolerance {settings.linearity_tolerance:g}")
    return card
