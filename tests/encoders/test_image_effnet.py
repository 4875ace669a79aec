"""EfficientNet-Lite0: verified bundled weights mapped onto timm, 1280-d unit features, a sensible ImageNet head."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from core.encoders.base import Encoder
from core.encoders.image_effnet import EfficientNetLite0Encoder, default_weights_path, map_state_dict_by_position
from core.errors import ChecksumError, EncoderError
from tests.encoders.conftest import flip_byte

BUILDINGS = {"palace", "monastery", "church, church building", "bell cote, bell cot", "castle", "stupa, tope",
             "mosque", "dome", "boathouse", "triumphal arch", "library", "cinema, movie theater, movie theatre"}
PLANTS = {"daisy", "yellow lady's slipper, yellow lady-slipper, Cypripedium calceolus, Cypripedium parviflorum",
          "pot, flowerpot", "rapeseed", "cardoon", "hip, rose hip, rosehip", "buckeye, horse chestnut, conker",
          "corn", "ear, spike, capitulum", "acorn", "strawberry", "artichoke, globe artichoke"}


@pytest.fixture(scope="module")
def samples() -> list[Image.Image]:
    return [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]


def test_features_are_unit_1280_and_deterministic(effnet_encoder, samples, tmp_path):
    assert isinstance(effnet_encoder, Encoder)
    assert effnet_encoder.id == "timm/tf_efficientnet_lite0@57934424" and effnet_encoder.dim == 1280
    path = tmp_path / "china.png"
    samples[0].save(path)
    a = effnet_encoder.encode(samples)
    b = effnet_encoder.encode([path, path.read_bytes()])  # a path and raw bytes give the same vector
    assert a.shape == (2, 1280) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(b[0], a[0], atol=1e-5)
    np.testing.assert_allclose(b[1], a[0], atol=1e-5)
    assert float(a[0] @ a[1]) < 0.9  # a temple and a flower are not the same picture


def test_imagenet_head_names_what_it_sees(effnet_encoder, samples):
    china, flower = effnet_encoder.classify(samples, top=5)
    print("china.jpg:", china, "\nflower.jpg:", flower)
    assert len(china) == 5 and all(0 <= p <= 1 for _, p in china)
    assert [p for _, p in china] == sorted((p for _, p in china), reverse=True)
    assert china[0][0] in BUILDINGS and sum(label in BUILDINGS for label, _ in china) >= 3
    assert flower[0][0] in PLANTS


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "efficientnet-lite0.pth"
    shutil.copyfile(default_weights_path(), copy)
    flip_byte(copy, 500_000)
    with pytest.raises(ChecksumError, match="tampered"):
        EfficientNetLite0Encoder(weights=copy)


def test_position_mapping_refuses_other_shapes():
    target = {"a.weight": torch.zeros(3, 4), "a.bias": torch.zeros(3)}
    assert list(map_state_dict_by_position({"x": torch.ones(3, 4), "y": torch.ones(3)}, target, "f")) == \
        ["a.weight", "a.bias"]
    with pytest.raises(EncoderError, match=r"tensor #1 'y' has shape \(4,\)"):
        map_state_dict_by_position({"x": torch.ones(3, 4), "y": torch.ones(4)}, target, "f")
    with pytest.raises(EncoderError, match="holds 1 tensors"):
        map_state_dict_by_position({"x": torch.ones(3, 4)}, target, "f")
