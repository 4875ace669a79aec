"""The studio's figure builders and small HTML components, on hand-made data."""
from __future__ import annotations

import pandas as pd
import pytest

from core.report.figures import HISTORY_COLOR
from ui import charts
from ui.theme import MODALITY_COLORS, NEUTRAL, modality_bar, rank_change


def test_waterfall_runs_from_base_to_score_in_modality_colours():
    fig = charts.shapley_waterfall(0.10, {"audio": 0.30, "text": -0.05, "image": 0.15}, 0.50)
    trace = fig.data[0]
    # canonical order text, image, audio whatever order the values came in
    assert list(trace.x) == ["base (no modality)", "Text", "Image", "Audio", "score"]
    assert trace.y[0] == 0.10 and trace.y[-1] == 0.50
    assert trace.y[0] + sum(trace.y[1:-1]) == pytest.approx(trace.y[-1])
    # each step starts where the one before ended
    assert list(trace.base[1:4]) == pytest.approx([0.10, 0.05, 0.20])
    # bars in the modality colours; the sign is in the label and the hatching, not in the colour
    colors = list(trace.marker.color)
    assert colors[1:4] == [MODALITY_COLORS["text"], MODALITY_COLORS["image"], MODALITY_COLORS["audio"]]
    assert list(trace.marker.pattern.shape)[1:4] == ["/", "", ""]
    assert list(trace.text)[1:4] == ["−0.050", "+0.150", "+0.300"]


def test_waterfall_draws_the_prior_as_its_own_neutral_bar():
    fig = charts.shapley_waterfall(0.0, {"text": 0.4, "audio": -0.1}, 0.42, terms={"prior": 0.12},
                                   term_labels={"prior": "popularity prior × 0.20"})
    trace = fig.data[0]
    assert list(trace.x) == ["base (no modality)", "Text", "Audio", "popularity prior × 0.20", "score"]
    assert trace.marker.color[3] == NEUTRAL and trace.marker.color[3] not in MODALITY_COLORS.values()
    assert trace.base[3] == pytest.approx(0.3) and trace.y[3] == pytest.approx(0.12)
    assert sum(trace.y[:-1]) == pytest.approx(trace.y[-1])


def test_waterfall_draws_listening_history_as_its_own_bar():
    fig = charts.shapley_waterfall(0.40, {"audio": 0.30, "text": -0.05}, 0.65, history=0.25)
    trace = fig.data[0]
    assert len(trace.x) == 5 and trace.x[0] == "item offset" and "listening history" in trace.x[1]
    assert trace.marker.color[1] == HISTORY_COLOR and trace.base[1] == pytest.approx(0.15)
    assert trace.y[0] == pytest.approx(0.15) and trace.y[1] == pytest.approx(0.25)
    assert sum(trace.y[:-1]) == pytest.approx(trace.y[-1])


def test_tuning_chart_marks_pruned_trials_and_the_best_so_far():
    history = [{"number": 0, "state": "complete", "value": 0.20, "epochs": 9, "seconds": 3.0},
               {"number": 1, "state": "pruned", "value": 0.10, "epochs": 2, "seconds": 0.5},
               {"number": 2, "state": "complete", "value": 0.30, "epochs": 9, "seconds": 3.0},
               {"number": 3, "state": "failed", "value": None}]
    fig = charts.tuning_search_fig(history, "ndcg@20")
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["complete"].x) == [0, 2] and list(by_name["pruned"].x) == [1]
    assert by_name["pruned"].marker.symbol == "x"
    assert list(by_name["best so far"].y) == [0.20, 0.20, 0.30]


def test_modality_bar_widths_are_shares_in_modality_colours():
    html = modality_bar({"text": 1.0, "image": 3.0, "audio": 0.0})
    assert "width:25.0%" in html and "width:75.0%" in html
    assert MODALITY_COLORS["text"] in html and MODALITY_COLORS["image"] in html
    assert MODALITY_COLORS["audio"] not in html  # a zero share draws nothing


@pytest.mark.parametrize("rank,previous,had,expected", [
    (1, 4, True, "↑3"), (5, 3, True, "↓2"), (2, 2, True, "="), (3, None, True, "new"), (3, 1, False, "")])
def test_rank_change_badge(rank, previous, had, expected):
    badge = rank_change(rank, previous, had)
    assert (expected in badge) if expected else badge == ""


def test_feature_bar_keeps_the_largest_by_magnitude():
    frame = pd.DataFrame({"modality": ["audio", "image", "audio", "image"],
                          "group": ["rhythm", "colour", "timbre", "light"],
                          "feature": ["tempo", "blue share", "mfcc 1 mean", "brightness mean"],
                          "value": [120.0, 0.4, -3.0, 0.5], "shap": [0.30, -0.20, 0.01, 0.05]})
    fig = charts.feature_shap_bar(frame, top=2)
    assert list(fig.data[0].x) == [-0.20, 0.30]  # ascending so the largest is drawn on top
    assert fig.data[0].marker.color == (MODALITY_COLORS["image"], MODALITY_COLORS["audio"])
    groups = charts.group_shap_bar(frame)
    assert sum(groups.data[0].x) == pytest.approx(0.16)


def test_token_html_shades_by_sign_and_escapes():
    html = charts.token_html([("calm", 0.2), ("<b>", -0.1)])
    assert "&lt;b&gt;" in html and "16,185,129" in html and "239,68,68" in html
    assert charts.token_pairs(pd.DataFrame({"token": ["a"], "shap": [0.5]})) == [("a", 0.5)]
    assert charts.token_pairs(None) == []


def test_metric_bars_have_asymmetric_ci():
    frame = pd.DataFrame({"label": ["a", "b"], "metric": ["recall", "recall"], "k": [10, 10],
                          "value": [0.3, 0.2], "lo": [0.25, 0.18], "hi": [0.32, 0.27], "kind": ["fusion", "baseline"]})
    fig = charts.metric_bars_ci(frame, "recall", 10)
    assert list(fig.data[0].x) == ["a", "b"]
    assert list(fig.data[0].error_y.array) == pytest.approx([0.02, 0.07])
    assert list(fig.data[0].error_y.arrayminus) == pytest.approx([0.05, 0.02])


def test_paired_differences_mark_intervals_clear_of_zero():
    from ui.theme import NEGATIVE, POSITIVE

    frame = pd.DataFrame({"name": ["auc", "ndcg@10", "recall@10"], "difference": [0.09, 0.01, -0.03],
                          "lo": [0.07, -0.01, -0.05], "hi": [0.11, 0.03, -0.01]})
    fig = charts.paired_difference_fig(frame, "itemknn", "fusion")
    trace = fig.data[0]
    assert list(trace.y) == ["recall@10", "ndcg@10", "auc"]  # the first row on top
    assert list(trace.marker.color) == [NEGATIVE, "#94a3b8", POSITIVE]  # below, across, above zero
    assert list(trace.error_x.array) == pytest.approx([0.02, 0.02, 0.02])
    assert list(trace.error_x.arrayminus) == pytest.approx([0.02, 0.02, 0.02])
    assert "fusion − itemknn" in fig.layout.title.text


def _hue_and_chroma(colour: str) -> tuple[float, float]:
    import colorsys

    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360, max(r, g, b) - min(r, g, b)


def test_run_and_category_colours_stay_clear_of_the_modality_hues():
    from core.report.figures import CATEGORY_PALETTE, RUN_PALETTE

    modality_hues = [_hue_and_chroma(c)[0] for c in MODALITY_COLORS.values()]
    for colour in {*RUN_PALETTE, *CATEGORY_PALETTE}:
        hue, chroma = _hue_and_chroma(colour)
        distance = min(min(abs(hue - m), 360 - abs(hue - m)) for m in modality_hues)
        assert chroma < 0.2 or distance >= 20, (colour, hue, distance)  # a grey, or a hue no modality has
    assert not {c.upper() for c in (*RUN_PALETTE, *CATEGORY_PALETTE)} & {c.upper() for c in MODALITY_COLORS.values()}


def test_a_model_keeps_its_colour_whatever_runs_are_beside_it():
    """The Tour (no colours given), Evaluate (labels and kinds) and the report colour a model alike."""
    import pandas as pd

    from core.report.figures import run_colors

    alone = run_colors(["popularity", "fusion-gated"])
    other = run_colors(["bprmf", "itemknn", "popularity", "fusion-gated"], ["", "", "", "fusion"])
    assert alone["popularity"] == other["popularity"] and alone["fusion-gated"] == other["fusion-gated"]
    assert len(set(other.values())) == 4
    twice = run_colors(["popularity · 12-07 10:00", "popularity · 12-07 11:00"])
    assert len(set(twice.values())) == 2 and alone["popularity"] in twice.values()

    def bar_colours(labels, colors=None):
        long = pd.DataFrame({"label": labels, "metric": "recall", "k": 20, "value": [0.3, 0.2, 0.1][:len(labels)],
                             "lo": 0.0, "hi": 0.4})
        bars = charts.metric_bars_ci(long, "recall", 20, colors).data[0]
        return dict(zip(bars.x, bars.marker.color))

    tour = bar_colours(["fusion-gated", "popularity"])
    evaluate = bar_colours(["ease", "fusion-gated", "popularity"],
                           run_colors(["ease", "fusion-gated", "popularity"], ["", "fusion", ""]))
    assert tour["fusion-gated"] == evaluate["fusion-gated"] and tour["popularity"] == evaluate["popularity"]


def test_map_categories_use_the_category_palette():
    import pandas as pd

    from core.report.figures import CATEGORY_PALETTE

    frame = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": [0.0, 1, 0, 1], "title": list("abcd"), "item_id": list("abcd"),
                          "genre": ["jazz", "folk", "jazz", "techno"]})
    fig = charts.embedding_scatter(frame, "genre", "map")
    assert {t.marker.color for t in fig.data} <= set(CATEGORY_PALETTE) and len(fig.data) == 3


def _legend_clear_of_title_and_axes(fig) -> bool:
    """The legend stands right of the plot (x ≥ 1, left-anchored) or at the figure's foot in container
    coordinates: never above the plot where the title is, never over the plot and its axes."""
    legend = fig.layout.legend
    right = legend.x is not None and legend.x >= 1 and legend.xanchor == "left"
    foot = legend.yref == "container" and legend.y == 0 and legend.yanchor == "bottom"
    return right or foot


def test_legends_stay_clear_of_titles_and_axes():
    import pandas as pd

    long = pd.DataFrame({"label": ["fusion-gated", "popularity"] * 2, "metric": "recall", "k": [10, 10, 20, 20],
                         "value": [0.3, 0.2, 0.4, 0.3], "lo": [0.2, 0.1, 0.3, 0.2], "hi": [0.4, 0.3, 0.5, 0.4]})
    curves = pd.DataFrame({"label": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "loss": [1.0, 0.5, 1.2, 0.7],
                           "valid_metric": [0.1, 0.2, 0.1, 0.15]})
    scatter = pd.DataFrame({"x": [0.0, 1, 2], "y": [0.0, 1, 0], "title": list("abc"), "item_id": list("abc"),
                            "genre": ["jazz", "folk", "jazz"]})
    figures = {
        "metric lines": charts.metric_at_k_lines(long, "recall"),
        "modality shares": charts.modality_shares_bar({"gate weights (model)": {"text": 0.5, "image": 0.3,
                                                                                "audio": 0.2}}, "shares"),
        "training curves": charts.training_curves_fig(curves),
        "map": charts.embedding_scatter(scatter, "genre", "map"),
        "search": charts.tuning_search_fig([{"number": 0, "value": 0.1, "state": "complete"},
                                            {"number": 1, "value": 0.05, "state": "pruned"}]),
    }
    for name, fig in figures.items():
        assert fig.layout.showlegend is not False, name
        assert _legend_clear_of_title_and_axes(fig), (name, fig.layout.legend)
    assert figures["map"].layout.legend.title.text == "genre"
    # the training chart's right edge is its validation axis: the legend goes to the foot, with room kept
    curves_fig = figures["training curves"]
    assert curves_fig.layout.legend.yref == "container" and curves_fig.layout.margin.b >= 70


def test_metric_charts_say_what_the_metric_means():
    import pandas as pd

    long = pd.DataFrame({"label": ["a", "b"], "metric": "recall", "k": 20, "value": [0.3, 0.2], "lo": 0.1,
                         "hi": 0.4})
    bars = charts.metric_bars_ci(long, "recall", 20)
    assert bars.layout.title.text == "recall@20 with 95% CI"
    assert "held-out tracks found in the top 20" in bars.layout.title.subtitle.text
    assert "ranked higher counting more" in charts.metric_at_k_lines(long.assign(metric="ndcg"),
                                                                     "ndcg").layout.title.subtitle.text
    assert charts.metric_bars_ci(long.assign(metric="auc"), "auc", 20).layout.title.subtitle.text in ("", None)
