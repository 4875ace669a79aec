"""Explain: for a known listener the page draws the waterfall (ending exactly at the score), the modality
shares next to the generator's truth, and the feature-level SHAP."""
from __future__ import annotations

import json

import pytest

from tests.app.conftest import goto, plotly_values, texts
from tests.explain.test_narration import read_sum


def read_sum_on_page(at):
    """The "Score X = …" sentence as the page shows it (markdown escapes removed), read like read_sum."""
    from tests.explain.test_narration import read_sum

    shown = [str(m.value)[2:].replace("\\", "") for m in at.markdown if str(m.value).startswith("- Score ")]
    return read_sum(shown)


def _figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _waterfall(figures: list[dict]) -> dict:
    return next(f for f in figures if "How the score is built" in str(f["layout"]["title"]["text"]))


def test_explain_listener_draws_charts(app):
    goto(app, "explain")
    assert app.radio(key="ex_mode").value == "A listener"
    figures = _figures(app)
    assert len(figures) >= 2
    waterfall = _waterfall(figures)
    y = plotly_values(waterfall["data"][0]["y"])
    base, steps, score = y[0], y[1:-1], y[-1]
    # the Shapley values carry the base value exactly to the score
    assert base + sum(steps) == pytest.approx(score, abs=1e-4)
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["Score"]) == pytest.approx(score, abs=1e-3)
    page = texts(app)
    assert "add up to" in page


def test_explain_shows_ground_truth_for_a_dominant_listener(app):
    from core.catalog.demo import load_ground_truth
    from ui.loaders import store

    goto(app, "explain")
    listener = app.selectbox(key="ex_user").value
    truth = load_ground_truth(store().load_catalog("demo"))["listeners"][listener]
    # the default listener is one whose taste lives in one modality, so the explanation can be checked
    assert truth["dominant_modality"] in ("text", "image", "audio")
    shares = next(f for f in _figures(app) if "truth" in str(f["layout"]["title"]["text"]))
    sources = {y for trace in shares["data"] for y in plotly_values(trace["y"])}
    assert "generator's truth (taste)" in sources
    page = texts(app)
    assert f"*{truth['kind']}*" in page and f"lives in **{truth['dominant_modality']}**" in page


def test_switching_item_recomputes(app):
    goto(app, "explain")
    box = app.selectbox(key=next(k for k in app.session_state if str(k).startswith("ex_item_")))
    first = box.value
    box.set_value(box.options[1] if box.options[1] != first else box.options[2]).run()
    assert not app.exception
    assert app.session_state["explain_target"]["item_id"] != first


def test_explain_a_text_query_draws_the_prior_as_its_own_player(app):
    goto(app, "recommend")
    app.text_area(key="q_text").input("calm piano about the rain")
    app.button(key="q_submit").click().run()
    app.slider(key="opt_prior").set_value(0.5).run()
    top = app.session_state["result"].items[0]
    app.session_state["explain_target"] = {"item_id": top.item_id, "mode": "query", "catalog": "demo"}
    goto(app, "explain")
    assert app.radio(key="ex_mode").value == "Your query"
    trace = _waterfall(_figures(app))["data"][0]
    x, y = plotly_values(trace["x"]), plotly_values(trace["y"])
    # the named terms' bars come after the modalities: the prior, "items like your text", the closest match (a
    # text query is named by what it is, not called an upload)
    assert x[0] == "base (no modality, no prior)" and x[-4] == "popularity prior × 0.50"
    assert x[-3].startswith("items like your text × ") and x[-2].startswith("closest match to your text × ")
    assert "your upload" not in texts(app) and "your upload" not in " ".join(map(str, x))
    assert y[-4] == pytest.approx(top.terms["prior"], abs=1e-6)
    assert y[-3] == pytest.approx(top.terms["like_upload"], abs=1e-6)
    assert y[-2] == pytest.approx(top.terms["closest_match"], abs=1e-6)
    assert y[0] + sum(y[1:-1]) == pytest.approx(y[-1], abs=1e-4) and y[-1] == pytest.approx(top.score, abs=1e-4)
    assert "modalities and 3 named terms as players" in texts(app)  # the prior, items like it, the closest match
    assert "weight × prior" not in texts(app)  # only the prior is a prior
    # the page's sentences in plain words add up to the score shown and name every part, largest first
    from core.explain.narration import score_parts, sentences_for
    from tests.explain.test_narration import check_adds_up
    from ui.components import name_query

    exp = next(v for k, v in app.session_state["explanations"].items()
               if isinstance(k, tuple) and k[:2] == ("explanation", "modalities"))
    said = sentences_for(app.session_state["result"].items[0].title, exp, features=False)
    check_adds_up(said, exp.score, score_parts(exp.base_value, exp.modality_shapley, exp.terms, exp.history,
                                               exp.offset, exp.similarity))
    assert read_sum_on_page(app) == read_sum([name_query(s, "your text") for s in said])  # the query named
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rank"] == f"#1 of {len(app.session_state['result'].items)}"
    assert "What does this mean?" in texts(app)
    # the headline's largest part is the sum sentence's first, named and printed as the sentence says it
    _, named = read_sum_on_page(app)
    largest = next(m for m in app.metric if m.label == "Largest part")
    assert largest.value.lower() == named[0][1].removeprefix("its ").removeprefix("being ").lower()
    assert largest.delta == f"{named[0][0] / 1000:+.3f}" and "upload" not in largest.value


def test_the_largest_part_headline_names_the_query_by_what_it_is(app):
    """With "items like the query" at its top weight, that term is the largest part: the headline calls it
    what the sentences and the chart call it ("items like your text"), never "your upload"."""
    goto(app, "recommend")
    app.text_area(key="q_text").input("calm piano about the rain")
    app.button(key="q_submit").click().run()
    like = app.slider(key="opt_like")
    like.set_value(like.max).run()
    app.slider(key="opt_similarity").set_value(0.0).run()
    top = app.session_state["result"].items[0]
    app.session_state["explain_target"] = {"item_id": top.item_id, "mode": "query", "catalog": "demo"}
    goto(app, "explain")
    _, named = read_sum_on_page(app)
    assert named[0][1] == "items like your text", named  # the largest part, first in the sum sentence
    largest = next(m for m in app.metric if m.label == "Largest part")
    assert largest.value == "Items like your text" and largest.delta == f"{named[0][0] / 1000:+.3f}"
