"""What the studio says about a score adds up to the score shown and names every part that moved it, largest
first: known answers for the rounding, the issue's own example, and real explanations of several queries on
a tiny catalog scored by hand (tests.evaluation.test_retrieval's toy service)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from core.explain.narration import (card_parts, card_sentence, explanation_sentences, relative_scores, rounded_parts,
                            score_parts, score_table, sentences_for)

SUM = re.compile(r"Score (-?\d+\.\d{3}) = (.*)\.$")
PART = re.compile(r"([+-]\d+\.\d{3}) \(([^,)]+)(?:, [^)]*)?\)")


def read_sum(sentences: list[str]) -> tuple[int, list[tuple[int, str]]]:
    """(score, [(part, label)]) from the "Score X = +a (label) …" sentence, in thousandths (exact integers)."""
    found = [SUM.match(s) for s in sentences]
    match = next(m for m in found if m)
    parts = [(round(float(v) * 1000), label) for v, label in PART.findall(match.group(2))]
    return round(float(match.group(1)) * 1000), parts


def check_adds_up(sentences: list[str], score: float, parts) -> None:
    """The printed sum is the printed score; every part that moved it is named, largest first; the first
    sentence leads with the largest part that raised the score."""
    printed, named = read_sum(sentences)
    assert printed == round(score * 1000)
    assert sum(v for v, _ in named) == printed, sentences
    moved = [p for p in parts if abs(p.value) >= 0.0015]  # anything that prints as more than a rounding unit
    assert {p.label for p in moved} <= {label for _, label in named}, (moved, named)
    sizes = [abs(v) for v, _ in named]
    assert all(a >= b - 1 for a, b in zip(sizes, sizes[1:]))  # largest first (rounding may swap ties)
    raising = [p for p in parts if p.value > 0]
    if raising:
        assert max(raising, key=lambda p: p.value).label in sentences[0]


def test_rounded_parts_add_up_to_the_rounded_total():
    assert rounded_parts([1 / 3, 1 / 3, 1 / 3], 1.0) == [0.334, 0.333, 0.333]
    assert rounded_parts([0.0004] * 5, 0.002) == [0.001, 0.001, 0.0, 0.0, 0.0]
    assert rounded_parts([2.5004, -1.0004], 1.5) == [2.5, -1.0]  # the negative part lost most: it takes the unit
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = rng.normal(scale=10, size=rng.integers(1, 8))
        shown = rounded_parts(values.tolist(), float(values.sum()))
        assert round(sum(shown) * 1000) == round(round(float(values.sum()), 3) * 1000)
        assert np.all(np.abs(np.array(shown) - values) < 0.002)


def test_the_tour_example_of_the_issue_now_adds_up_and_leads_with_the_like_term():
    # step 3 of the tour as reported: modalities 34.231, items like your upload 25.643, the prior 0.033
    shapley = {"text": 8.747, "image": 14.487, "audio": 10.997}
    terms = {"prior": 0.033, "like_upload": 25.643}
    score = sum(shapley.values()) + sum(terms.values())
    sentences = explanation_sentences("Track", score, 0.0, shapley, terms=terms, history=0.0, offset=0.0,
                                      similarity={"image": 9.5})
    check_adds_up(sentences, score, score_parts(0.0, shapley, terms, 0.0, 0.0))
    assert sentences[0].startswith("“Track” is here for several reasons, largest first: items like your upload "
                                   "(+25.643, 43%), its cover (+14.487, 24%)")
    assert "the popularity prior (+0.033, <1%)" in sentences[0]
    assert "of which +9.500 is its similarity to your upload" in sentences[-1]
    assert sentences[-1] == ("Score 59.907 = +25.643 (items like your upload) +14.487 (its cover, of which +9.500 "
                             "is its similarity to your upload) +10.997 (its audio) +8.747 (its text) +0.033 "
                             "(the popularity prior).")


def test_a_listener_score_names_history_and_learned_bias_and_what_held_it_back():
    shapley = {"text": 0.9229, "image": 0.5, "audio": -0.3}
    score = 0.3004 + 0.7 + sum(shapley.values())
    sentences = explanation_sentences("Song", score, 1.0004, shapley, history=0.7, offset=0.3004)
    check_adds_up(sentences, score, score_parts(1.0004, shapley, None, 0.7, 0.3004))
    assert "listening history (+0.700" in sentences[0] and "its learned item bias (+0.300" in sentences[0]
    assert "Held back by its audio (-0.300)." in sentences


def test_relative_scores_are_shares_of_the_top_score():
    assert relative_scores([40.0, 30.0, 10.0, -2.0]) == [100.0, 75.0, 25.0, 0.0]
    assert relative_scores([-1.0, -2.0]) == [None, None] and relative_scores([]) == []


# -- real explanations on a catalog scored by hand ----------------------------------------------------------
QUERIES = {  # field vectors of the toy catalog, as uploads
    "text": {"text": [[1.0, 0.0]]},
    "audio": {"audio": [[0.0, 1.0]]},
    "text + audio": {"text": [[1.0, 0.0]], "audio": [[0.0, 1.0]]},
    "cover": {"image": [[0.6, 0.8]]},
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_explain_and_card_sentences_add_up_for_several_queries(name):
    from core.explain.service import ExplainService
    from tests.evaluation.test_retrieval import _toy_catalog

    service, _ = _toy_catalog()
    service.closest_weight = 3.0  # the closest match to the upload is a part of its own
    query = service.encode_fields({f: np.array(v, np.float32) for f, v in QUERIES[name].items()})
    result = service.recommend(query, k=4, prior_weight=0.2, similarity_weight=2.0, like_weight=1.5)
    explainer = ExplainService(service)
    for rec in result.items:
        exp = explainer.explain(query, rec.item_id, features=False, tokens=False, prior_weight=0.2,
                                similarity_weight=2.0, like_weight=1.5)
        sentences = sentences_for(rec.title, exp)
        parts = score_parts(exp.base_value, exp.modality_shapley, exp.terms, exp.history, exp.offset,
                            exp.similarity)
        assert sum(p.value for p in parts) == pytest.approx(exp.score, abs=1e-6)
        check_adds_up(sentences, exp.score, parts)
        # the card says the same parts as the explanation, and its shares name the largest first
        assert sorted((p.key, round(p.value, 5)) for p in card_parts(rec)) == \
            sorted((p.key, round(p.value, 5)) for p in parts)
        top = max((p for p in parts if p.value > 0), key=lambda p: p.value, default=None)
        if top is not None:
            assert card_sentence(rec).startswith(f"Brought here by {top.label} (")
        for m, v in exp.similarity.items():
            if abs(v) >= 0.0005:
                assert f"of which {v:+.3f} is its similarity to your upload" in sentences[-1]
    table = score_table(result.items)
    assert table["rank"].tolist() == [1, 2, 3, 4]
    parts_only = table.drop(columns=["rank", "item", "title", "score", "% of #1"]
                            + [c for c in table if c.endswith(" similarity")])
    assert parts_only.fillna(0).sum(axis=1).to_numpy() == pytest.approx(table["score"].to_numpy(), abs=1e-6)


def test_the_text_sentence_prints_the_text_part_as_the_sum_prints_it():
    import pandas as pd

    # the largest remainder gives the text part the missing thousandth: +0.124, not +0.1234 rounded (+0.123)
    shapley = {"image": 1.0, "text": 0.1234, "audio": 0.1234}
    tokens = pd.DataFrame({"token": ["rain", "piano"], "shap": [0.08, 0.04]})
    sentences = explanation_sentences("Song", sum(shapley.values()), 0.0, shapley, tokens=tokens)
    assert "+0.124 (its text)" in sentences[-1]
    assert "Its text adds +0.124, most through “rain” and “piano”." in sentences


def test_a_card_names_every_part_that_held_the_item_back():
    from types import SimpleNamespace

    rec = SimpleNamespace(base=0.5, history=0.3, offset=0.2, score=0.5 + 0.6 + 0.25 - 0.15 - 0.05,
                          contributions={"text": 0.6, "image": 0.25, "audio": -0.15},
                          terms={"prior": -0.05}, similarity={})
    # parts by size: text .6, history .3, offset .2, cover .25 … of 1.55 in all
    assert card_sentence(rec) == ("Brought here by its text (39%) and listening history (19%); 2 smaller parts "
                                  "added the rest; held back by its audio (10%) and the popularity prior (3%).")
    alone = SimpleNamespace(base=0.0, history=0.0, offset=0.0, score=-0.4, contributions={"text": -0.4},
                            terms={}, similarity={})
    assert card_sentence(alone) == ("Nothing in particular raised it: every part of its score was small or "
                                    "negative; held back by its text (100%).")
