"""Tour: every step of the demo tour renders on the demo through the real services; a tour naming an item the
catalog lacks is refused with a message naming the step; the tour's report holds what its steps showed."""
from __future__ import annotations

import pytest

from core.tour.schema import TOURS_DIR, TourError, check_tour, load_tour, parse_tour
from core.tour.steps import ExplainOutcome, FeedbackOutcome, ProofOutcome, QueryOutcome, StepSkipped
from tests.app.conftest import goto, texts

STEP_TITLES = [s.title for s in load_tour(TOURS_DIR / "demo.yaml").steps]


def test_every_demo_tour_step_renders(app):
    goto(app, "tour")
    run = app.session_state["tour_run"]
    for i, title in enumerate(STEP_TITLES):
        assert app.subheader[0].value == f"{i + 1}. {title}"
        assert f"Step {i + 1} of {len(STEP_TITLES)}" in str(app.get("progress")[0].proto.text)
        assert not app.error, [e.value for e in app.error]
        outcome = run.outcome(i)
        assert not isinstance(outcome, StepSkipped), f"step {i + 1} was skipped on the demo: {outcome}"
        if isinstance(outcome, (QueryOutcome, ExplainOutcome, FeedbackOutcome)):  # named as on Recommend/Explain
            shown = texts(app)
            assert "your upload" not in shown and "the upload" not in shown, f"step {i + 1} says 'upload'"
        if i < len(STEP_TITLES) - 1:
            app.button(key="tour_next").click().run()
            assert not app.exception, [e.value for e in app.exception]
    assert app.button(key="tour_next").disabled
    # what the steps computed is real: three query stages, the top item explained, feedback re-ranked
    query = next(o for o in run.outcomes.values() if isinstance(o, QueryOutcome))
    assert [s.label for s in query.stages] == ["A sentence", "+ a cover", "+ a clip"]
    assert {"image", "audio"} <= set(query.last.result.query_modalities)
    explain = next(o for o in run.outcomes.values() if isinstance(o, ExplainOutcome))
    assert explain.explanation.item_id == query.last.result.items[0].item_id
    shapley = explain.explanation.modality_shapley
    terms = explain.explanation.terms  # the named terms of an upload query are players too
    assert sum(shapley.values()) + sum(terms.values()) == pytest.approx(
        explain.explanation.score - explain.explanation.base_value, abs=1e-4)
    assert any(f"{abs(v):.3f}" in " ".join(explain.sentences) for v in shapley.values())
    # the sentence read aloud adds up to the score and names every part, largest first (issue: it left out
    # "items like your upload" and the prior)
    from core.explain.narration import score_parts
    from tests.explain.test_narration import check_adds_up

    e = explain.explanation
    check_adds_up(explain.sentences, e.score, score_parts(e.base_value, e.modality_shapley, e.terms, e.history,
                                                          e.offset, e.similarity))
    feedback = next(o for o in run.outcomes.values() if isinstance(o, FeedbackOutcome))
    assert feedback.liked == [r.item_id for r in query.last.result.items[:2]]
    assert not {r.item_id for r in feedback.result.items} & set(feedback.liked + feedback.disliked)
    proof = next(o for o in run.outcomes.values() if isinstance(o, ProofOutcome))
    assert proof.runs and proof.paired and proof.faithfulness is not None
    # the report at the tour's end holds every step's narration and what they computed, in under 10 MB
    from core.report import render_report

    report = run.report()
    assert [s.heading for s in report.sections] == [f"{i + 1}. {t}" for i, t in enumerate(STEP_TITLES)]
    assert report.items and report.explained[0].item_id == explain.explanation.item_id and report.runs
    import html

    text = render_report(report, run.ctx.catalog)
    assert len(text.encode("utf-8")) < 10_000_000
    assert f"waterfall:{explain.explanation.item_id}" in text
    assert "your upload" not in text  # the query named as the tour's page names it
    assert html.escape(feedback.sentence.split(":")[0]) in text
    # Back returns; presenter notes are hidden until asked for, and hide again
    notes = load_tour(TOURS_DIR / "demo.yaml").steps[-2].notes
    app.button(key="tour_back").click().run()
    assert app.subheader[0].value == f"{len(STEP_TITLES) - 1}. {STEP_TITLES[-2]}"
    assert notes.split(":")[0] not in texts(app)
    app.button(key="tour_notes_button").click().run()
    assert notes.split(":")[0] in texts(app)
    assert app.subheader[0].value == f"{len(STEP_TITLES) - 1}. {STEP_TITLES[-2]}"  # the step stays
    app.button(key="tour_notes_button").click().run()
    assert notes.split(":")[0] not in texts(app)


def test_presenter_notes_are_off_when_the_tour_opens(app):
    goto(app, "tour")
    notes = load_tour(TOURS_DIR / "demo.yaml").steps[0].notes
    assert notes.split(":")[0].split(".")[0] not in texts(app)
    assert app.button(key="tour_notes_button").label == "Presenter notes"
    assert not app.get("toggle")  # no switch: a focused input would swallow the arrow keys


def test_edited_sentence_reruns_the_query(app):
    goto(app, "tour")
    app.button(key="tour_next").click().run()
    before = app.session_state["tour_run"].outcome(1).stages[0].result
    app.text_input(key="tour_text_1").input("energetic techno with a driving beat").run()
    assert not app.exception
    after = app.session_state["tour_run"].outcome(1).stages[0]
    assert after.query.text == "energetic techno with a driving beat"
    assert [r.item_id for r in after.result.items] != [r.item_id for r in before.items]
    # the explain step's sentences add up for the new query too, and for other sentences typed in
    from core.explain.narration import score_parts
    from core.tour.steps import ExplainOutcome
    from tests.explain.test_narration import check_adds_up

    run = app.session_state["tour_run"]
    step = next(i for i, s in enumerate(run.tour.steps) if s.kind == "explain")
    for text in ("energetic techno with a driving beat", "a sad song about the sea", "lo-fi beats to study to"):
        run.set_text(1, 0, text)
        out = run.outcome(step)
        assert isinstance(out, ExplainOutcome) and out.stage.query.text == text
        e = out.explanation
        check_adds_up(out.sentences, e.score, score_parts(e.base_value, e.modality_shapley, e.terms, e.history,
                                                          e.offset, e.similarity))


UNKNOWN_ITEM_TOUR = """
title: A tour of another catalog
steps:
  - kind: catalog
    title: The catalog
  - kind: query
    title: Covers that do not exist
    stages:
      - label: words
        text: calm piano
      - label: a cover
        image: NOT-AN-ITEM
"""


def test_unknown_item_id_is_refused_naming_the_step(app):
    goto(app, "tour")
    app.file_uploader(key="tour_upload").set_value(("mine.yaml", UNKNOWN_ITEM_TOUR.encode(), "application/yaml"))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    message = " ".join(e.value for e in app.error).replace("\\", "")  # as drawn: markdown escapes removed
    assert "step 2 (Covers that do not exist)" in message and "NOT-AN-ITEM" in message
    assert not app.subheader  # nothing of the tour ran


def test_tour_files_are_checked_before_running(app_env):
    from core.store.database import Store

    catalog = Store(app_env["PRISM_DATA_DIR"]).load_catalog("demo")
    with pytest.raises(TourError, match=r"step 2 \(Covers that do not exist\).*NOT-AN-ITEM"):
        check_tour(parse_tour(UNKNOWN_ITEM_TOUR), catalog)
    with pytest.raises(TourError, match="unknown kind 'dance'"):
        parse_tour('{"steps": [{"kind": "dance", "title": "x"}]}', "t.json")
    check_tour(load_tour(TOURS_DIR / "demo.yaml"), catalog)  # the shipped tour fits the demo


def test_a_step_that_cannot_run_is_skipped_with_a_note(app_env, tmp_path):
    """No stored evaluation: the proof step is skipped with a note, and the steps around it still run."""
    from core.store.database import Store
    from core.tour.steps import TourContext, TourRun
    from core.workspace.prepare import load_active_model, load_embeddings

    store = Store(app_env["PRISM_DATA_DIR"])
    catalog = store.load_catalog("demo")
    embeddings = load_embeddings(store, catalog)
    tour = parse_tour("""
steps:
  - {kind: catalog, title: Items}
  - {kind: proof, title: Proof}
  - {kind: import, title: Import}
""")
    ctx = TourContext(catalog=catalog, embeddings=embeddings, model=load_active_model(store, catalog, embeddings),
                      store=Store(tmp_path / "empty"), recommend_service=lambda: None, explain_service=lambda: None)
    run = TourRun(tour, ctx)
    skipped = run.outcome(1)
    assert isinstance(skipped, StepSkipped) and "No evaluation" in str(skipped)
    assert not isinstance(run.outcome(0), StepSkipped) and not isinstance(run.outcome(2), StepSkipped)
    report = run.report()
    assert any("Skipped: No evaluation" in p for s in report.sections for p in s.paragraphs)


def _upload(app, name: str, text: str):
    goto(app, "tour")
    app.file_uploader(key="tour_upload").set_value((name, text.encode(), "application/yaml"))
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return " ".join(e.value for e in app.error).replace("\\", "")


def test_hostile_tour_files_get_a_message_naming_step_and_field(app):
    from tests.tour.test_tour_schema import billion_laughs

    message = _upload(app, "laughs.yaml", billion_laughs())
    assert "YAML aliases" in message and not app.subheader
    message = _upload(app, "types.yaml", "steps:\n  - {kind: catalog, title: Covers, covers: abc}\n"
                                         "  - {kind: explain, title: Why, item: -100}\n")
    assert "step 1 (Covers), field covers" in message and "step 2 (Why), field item" in message
    assert not app.subheader


MARKDOWN_BAIT = "![x](http://127.0.0.1:9/md.png)"


def test_tour_strings_are_drawn_as_plain_text(app):
    """Narration, notes, titles and stage labels holding markdown images or links reach the page escaped."""
    tour = f"""
title: "{MARKDOWN_BAIT}"
steps:
  - kind: catalog
    title: "Covers {MARKDOWN_BAIT}"
    narration: "See {MARKDOWN_BAIT} and [a link](http://127.0.0.1:9/l) <img src=http://127.0.0.1:9/i.png>"
    notes: "Notes {MARKDOWN_BAIT}"
  - kind: query
    title: Q
    stages:
      - label: "{MARKDOWN_BAIT}"
        text: calm piano
"""
    _upload(app, "bait.yaml", tour)
    assert app.subheader and not app.error

    def drawn() -> list[str]:
        parts = [str(e.value) for kind in ("markdown", "caption", "info", "subheader") for e in getattr(app, kind)]
        return parts + [str(app.get("progress")[0].proto.text)]

    def unescaped(parts: list[str]) -> list[str]:
        import re

        return [p for p in parts if "![x](" in p or "](http" in p or re.search(r"(?<!\\)<img", p)]

    app.button(key="tour_notes_button").click().run()  # notes are off by default on the room's screen
    parts = drawn()
    assert any("See" in p for p in parts) and any("Notes" in p for p in parts)
    assert unescaped(parts) == []
    app.button(key="tour_next").click().run()
    assert not app.exception
    assert unescaped(drawn()) == []
    labels = app.session_state["tour_run"].outcome(1).stages[0].label
    assert labels == MARKDOWN_BAIT  # kept as written; only its drawing is escaped
