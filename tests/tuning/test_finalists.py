"""core.tuning.finalists: the final choice among a search's best trials by the final model's mean validation
figure over seeds."""
from __future__ import annotations

import pytest

from core.models.fusion.config import FusionConfig
from core.tuning import space
from core.tuning.finalists import best_trials, choose_finalist


def _trial(number: int, value: float | None, state: str = "complete", **params) -> dict:
    return {"number": number, "value": value, "state": state, "params": {"lr": 0.01, "dim": 64, **params}}


HISTORY = [_trial(0, 0.250, lr=0.01), _trial(1, 0.262, lr=0.02), _trial(2, 0.300, state="pruned", lr=0.03),
           _trial(3, 0.259, lr=0.04), _trial(4, None, state="failed", lr=0.05), _trial(5, 0.262, lr=0.02),
           _trial(6, 0.261, lr=0.06)]


def test_the_best_completed_trials_once_each_best_first() -> None:
    # the pruned trial's .300 is a figure after a few epochs, not a finished trial; trial 5 repeats trial 1
    finalists = best_trials(HISTORY, 3)
    assert [f.trial for f in finalists] == [1, 6, 3]
    assert [f.search_value for f in finalists] == [0.262, 0.261, 0.259]
    assert [f.trial for f in best_trials(HISTORY, 10)] == [1, 6, 3, 0]
    with pytest.raises(ValueError, match="finalists=0"):
        best_trials(HISTORY, 0)


def test_the_highest_mean_over_seeds_wins_and_every_figure_is_recorded() -> None:
    # a known answer: the search's third trial (lr .04) is the best final model on the mean of its seeds
    final = {(0.02, 0): 0.270, (0.02, 1): 0.266, (0.06, 0): 0.268, (0.06, 1): 0.262,
             (0.04, 0): 0.269, (0.04, 1): 0.271}
    calls = []

    def fit_value(config: FusionConfig, _data) -> float:
        calls.append((config.lr, config.seed))
        return final[(config.lr, config.seed)]

    base = FusionConfig(seed=7, valid_metric="ndcg@20")
    lines: list[str] = []
    config, record = choose_finalist(None, base, HISTORY, fit_value=fit_value, k=3, seeds=(0, 1), log=lines.append)
    assert calls == [(0.02, 0), (0.02, 1), (0.06, 0), (0.06, 1), (0.04, 0), (0.04, 1)]
    assert config == space.apply(base, HISTORY[3]["params"])  # the base's own seed is kept
    assert record["chosen_trial"] == 3 and record["chosen_mean"] == pytest.approx(0.270)
    assert record["chosen_search_value"] == 0.259
    assert [f["trial"] for f in record["finalists"]] == [1, 6, 3]
    assert record["finalists"][0]["per_seed"] == {"0": 0.27, "1": 0.266}
    assert record["finalists"][0]["mean"] == pytest.approx(0.268)
    assert record["seeds"] == [0, 1] and "collaborative term included" in record["metric"]
    assert lines[-1].startswith("chosen: trial 3") and "the search's best was trial 1" in lines[-1]


def test_equal_means_keep_the_search_order() -> None:
    config, record = choose_finalist(None, FusionConfig(), HISTORY, fit_value=lambda c, d: 0.25, k=2, seeds=(0,))
    assert record["chosen_trial"] == 1 and config.lr == 0.02


def test_nothing_to_choose_from_is_refused() -> None:
    with pytest.raises(ValueError, match="no completed trial"):
        choose_finalist(None, FusionConfig(), [_trial(0, 0.3, state="pruned")], fit_value=lambda c, d: 0.0)
    with pytest.raises(ValueError, match="at least one seed"):
        choose_finalist(None, FusionConfig(), HISTORY, seeds=(), fit_value=lambda c, d: 0.0)


def test_the_tuned_line_says_how_the_configuration_was_chosen() -> None:
    from types import SimpleNamespace

    from core.tuning import describe

    _, record = choose_finalist(None, FusionConfig(), HISTORY, fit_value=lambda c, d: 0.2745, k=2, seeds=(0, 1))
    tuned = SimpleNamespace(metric={"name": "ndcg@20", "value": 0.262, "trials": 7, "finalists": record},
                            history=HISTORY, created_at=0)
    assert describe(tuned) == ("tuned on validation: ndcg@20 0.2620 after 7 trials; chosen among its 2 best by the "
                               "final model's mean over seeds [0, 1] (0.2745) (?)")
    del tuned.metric["finalists"]
    assert describe(tuned) == "tuned on validation: ndcg@20 0.2620 after 7 trials (?)"


def test_the_finalist_options_are_checked_in_one_place() -> None:
    from core.tuning.finalists import finalist_options

    assert finalist_options(3, "0,1, 2") == (0, 1, 2)
    assert finalist_options(1, "") == ()  # no final choice: no seeds needed
    for k, text, message in ((0, "0", "--finalists 0: give at least 1"),
                             (2, "0,x", "--finalist-seeds '0,x': give whole numbers separated by commas"),
                             (2, " , ", "--finalist-seeds: give at least one seed")):
        with pytest.raises(ValueError, match=message):
            finalist_options(k, text)


def test_a_failed_final_fit_leaves_that_finalist_out_and_the_others_are_compared() -> None:
    from core.tuning.finalists import NoFinalistFitted, choose_among

    def fit(params: dict, seed: int) -> float:
        if params["lr"] == 0.02 and seed == 1:
            raise ArithmeticError("the loss diverged")
        return {0.02: 0.30, 0.06: 0.26, 0.04: float("nan")}[params["lr"]]

    lines: list[str] = []
    params, record = choose_among(HISTORY, fit=fit, k=3, seeds=(0, 1), metric="ndcg@20", described="d",
                                  log=lines.append)
    # trial 1 (lr .02) failed on seed 1 and trial 3 (lr .04) gave no finite figure: trial 6 is chosen
    assert params["lr"] == 0.06 and record["chosen_trial"] == 6
    failed = {f["trial"]: f for f in record["finalists"] if "error" in f}
    assert set(failed) == {1, 3} and failed[1]["mean"] is None
    assert failed[1]["error"] == "seed 1: the loss diverged" and failed[1]["per_seed"] == {"0": 0.3}
    assert any("trial 1): the final fit failed (seed 1: the loss diverged); left out" in line for line in lines)
    with pytest.raises(NoFinalistFitted, match="every finalist's final fit failed"):
        choose_among(HISTORY, fit=lambda p, s: float("nan"), k=2, seeds=(0,), metric="ndcg@20", described="d")
