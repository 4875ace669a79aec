"""The query named by what it is on cards and charts: "your text", "your image", "your clip", never "your
upload" for a sentence."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ui.components import name_query, query_noun, score_terms_line


@pytest.mark.parametrize(("query", "noun"), [
    (SimpleNamespace(text="calm piano", images=[], audio=[], liked=[]), "your text"),
    (SimpleNamespace(text="", images=["a.png"], audio=[], liked=[]), "your image"),
    (SimpleNamespace(text=" ", images=[], audio=["a.wav"], liked=[]), "your clip"),
    (SimpleNamespace(text="x", images=["a", "b"], audio=["c"], liked=[]), "your text, images and clip"),
    (SimpleNamespace(text="", images=[], audio=[], liked=["T1"]), "your liked tracks"),
    (None, "your query"),
])
def test_query_noun(query, noun):
    assert query_noun(query) == noun


def test_labels_and_card_line_name_the_query():
    assert name_query("items like your upload", "your text") == "items like your text"
    assert name_query("similarity to the upload", "your clip") == "similarity to the clip"
    rec = SimpleNamespace(terms={"prior": 0.1, "like_upload": 2.5}, similarity={"text": 1.25}, lacks=[])
    line = score_terms_line(rec, "your text")
    assert "items like your text +2.500" in line and "similarity to your text" in line
    assert "upload" not in line


@pytest.mark.parametrize(("message", "plain", "commands"), [
    ("catalog 'six' has no interactions; import them (`python -m core import interactions`)",
     "catalog 'six' has no interactions; import them", ["python -m core import interactions"]),
    ("no run with id 'x'; list them with `python -m core runs list`", "no run with id 'x'",
     ["python -m core runs list"]),
    ("the zip holds no manifest.csv; add one", "the zip holds no manifest.csv; add one", []),
])
def test_plain_error_keeps_the_fix_and_sets_commands_apart(message, plain, commands):
    from ui.components import plain_error

    assert plain_error(ValueError(message)) == (plain, commands)
