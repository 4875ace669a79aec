"""Plain sentences generated from the numbers: why an item scored as it did, what feedback changed, what an
evaluation shows and under which protocol. Used by the tour and the HTML report; no streamlit here."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

LABELS = {"text": "text", "image": "cover", "audio": "audio"}
_TEMPO_BAND = re.compile(r"^tempo ≈ (\d+) BPM$")
DOMINANT_SHARE = 0.6  # one modality with at least this share of |Shapley| "mostly" explains the score
EVEN_SHARE = 0.45  # no modality above this share: the reasons are spread


def modality_shares(shapley: Mapping[str, float]) -> dict[str, float]:
    """Each modality's share of the summed absolute Shapley values (0 everywhere when all are 0)."""
    total = sum(abs(float(v)) for v in shapley.values())
    return {m: (abs(float(v)) / total if total > 0 else 0.0) for m, v in shapley.items()}


def feature_phrase(feature: str, value: float) -> str:
    """A named descriptor feature as words, given its standardised value (0 = the catalog's average)."""
    band = _TEMPO_BAND.match(feature)
    if band:
        centre = int(band.group(1))
        return f"a tempo near {centre} BPM" if value > 0 else f"a tempo away from {centre} BPM"
    if feature == "tempo (BPM)":
        return "a faster tempo than usual" if value > 0 else "a slower tempo than usual"
    level = "high" if value > 0 else "low"
    if abs(value) < 0.25:
        level = "average"
    return f"{level} {feature}"


def _top_features(features: pd.DataFrame | None, modality: str, n: int = 2) -> list[str]:
    if features is None or features.empty:
        return []
    part = features[(features["modality"] == modality) & (features["shap"] > 0)]
    part = part.sort_values("shap", ascending=False).head(n)
    return [feature_phrase(str(f), float(v)) for f, v in zip(part["feature"], part["value"])]


def _top_words(tokens: pd.DataFrame | None, n: int = 3) -> list[str]:
    if tokens is None or tokens.empty:
        return []
    part = tokens[(tokens["shap"] > 0) & tokens["token"].astype(str).str.strip().astype(bool)]
    words = [w.strip(".,;:!?\"'()") for w in part.sort_values("shap", ascending=False)["token"].astype(str)]
    return [f"“{w}”" for w in list(dict.fromkeys(w for w in words if w))[:n]]


def _join(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def explanation_sentences(title: str, score: float, base_value: float, shapley: Mapping[str, float],
                          features: pd.DataFrame | None = None, tokens: pd.DataFrame | None = None) -> list[str]:
    """Two or three sentences saying why `title` scored `score`: which modality carried it (with its
    share), the named features and words that raised it most, and what held it back."""
    if not shapley:
        return [f"“{title}” scored {score:.3f} from its id and bias alone: it carries no modality."]
    shares = modality_shares(shapley)
    order = sorted(shapley, key=lambda m: shapley[m], reverse=True)
    top = order[0]
    details: list[str] = []
    if top == "text":
        words = _top_words(tokens)
        details.append(f"the words {_join(words)}" if words else "")
    else:
        details += _top_features(features, top)
    detail = f": {_join(details)}" if any(details) else ""
    if shapley[top] <= 0:
        lead = (f"No modality raised “{title}”: its score {score:.3f} comes from its id and bias "
                f"({base_value:+.3f}), and every modality lowered it.")
        return [lead]
    if shares[top] >= DOMINANT_SHARE:
        lead = (f"“{title}” is here mostly for its {LABELS.get(top, top)} ({shares[top]:.0%} of what the "
                f"modalities added){detail}.")
    elif max(shares.values()) <= EVEN_SHARE:
        lead = (f"“{title}” is here for several reasons at once: "
                + _join([f"its {LABELS.get(m, m)} ({shares[m]:.0%})" for m in order]) + f"; the largest, its "
                f"{LABELS.get(top, top)}, brings{detail or ' most'}.")
    else:
        second = order[1] if len(order) > 1 else None
        lead = (f"“{title}” is here chiefly for its {LABELS.get(top, top)} ({shares[top]:.0%}){detail}"
                + (f", helped by its {LABELS.get(second, second)} ({shares[second]:.0%})."
                   if second and shapley[second] > 0 else "."))
    sentences = [lead]
    if "text" != top and "text" in shapley and shapley["text"] > 0:
        words = _top_words(tokens)
        if words:
            sentences.append(f"Its text adds {shapley['text']:+.3f}, most through {_join(words)}.")
    against = [m for m in order if shapley[m] < 0]
    if against:
        sentences.append("Held back by its " + _join([f"{LABELS.get(m, m)} ({shapley[m]:+.3f})" for m in against])
                         + ".")
    sentences.append(f"Score {score:.3f} = {base_value:.3f} without any modality "
                     + " ".join(f"{shapley[m]:+.3f} ({LABELS.get(m, m)})" for m in order) + ".")
    return sentences


def feedback_sentence(moves: Sequence[tuple[str, int | None, int]], liked: Sequence[str],
                      disliked: Sequence[str]) -> str:
    """What feedback did to the ranking: `moves` are (title, previous rank or None, new rank) of the new list."""
    new = [t for t, before, _ in moves if before is None]
    up = sorted(((before - after, t) for t, before, after in moves if before is not None and before > after),
                reverse=True)
    said = []
    if liked:
        said.append(f"a thumbs-up on {_join([f'“{t}”' for t in liked])}")
    if disliked:
        said.append(f"a thumbs-down on {_join([f'“{t}”' for t in disliked])}")
    parts = [f"After {_join(said) or 'the feedback'}, the list was re-ranked:"]
    parts.append(f"{len(new)} new item{'s' * (len(new) != 1)} entered the top {len(moves)}"
                 + (f" ({_join([f'“{t}”' for t in new[:3]])}{'…' if len(new) > 3 else ''})" if new else ""))
    if up:
        gain, title = up[0]
        parts.append(f"and “{title}” climbed {gain} place{'s' * (gain != 1)}")
    return " ".join(parts) + "."


def protocol_sentence(record: Mapping[str, Any]) -> str:
    """The protocol of one run in one sentence."""
    p, d = record.get("protocol", {}), record.get("dataset", {})
    masked = ", ".join(p.get("masked") or []) or "nothing"
    ranking = "all items" if p.get("ranking") == "full" else str(p.get("ranking", "?"))
    return (f"{str(p.get('target', 'test')).capitalize()} interactions of {p.get('users_evaluated', '?')} users "
            f"({p.get('split', '?')} split, seed {p.get('split_seed', p.get('seed', '?'))}) on "
            f"{d.get('name', record.get('catalog', '?'))}, each user ranking {ranking} "
            f"({d.get('n_items', '?')}) with {masked} items masked; 95% bootstrap CIs over users "
            f"({p.get('n_bootstrap', '?')} resamples).")


def comparison_sentence(name_a: str, name_b: str, row: Mapping[str, Any]) -> str:
    """One paired comparison row (core.runs.paired_comparison) in words: B against A on one metric."""
    diff, lo, hi = float(row["difference"]), float(row["lo"]), float(row["hi"])
    metric = str(row.get("name", row.get("metric", "")))
    if not all(map(math.isfinite, (diff, lo, hi))):
        return f"{name_b} and {name_a} cannot be compared on {metric}."
    if lo > 0:
        verdict = f"beats {name_a}"
    elif hi < 0:
        verdict = f"trails {name_a}"
    else:
        verdict = f"is not distinguishable from {name_a}"
    return (f"{name_b} {verdict} on {metric}: {float(row['B']):.3f} vs {float(row['A']):.3f}, a paired "
            f"difference of {diff:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}) over {int(row['users'])} users.")
