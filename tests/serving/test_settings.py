"""The serving settings: validated when made, saved as JSON and read back, unreadable files fall back to the
defaults with a warning, "auto" picks the index by them, and the protocol card says them in words."""
from __future__ import annotations

import json
import logging

import pytest

from core.serving.index import resolve_kind
from core.serving.settings import SETTINGS_FILE, ServingSettings, load_settings, ranking_card, save_settings


def test_settings_round_trip_through_json(tmp_path):
    settings = ServingSettings(whatif_candidates=123, term_candidates=0, whatif_max_share=0.5,
                               auto_exact_below=10, auto_ann="hnsw", linearity_tolerance=1e-4)
    save_settings(tmp_path, settings)
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["whatif_candidates"] == 123
    assert load_settings(tmp_path) == settings
    assert load_settings(tmp_path / "elsewhere") is None  # no file: the caller uses the defaults


@pytest.mark.parametrize("changes, named", [({"whatif_candidates": -1}, "whatif_candidates"),
                                            ({"whatif_max_share": 1.5}, "whatif_max_share"),
                                            ({"auto_ann": "annoy"}, "auto_ann"),
                                            ({"index_sample": 0}, "index_sample")])
def test_bad_settings_are_refused_by_name(changes, named):
    with pytest.raises(ValueError, match=named):
        ServingSettings(**changes)


def test_an_unreadable_settings_file_falls_back_to_the_defaults_with_a_warning(tmp_path, caplog):
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"whatif_candidates": 5, "no_such_knob": 1}))
    with caplog.at_level(logging.WARNING, logger="core.serving.settings"):
        assert load_settings(tmp_path) is None
    assert "no_such_knob" in caplog.text and "defaults" in caplog.text
    (tmp_path / SETTINGS_FILE).write_text("{not json")
    assert load_settings(tmp_path) is None
    assert (tmp_path / SETTINGS_FILE).read_text() == "{not json"  # nothing is overwritten


def test_auto_picks_the_index_by_the_settings():
    assert resolve_kind("auto", 49_999) == "exact" and resolve_kind("auto", 50_000) == "ivf"
    small = ServingSettings(auto_exact_below=100, auto_ann="hnsw")
    assert resolve_kind("auto", 99, small) == "exact" and resolve_kind("auto", 100, small) == "hnsw"
    assert resolve_kind("ivf", 10, small) == "ivf"
    with pytest.raises(ValueError, match="unknown"):
        resolve_kind("annoy", 10)


def test_the_ranking_card_says_the_path_and_the_counts_in_words():
    exact = ranking_card("exact", 3000, ServingSettings(), 0, 0)
    assert exact["ranked by"] == "exact: every item scored"
    assert exact["index"].startswith("exact (3,000 items, below the 50,000")
    assert "what-if re-rank" not in exact  # no approximate index: nothing is re-ranked
    assert exact["what-if formula checked"] == "on 512 items, relative tolerance 0.001"
    chosen = ranking_card("ivf+exact re-rank", 80_000, ServingSettings(), 1000, 0)
    assert chosen["ranked by"] == "IVF candidates, re-ranked exactly"
    assert chosen["what-if re-rank"] == ("what-if weights: the index's top 1,000 candidates re-ranked exactly "
                                         "(chosen by recall when the index was built)")
    assert chosen["upload re-rank"] == "every item scored exactly for uploads"
    assert chosen["counts chosen for"] == "recall@10 ≥ 0.97 on sample queries, at most 2% of the catalog"
    fixed = ranking_card("ivf", 80_000, ServingSettings(term_candidates=300), 1000, 0)
    assert fixed["upload re-rank"] == ("uploads: the index's top 300 candidates re-ranked exactly (set in the "
                                       "serving settings)")
