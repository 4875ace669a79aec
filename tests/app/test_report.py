"""The HTML report: the CLI writes one self-contained file whose charts carry the run records' numbers and the
ranking's; data strings are escaped; the demo tour's report stays small."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.cli.main import main
from core.report import ReportData, ReportItem, ReportQuery, render_report
from core.store.database import Store
from tests.app.conftest import plotly_values

FIGURE = re.compile(r'<script type="application/json" class="prism-figure" data-target="(chart-\d+)" '
                    r'data-figure="([^"]*)">(.*?)</script>', re.S)


def figures_of(text: str) -> dict[str, dict]:
    """Every embedded figure of a report by name, parsed from its JSON."""
    out = {}
    for target, name, payload in FIGURE.findall(text):
        assert f'id="{target}"' in text  # a placeholder the figure is drawn into
        out[name] = json.loads(payload)
    return out


@pytest.fixture(scope="module")
def cli_report(app_env, tmp_path_factory) -> tuple[str, Store]:
    out = tmp_path_factory.mktemp("report") / "demo.html"
    code = main(["report", "--catalog", "demo", "--query", "calm ambient piano", "--explain", "1",
                 "--out", str(out)])
    assert code == 0
    return out.read_text(encoding="utf-8"), Store(app_env["PRISM_DATA_DIR"])


def test_report_charts_carry_the_run_records_numbers(cli_report):
    text, store = cli_report
    figs = figures_of(text)
    # the runs the report's table lists, read back from the store
    run_ids = re.findall(r"<code class='muted'>([^<]+)</code>", text)
    records = {r["name"]: r for r in map(store.load_run, run_ids)}
    assert len(records) == len(run_ids) >= 2  # one run per model
    for metric in ("recall", "ndcg"):
        bars = figs[f"eval:{metric}@20"]["data"][0]
        names = list(bars["x"])
        assert set(names) == set(records)
        values = plotly_values(bars["y"])
        upper = plotly_values(bars["error_y"]["array"])
        lower = plotly_values(bars["error_y"]["arrayminus"])
        for name, value, up, low in zip(names, values, upper, lower):
            record = records[name]
            lo, hi = record["ci"][f"{metric}@20"]
            assert value == pytest.approx(record["metrics"][f"{metric}@20"], abs=1e-12)
            assert value + up == pytest.approx(hi, abs=1e-12) and value - low == pytest.approx(lo, abs=1e-12)
    # the table beside the charts shows the same numbers with their CIs
    fusion = next(r for r in records.values() if r["model"]["kind"] == "fusion")
    lo, hi = fusion["ci"]["ndcg@10"]
    assert f"{fusion['metrics']['ndcg@10']:.4f}" in text and f"[{lo:.4f}, {hi:.4f}]" in text
    assert fusion["protocol"]["split"] in text  # the protocol card


def test_report_holds_query_ranking_waterfall_encoders_and_model(cli_report):
    text, store = cli_report
    figs = figures_of(text)
    waterfalls = [n for n in figs if n.startswith("waterfall:")]
    assert len(waterfalls) == 1
    waterfall = figs[waterfalls[0]]["data"][0]
    y = plotly_values(waterfall["y"])
    assert sum(y[:-1]) == pytest.approx(y[-1], abs=1e-6)  # base + Shapley values = score
    assert any(n.startswith("features:") for n in figs) and "modality-shares" in figs
    assert "calm ambient piano" in text
    assert "items like your text" in text and "your upload" not in text  # named as the studio names it
    assert store.active_model("demo")["id"] in text
    for encoder_id in store.load_run(store.list_runs("demo")["id"].iloc[0])["encoders"].values():
        assert encoder_id in text
    assert text.count("plotly.js v") == 1  # embedded once
    assert not re.search(r'<script[^>]+src=|<link[^>]+href=|src="https?:', text)  # nothing fetched
    assert text.count('src="data:image/') >= 10  # the ten covers


def test_report_escapes_data_strings():
    hostile = '<script>alert("x")</script>'
    data = ReportData(catalog=hostile, model_id=hostile, encoder_ids={"text": hostile}, title=hostile,
                      query=ReportQuery(text=hostile),
                      items=[ReportItem(item_id=hostile, rank=1, score=0.5, modality_weights={"text": 1.0},
                                        contributions={"text": 0.2})])
    text = render_report(data)
    assert hostile not in text
    assert html_escaped(hostile) in text


def html_escaped(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def test_unknown_run_is_a_clear_error(app_env, capsys, tmp_path):
    assert main(["report", "--catalog", "demo", "--run", "no-such-run", "--out", str(tmp_path / "x.html")]) == 2
    assert "no run with id 'no-such-run'" in capsys.readouterr().err
    assert not Path(tmp_path / "x.html").exists()


def _download_labels(at) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


def test_download_report_on_recommend_explain_and_evaluate(app):
    from tests.app.conftest import goto

    goto(app, "evaluate")
    assert "Download report" in _download_labels(app)
    goto(app, "recommend")
    app.text_area(key="q_text").input("quiet folk guitar")
    app.button(key="q_submit").click().run()
    assert not app.exception
    assert "Download report" in _download_labels(app)
    goto(app, "explain")
    assert "Download report" in _download_labels(app)


def test_query_report_merges_the_explained_parts(app):
    """The Recommend and Explain pages' report: the ranking and each item explained so far, with features."""
    from tests.app.conftest import goto
    from ui.reports import merged_explanations

    goto(app, "recommend")
    app.text_area(key="q_text").input("quiet folk guitar")
    app.button(key="q_submit").click().run()
    goto(app, "explain")
    explanations = app.session_state["explanations"]
    merged = merged_explanations(explanations, id(app.session_state["encoded"]))
    top = app.session_state["result"].items[0].item_id
    assert list(merged) == [top]
    assert not merged[top].feature_shap.empty and merged[top].modality_shapley


def test_report_without_a_query_ranks_the_tours_sample_sentence(app_env, capsys, tmp_path):
    import yaml

    from core.store.paths import REPO_ROOT

    tour = yaml.safe_load((REPO_ROOT / "assets/tours/demo.yaml").read_text(encoding="utf-8"))
    sentence = next(s["text"] for step in tour["steps"] for s in step.get("stages", []) if s.get("text"))
    out = tmp_path / "sample.html"
    assert main(["report", "--catalog", "demo", "--explain", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"the tour's sample sentence {sentence!r}" in printed and "1 explained" in printed
    assert html_escaped(sentence) in out.read_text(encoding="utf-8")
