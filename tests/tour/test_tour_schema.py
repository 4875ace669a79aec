"""Tour files are checked whole against the declared schema before anything runs: types and ranges of every
field, size and nesting bounded, YAML aliases refused (a billion-laughs file costs nothing), every problem
named with its step and field."""
from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

from core.tour.schema import MAX_TOUR_BYTES, TOURS_DIR, TourError, load_tour, parse_tour


def billion_laughs(levels: int = 8) -> str:
    """The 638-byte kind of file: each anchor a list of nine aliases of the one before, used as a title."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(levels):
        prev, name = chr(97 + i), chr(98 + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines += ["steps:", "  - kind: catalog", f"    title: *{chr(97 + levels)}"]
    return "\n".join(lines) + "\n"


def test_the_shipped_tour_fits_the_schema() -> None:
    tour = load_tour(TOURS_DIR / "demo.yaml")
    assert [s.kind for s in tour.steps] == ["catalog", "query", "explain", "feedback", "proof", "import"]
    assert tour.steps[0].options == {"covers": 12, "clip": "T0002"}
    assert tour.steps[3].options == {"like": [1, 2], "dislike": [3]}
    assert [st.image for st in tour.steps[1].stages] == [None, "T0003", None]


def test_billion_laughs_is_refused_fast_with_tiny_memory() -> None:
    text = billion_laughs()
    assert len(text) < 700
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(TourError, match=r"line 2: YAML aliases \(\*a\) are not allowed"):
            parse_tour(text, "laughs.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1 and peak < 5 * 2 ** 20  # refused before any expansion


@pytest.mark.parametrize("step, fragment", [
    ("{kind: catalog, title: C, covers: abc}", "step 1 (C), field covers: expected a number of covers from 0 to 48"),
    ("{kind: catalog, title: C, covers: .inf}", "field covers: expected a number of covers"),
    ("{kind: catalog, title: C, covers: 1000000}", "field covers"),
    ("{kind: catalog, title: C, clip: [1, 2]}", "step 1 (C), field clip: expected an item id"),
    ("{kind: explain, title: E, item: -100}", "step 1 (E), field item: a rank goes from 1 to 100, got -100"),
    ("{kind: explain, title: E, item: 2.5}", "field item: expected a rank (1 to 100) or an item id"),
    ("{kind: feedback, title: F, like: [1, .nan]}", "step 1 (F), field like: expected a rank"),
    ("{kind: query, title: Q, stages: [{text: 123}]}", "step 1 (Q), stage 1, field text: expected text, got 123"),
    ("{kind: query, title: Q, stages: [{label: x}]}", "step 1 (Q), stage 1: give text, image or audio"),
    ("{kind: query, title: Q, stages: abc}", "field stages: a query step needs a list of stages"),
    ("{kind: query, title: Q, k: 100000, stages: [{text: a}]}", "field k: expected a whole number from 1 to 100"),
    ("{kind: proof, title: P, metric: 5}", "field metric: expected a metric at K"),
    ("{kind: proof, title: P, metric: evil@10}", "field metric: expected a metric at K"),
    ("{kind: proof, title: P, metric: ndcg@100000}", "field metric: expected a metric at K"),
    ("{kind: proof, title: P, listeners: 1e9}", "field listeners: expected a whole number from 1 to 500"),
    ("{kind: proof, title: P, faithfulness: maybe}", "field faithfulness: expected true or false"),
    ("{kind: catalog, title: 2024-01-01}", "step 1 (catalog), field title: expected text, got date (put it in quotes)"),
    ("{kind: catalog, title: C, narration: {a: b}}", "field narration: expected text, got dict"),
    ("{kind: catalog, title: C, colour: red}",
     "step 1 (C): unknown field 'colour' (a catalog step takes title, narration, notes, covers, clip)"),
    ("{kind: import, title: I, stages: [{text: a}]}",
     "unknown field 'stages' (an import step takes title, narration, notes)"),
    ("{kind: dance, title: D}", "step 1 (D): unknown kind 'dance'"),
    ("7", "step 1: expected a mapping"),
])
def test_each_problem_names_its_step_and_field(step: str, fragment: str) -> None:
    with pytest.raises(TourError) as e:
        parse_tour(f"title: Hostile\nsteps:\n  - {step}\n", "hostile.yaml")
    assert "hostile.yaml" in str(e.value) and fragment in str(e.value), str(e.value)


def test_every_problem_of_a_file_is_listed_at_once() -> None:
    text = """title: 5
steps:
  - {kind: catalog, title: One, covers: abc}
  - {kind: query, title: Two, stages: [{text: 123}]}
  - {kind: feedback, title: Three, like: [0]}
"""
    with pytest.raises(TourError) as e:
        parse_tour(text)
    message = str(e.value)
    assert "(4 problems)" in message
    for fragment in ("the tour, field title", "step 1 (One), field covers", "step 2 (Two), stage 1, field text",
                     "step 3 (Three), field like"):
        assert fragment in message


def test_size_and_nesting_are_bounded(tmp_path: Path) -> None:
    big = "title: x\nsteps:\n  - {kind: import, title: I}\n#" + "x" * MAX_TOUR_BYTES
    with pytest.raises(TourError, match="over the 256 KB limit"):
        parse_tour(big)
    with pytest.raises(TourError, match="over the 256 KB limit"):
        parse_tour(big.encode())
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(TourError, match="over the 256 KB limit"):
        load_tour(path)
    deep_yaml = "steps: " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(TourError, match="nested more than 6 levels deep"):
        parse_tour(deep_yaml)
    deep_json = '{"steps": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(TourError, match="nested more than 6 levels deep"):
        parse_tour(deep_json, "deep.json")
    with pytest.raises(TourError, match="nested 7 levels deep"):
        parse_tour(json.dumps({"steps": [{"kind": "import", "title": "I", "x": [[[[1]]]]}]}), "seven.json")
    with pytest.raises(TourError, match="not UTF-8"):
        parse_tour(b"steps:\n  - {kind: import, title: \xff}\n")
    with pytest.raises(TourError, match="not valid YAML"):
        parse_tour("steps: [\n")


def test_object_tags_stay_refused() -> None:
    with pytest.raises(TourError, match="not valid YAML"):
        parse_tour("steps:\n  - !!python/object/apply:os.system ['true']\n")


def test_numbers_name_item_ids_where_only_an_id_fits() -> None:
    tour = parse_tour("steps:\n  - {kind: catalog, title: C, clip: 5, covers: [7, T1]}\n"
                      "  - {kind: query, title: Q, stages: [{image: 12}]}\n")
    assert tour.steps[0].options == {"clip": "5", "covers": ["7", "T1"]}
    assert tour.steps[1].stages[0].image == "12"
