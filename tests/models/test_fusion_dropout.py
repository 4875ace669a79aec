"""Dropout masks drawn ahead on a second thread: the same noise, the same trained weights and the same generator
state afterwards as torch's own dropout, for every kind of head and step."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from core.models.fusion import train as fusion_train
from core.models.fusion.config import FusionConfig
from core.models.fusion.dropout import DrawnAhead, HeadDropout, drawn_ahead
from core.models.fusion.recommender import FusionRecommender
from tests.models.test_fusion import FAST, make_data


def test_head_dropout_draws_what_torch_dropout_draws_and_leaves_the_generator_alike() -> None:
    shapes = [(7, 5), (7, 3), (2, 11)]
    x = [torch.randn(s) for s in shapes]
    torch.manual_seed(3)
    plain = nn.Dropout(0.3).train()
    expected = [plain(t) for _ in range(4) for t in x]  # four steps
    after_plain = torch.rand(4)

    torch.manual_seed(3)
    head = HeadDropout(0.3).train()
    with drawn_ahead(shapes, 0.3) as source:
        source.allow(4)
        got = [head(t) for _ in range(4) for t in x]
    after_ahead = torch.rand(4)  # nothing past the four allowed steps was drawn
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(after_ahead, after_plain, rtol=0, atol=0)


def test_a_training_that_fails_part_way_gives_unused_draws_back() -> None:
    torch.manual_seed(5)
    expected = [torch.empty(6, 4).bernoulli_(0.5) * 2 for _ in range(2)]
    after_plain = torch.rand(3)
    torch.manual_seed(5)
    source = DrawnAhead([(6, 4)], 0.5)
    source.allow(10)  # ten steps said, two taken, then the training stops
    got = [source.next(torch.Size([6, 4])) for _ in range(2)]
    source.close()
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(torch.rand(3), after_plain, rtol=0, atol=0)


def test_a_call_of_another_shape_or_not_allowed_is_refused_and_the_thread_stops() -> None:
    source = DrawnAhead([(4, 2)], 0.5)
    with pytest.raises(RuntimeError, match="did not allow"):
        source.next(torch.Size([4, 2]))
    source.allow(1)
    with pytest.raises(RuntimeError, match=r"shape \(3, 2\) met a mask drawn for \(4, 2\)"):
        source.next(torch.Size([3, 2]))
    source.close()
    assert not source._thread.is_alive()
    with pytest.raises(ValueError, match="0 < p < 1"):
        DrawnAhead([(4, 2)], 0.0)


def test_eval_mode_and_no_source_are_plain_dropout() -> None:
    x = torch.randn(5, 4)
    head = HeadDropout(0.5)
    with drawn_ahead([(5, 4)], 0.5):
        torch.testing.assert_close(head.eval()(x), x, rtol=0, atol=0)  # evaluation draws nothing
    torch.manual_seed(1)
    a = head.train()(x)
    torch.manual_seed(1)
    torch.testing.assert_close(a, nn.Dropout(0.5).train()(x), rtol=0, atol=0)


@pytest.mark.parametrize("extra", [
    dict(strategy="gated", hidden=32, dropout=0.3),
    dict(strategy="weighted", hidden=0, dropout=0.2, loss="full-softmax"),
    dict(strategy="adversarial", hidden=16, dropout=0.5, use_item_id=True, graph_layers=1),
    dict(strategy="concat", hidden=0, dropout=0.1, user_mode="both"),
])
def test_training_gives_the_same_weights_bit_for_bit(monkeypatch, extra) -> None:
    data, _ = make_data()
    config = dataclasses.replace(FusionConfig(**{**FAST, "epochs": 4, "patience": 4}), collaborative="none",
                                 **extra)
    weights, after = [], []
    for ahead in (True, False):
        monkeypatch.setattr(fusion_train, "DRAW_DROPOUT_AHEAD", ahead)
        model = FusionRecommender(config).fit(data)
        weights.append({k: v.clone() for k, v in model.net.state_dict().items()})
        after.append(torch.rand(3))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0, msg=key)
    torch.testing.assert_close(after[0], after[1], rtol=0, atol=0)
