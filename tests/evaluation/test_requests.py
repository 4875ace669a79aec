"""Free-text requests with a known answer (core.evaluation.requests) and the demo's request sentences."""
from __future__ import annotations

import numpy as np
import pytest

from core.catalog.demo_text import ATTRIBUTES, request_sentence
from core.evaluation.requests import requests, score_answers

ITEMS = [("ambient", "calm", "piano", "rain"), ("hip-hop", "calm", "piano", "rain"),
         ("ambient", "calm", "piano", "rain"), ("jazz", "dark", "bass", "city"), ("folk", None, "guitar", "sea")]


def test_every_combination_an_item_carries_is_asked_once_and_none_with_a_missing_value() -> None:
    asked = requests(ITEMS, lambda rng, *combo: " ".join(combo))
    assert [w for _, w in asked] == sorted(set(ITEMS[:4]))
    assert asked[0][0] == "ambient calm piano rain"
    assert len(requests(ITEMS, lambda rng, *c: "x", limit=2)) == 2


def test_answers_are_scored_against_the_attributes_the_sentence_names() -> None:
    wanted = [ITEMS[0], ITEMS[3]]
    # request 1 answered by the hip-hop track (3 of 4), request 2 by the jazz track (4 of 4)
    scores = score_answers([1, 3], wanted, ITEMS, ATTRIBUTES)
    assert scores["full@1"] == pytest.approx(0.5)
    assert scores["attributes@1"] == pytest.approx(7 / 8)
    assert scores["genre@1"] == pytest.approx(0.5) and scores["mood@1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 answers for 1 requests"):
        score_answers([0, 1], wanted[:1], ITEMS, ATTRIBUTES)


def test_a_request_sentence_names_each_attribute_in_the_generators_words_and_is_seeded() -> None:
    a = request_sentence(np.random.default_rng(3), "ambient", "calm", "piano", "rain")
    b = request_sentence(np.random.default_rng(3), "ambient", "calm", "piano", "rain")
    assert a == b and " with " in a and ", for " in a
    assert "ambient" in a and any(w in a for w in ("piano", "soft keys"))
    with pytest.raises(KeyError):
        request_sentence(np.random.default_rng(0), "polka", "calm", "piano", "rain")
