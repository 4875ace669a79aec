"""The embedding cache: exact round trips keyed by encoder and content, persistence, and a warm pass that
never calls the encoder."""
from __future__ import annotations

import numpy as np
import pytest

from core.catalog.model import Catalog, Item
from core.encoders.cache import EmbeddingCache, bytes_key, file_key, text_key
from core.encoders.pipeline import encode_catalog


class CountingTextEncoder:
    """A deterministic fake text encoder that counts the texts it is asked to encode."""

    id = "test/counting@1"
    dim = 8
    modality = "text"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, batch):
        self.calls += len(batch)
        rows = [np.random.default_rng(list(t.encode())).standard_normal(self.dim) for t in batch]
        out = np.asarray(rows, np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_round_trip_is_exact_and_keyed_by_encoder(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    cache.put_many("enc-a", ["k1", "k2", "k3"], vectors)
    found = cache.get_many("enc-a", ["k3", "k1", "nope", "k1"])
    assert set(found) == {"k1", "k3"}
    np.testing.assert_array_equal(found["k1"], vectors[0])
    np.testing.assert_array_equal(found["k3"], vectors[2])
    assert cache.get_many("enc-b", ["k1"]) == {}
    cache.put_many("enc-a", ["k1"], {"k1": np.ones(5, np.float32)})  # replacing a key overwrites it
    again = EmbeddingCache(tmp_path)  # a new instance reads what the first one wrote
    np.testing.assert_array_equal(again.get_many("enc-a", ["k1"])["k1"], np.ones(5))
    assert again.count("enc-a") == 3 and again.count() == 3
    again.clear("enc-a")
    assert again.count() == 0


def test_many_keys_are_looked_up_in_batches(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = [f"key-{i}" for i in range(1_234)]  # more than one SELECT's worth of parameters
    cache.put_many("enc", keys, np.arange(1_234 * 2, dtype=np.float32).reshape(-1, 2))
    found = cache.get_many("enc", keys)
    assert len(found) == 1_234 and found["key-1233"].tolist() == [2466.0, 2467.0]


def test_put_many_refuses_misaligned_rows(tmp_path):
    with pytest.raises(ValueError, match="one row per key"):
        EmbeddingCache(tmp_path).put_many("enc", ["a", "b"], np.zeros((3, 2), np.float32))


def test_content_keys(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("héllo".encode())
    assert file_key(path) == text_key("héllo") == bytes_key("héllo".encode())
    assert text_key("a") != text_key("b")


def test_second_pass_is_served_from_the_cache(tmp_path):
    items = [Item(f"i{k}", f"T{k}", text=f"text number {k}") for k in range(6)] + [Item("none", "N")]
    catalog = Catalog("c", items)
    cache = EmbeddingCache(tmp_path / "cache")
    first_encoder, second_encoder = CountingTextEncoder(), CountingTextEncoder()
    first = encode_catalog(catalog, {"text": first_encoder}, cache)
    second = encode_catalog(catalog, {"text": second_encoder}, cache)
    assert first_encoder.calls == 6 and second_encoder.calls == 0
    np.testing.assert_array_equal(first.matrices["text"], second.matrices["text"])
    assert second.masks["text"].tolist() == [True] * 6 + [False]
    items.append(Item("new", "New", text="a new text"))  # only the new item is encoded
    third_encoder = CountingTextEncoder()
    encode_catalog(Catalog("c", items), {"text": third_encoder}, cache)
    assert third_encoder.calls == 1
