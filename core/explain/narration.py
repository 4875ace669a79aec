"""Plain sentences generated from the numbers: why an item scored as it did, what feedback changed, what an
evaluation shows and under which protocol. Used by the tour and the HTML report; no streamlit here."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

LABELS = {"text": "text", "image": "cover", "audio": "audio"}
_TEMPO_BAND = re.compile(r"^tempo ≈ (\d+) BPM$")
DOMINANT_SHARE = 0.6  # one part with at least this share of all that moved the score "mostly" explains it
EVEN_SHARE = 0.45  # no part above this share: the reasons are spread


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


def query_noun(query: Any) -> str:
    """What a query is, in the words a card uses for it: "your text", "your image", "your clip", "your text
    and image", "your liked tracks"; "your query" when it cannot tell."""
    if query is None:
        return "your query"
    parts = []
    if (getattr(query, "text", "") or "").strip():
        parts.append("text")
    images, clips = len(getattr(query, "images", []) or []), len(getattr(query, "audio", []) or [])
    if images:
        parts.append("images" if images > 1 else "image")
    if clips:
        parts.append("clips" if clips > 1 else "clip")
    if getattr(query, "liked", None):
        parts.append("liked tracks")
    if not parts:
        return "your query"
    return "your " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])


def name_query(label: str, noun: str) -> str:
    """A term's label with the query named by what it is ("items like your upload" -> "items like your text")."""
    return str(label).replace("your upload", noun).replace("the upload", noun.replace("your ", "the ", 1))


@dataclass(frozen=True)
class ScorePart:
    """One additive part of a score as the studio says it: a key, words for it, its value and a detail."""

    key: str  # "history", "offset", a modality ("text", "image", "audio") or a term ("prior", "like_upload")
    label: str  # what the sentence calls it, e.g. "its cover", "items like your upload"
    value: float
    detail: str = ""  # e.g. "of which +8.000 is its similarity to your upload"


TERM_WORDS = {"prior": "the popularity prior", "like_upload": "items like your upload",
              "closest_match": "being the closest match to your upload"}
HISTORY_WORDS = "listening history"
OFFSET_WORDS = "its learned item bias"
BASE_WORDS = "what is left with no modality"


def rounded_parts(values: Sequence[float], total: float, decimals: int = 3) -> list[float]:
    """`values` rounded to `decimals` so that the rounded values add up exactly to `total` rounded the same
    way (largest remainder: the parts whose rounding lost or gained most take the difference, one unit
    each). The exact values must add up to `total`."""
    unit = 10.0 ** -decimals
    target = round(round(float(total), decimals) / unit)
    exact = [float(v) / unit for v in values]
    floors = [math.floor(x) for x in exact]
    missing = int(target - sum(floors))
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    if missing >= 0:
        for i in order[:missing]:
            floors[i] += 1
    else:  # the parts add up to more than the total rounded: take units from the smallest remainders
        for i in order[::-1][:-missing]:
            floors[i] -= 1
    return [round(f * unit, decimals) for f in floors]


def score_parts(base_value: float, shapley: Mapping[str, float], terms: Mapping[str, float] | None = None,
                history: float | None = None, offset: float | None = None,
                similarity: Mapping[str, float] | None = None, term_words: Mapping[str, str] | None = None
                ) -> list[ScorePart]:
    """Every additive part of a score, largest (by size) first: the listening history and the item's own
    offset (or, without them, the base value), each modality's Shapley value (its similarity to the upload
    named inside it) and each named term. Their values add up to base_value + Σ shapley + Σ terms = score."""
    words = {**TERM_WORDS, **dict(term_words or {})}
    parts: list[ScorePart] = []
    if history is None:
        parts.append(ScorePart("base", BASE_WORDS, float(base_value)))
    else:
        off = float(base_value) - float(history) if offset is None else float(offset)
        parts.append(ScorePart("history", HISTORY_WORDS, float(base_value) - off))
        parts.append(ScorePart("offset", OFFSET_WORDS, off))
    similarity = dict(similarity or {})
    for m, v in shapley.items():
        sim = float(similarity.get(m, 0.0))
        detail = f"of which {sim:+.3f} is its similarity to your upload" if abs(sim) >= 0.0005 else ""
        parts.append(ScorePart(m, f"its {LABELS.get(m, m)}", float(v), detail))
    for t, v in (terms or {}).items():
        parts.append(ScorePart(t, words.get(t, t), float(v)))
    return sorted(parts, key=lambda p: -abs(p.value))


def _shown(parts: Sequence[ScorePart], score: float) -> list[tuple[ScorePart, float]]:
    """(part, value as printed) for the parts that print as non-zero; the printed values add up to the
    printed score."""
    shown = rounded_parts([p.value for p in parts], score)
    return [(p, v) for p, v in zip(parts, shown) if v != 0]


def _pct(share: float) -> str:
    """A share as a whole percentage; "<1%" for a part too small to show as 1% but not nothing."""
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def _num(v: float) -> str:
    return f"{v:+.3f}".replace("+-", "-")


def score_sum_sentence(score: float, parts: Sequence[ScorePart]) -> str:
    """"Score 59.908 = +25.643 (items like your upload) +14.487 (its cover, of which …) …": every part that
    moved the score, largest first, printed so that the printed numbers add up to the printed score."""
    shown = _shown(parts, score)
    if not shown:
        return f"Score {score:.3f}: nothing moved it."
    return (f"Score {score:.3f} = " + " ".join(f"{_num(v)} ({p.label}{', ' + p.detail if p.detail else ''})"
                                                for p, v in shown) + ".")


def part_shares(parts: Sequence[ScorePart]) -> dict[str, float]:
    """Each part's share of the summed sizes of all parts (0 everywhere when all are 0)."""
    total = sum(abs(p.value) for p in parts)
    return {p.key: (abs(p.value) / total if total > 0 else 0.0) for p in parts}


def explanation_sentences(title: str, score: float, base_value: float, shapley: Mapping[str, float],
                          features: pd.DataFrame | None = None, tokens: pd.DataFrame | None = None,
                          terms: Mapping[str, float] | None = None, history: float | None = None,
                          offset: float | None = None, similarity: Mapping[str, float] | None = None,
                          term_words: Mapping[str, str] | None = None) -> list[str]:
    """Sentences saying why `title` scored `score`, led by the largest part: what carried it (every part
    that moved it, with its share of them all: modalities, listening history, the item's offset, the prior,
    items like the upload), the named features and words behind its largest modality, what held it back,
    and the sum, printed so that it adds up to the printed score."""
    parts = score_parts(base_value, shapley, terms, history, offset, similarity, term_words)
    shown = _shown(parts, score)
    if not shown:
        return [f"“{title}” scored {score:.3f}: no part of the score moved it."]
    shares = part_shares(parts)
    raising = [(p, v) for p, v in shown if v > 0]
    lowering = [(p, v) for p, v in shown if v < 0]
    if not raising:
        lead = f"Nothing raised “{title}”: its score {score:.3f} is what is left after every part lowered it."
    else:
        top, top_v = raising[0]
        if shares[top.key] >= DOMINANT_SHARE:
            lead = (f"“{title}” is here mostly for {top.label} ({_num(top_v)}, {_pct(shares[top.key])} of all "
                    "that moved its score).")
        elif len(raising) > 1 and shares[top.key] <= EVEN_SHARE:
            lead = (f"“{title}” is here for several reasons, largest first: "
                    + _join([f"{p.label} ({_num(v)}, {_pct(shares[p.key])})" for p, v in raising]) + ".")
        else:
            second = raising[1] if len(raising) > 1 else None
            lead = (f"“{title}” is here chiefly for {top.label} ({_num(top_v)}, {_pct(shares[top.key])})"
                    + (f", helped by {second[0].label} ({_num(second[1])}, {_pct(shares[second[0].key])})."
                       if second else "."))
    sentences = [lead]
    modal = [p for p, v in raising if p.key in shapley]
    if modal:
        m = modal[0].key
        details = [f"the words {_join(_top_words(tokens))}"] if m == "text" and _top_words(tokens) \
            else _top_features(features, m) if m != "text" else []
        if details:
            sentences.append(f"Within {LABELS.get(m, m) if m != 'text' else 'its text'}, {_join(details)} "
                             "raised it most.")
        text_shown = next((v for p, v in shown if p.key == "text"), 0.0)  # as the sum sentence prints it
        if m != "text" and text_shown > 0 and _top_words(tokens):
            sentences.append(f"Its text adds {_num(text_shown)}, most through {_join(_top_words(tokens))}.")
    if lowering:
        sentences.append("Held back by " + _join([f"{p.label} ({_num(v)})" for p, v in lowering]) + ".")
    sentences.append(score_sum_sentence(score, parts))
    return sentences


def sentences_for(title: str, explanation: Any, features: bool = True) -> list[str]:
    """explanation_sentences for a core.explain.service.Explanation: every part it holds, named."""
    history = getattr(explanation, "history", None)
    return explanation_sentences(
        title, float(explanation.score), float(explanation.base_value),
        {m: float(v) for m, v in dict(explanation.modality_shapley).items()},
        explanation.feature_shap if features else None, explanation.token_shap if features else None,
        terms={t: float(v) for t, v in dict(getattr(explanation, "terms", None) or {}).items()},
        history=None if history is None else float(history),
        offset=float(getattr(explanation, "offset", 0.0) or 0.0),
        similarity=dict(getattr(explanation, "similarity", None) or {}))


def card_parts(rec: Any) -> list[ScorePart]:
    """score_parts of a core.serving.service.Recommendation (score = offset + history + Σ contributions + Σ terms)."""
    return score_parts(float(rec.base), {m: float(v) for m, v in dict(rec.contributions).items()},
                       {t: float(v) for t, v in dict(rec.terms or {}).items()}, history=float(rec.history),
                       offset=float(rec.offset), similarity=dict(rec.similarity or {}))


def card_sentence(rec: Any) -> str:
    """One plain sentence for a result card: what brought the item here, the largest parts first, with
    their shares of all that moved its score, and every part that held it back."""
    parts = card_parts(rec)
    shares = part_shares(parts)
    shown = _shown(parts, float(rec.score))
    raising = [(p, v) for p, v in shown if v > 0]
    lowering = [p for p, v in shown if v < 0]
    held = (f"; held back by {_join([f'{p.label} ({_pct(shares[p.key])})' for p in lowering])}"
            if lowering else "")
    if not raising:
        return ("Nothing in particular raised it: every part of its score was small or negative"
                + held + ".")
    # the two largest, and the closest match whenever it counts: it is why an item is first
    named = [p for i, (p, _) in enumerate(raising) if i < 2 or p.key == "closest_match"]
    rest = [p for p, _ in raising if p not in named]
    said = _join([f"{p.label} ({_pct(shares[p.key])})" for p in named])
    return (f"Brought here by {said}" + (f"; {len(rest)} smaller part{'s' * (len(rest) != 1)} added the rest"
                                         if rest else "") + held + ".")


def score_table(recs: Sequence[Any]) -> pd.DataFrame:
    """The raw numbers behind result cards: rank, item, title, score, share of #1 and every part of the
    score (history, offset, modalities, terms, and each modality's similarity to the upload)."""
    rows = []
    for rec, share in zip(recs, relative_scores([float(r.score) for r in recs])):
        row = {"rank": rec.rank, "item": rec.item_id, "title": rec.title, "score": float(rec.score),
               "% of #1": share}
        for part in card_parts(rec):
            row[part.label.removeprefix("its ")] = part.value
        for m, v in dict(rec.similarity or {}).items():
            row[f"{LABELS.get(m, m)} similarity"] = float(v)
        rows.append(row)
    return pd.DataFrame(rows)


def relative_scores(scores: Sequence[float]) -> list[float | None]:
    """Each score as a share of the first (top) result's score, on a 0–100 scale a room can read; None
    for all when the top score is not positive (no share of it means anything then)."""
    if not scores or float(scores[0]) <= 0:
        return [None] * len(scores)
    top = float(scores[0])
    return [max(0.0, float(s)) / top * 100 for s in scores]


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
    """One paired comparison row (core.evaluation.runs.paired_comparison) in words: B against A on one metric."""
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
