"""A fusion model on disk: `model.safetensors` (weights and training graph), `config.json` (configuration, ids,
fields, history) and, when it has one, the collaborative term's arrays. Loading reads JSON and safetensors
only, and refuses a damaged or mismatched folder by name before anything large is allocated."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.encoders.embeddings import EmbeddingSet
from core.errors import DamagedFileError, ModelError
from core.models.collaborative import FILE as COLLABORATIVE_FILE
from core.models.collaborative import CollaborativeTerm, is_finite_weights
from core.models.fusion.config import FusionConfig, content_layout
from core.models.fusion.network import FusionNet
from core.store.atomic import atomic_path, write_text_atomic

FORMAT_VERSION = 1  # of config.json; bump when the saved layout changes
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DAMAGED_FIX = ("activate another saved model (`python -m core models activate ID`, or `python -m core restore`) "
               "or train a new one")


def save_model(model: Any, folder: Path) -> None:
    """`model.safetensors` (weights + training graph) and `config.json` (config, ids, fields, history) of a fitted
    FusionRecommender."""
    from safetensors.torch import save_file

    net = model._need_net()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE, "model weights") as tmp:
        save_file(state, str(tmp))
    header = {"format": FORMAT_VERSION, "name": model.name, "config": asdict(model.config),
              "item_ids": model.item_ids, "user_ids": model.user_ids, "fields": model.fields,
              "field_dims": model.field_dims, "encoder_ids": model.encoder_ids, "history": model.history,
              "best_epoch": model.best_epoch,
              "collaborative": None if model.collaborative is None else model.collaborative.header()}
    if model.collaborative is not None:
        from safetensors.numpy import save_file as save_arrays

        with atomic_path(folder / COLLABORATIVE_FILE, "collaborative term") as tmp:
            save_arrays({k: np.ascontiguousarray(v) for k, v in model.collaborative.arrays().items()}, str(tmp))
    write_text_atomic(folder / CONFIG_FILE, json.dumps(header, indent=1), "model configuration")


def load_model(cls: Any, folder: Path, embeddings: EmbeddingSet) -> Any:
    """A saved model of class `cls` (FusionRecommender) over `embeddings`, which must hold the same items, fields
    and encoders it was trained with. Reads JSON and safetensors only (no pickle)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise ModelError(f"{folder / name} is missing; a saved fusion model folder holds "
                             f"{CONFIG_FILE} and {WEIGHTS_FILE} (train and save one first)")
    try:
        header = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{folder / CONFIG_FILE} cannot be read as JSON: {e}") from e
    if header.get("format") != FORMAT_VERSION:
        raise ModelError(f"{folder / CONFIG_FILE} has format {header.get('format')!r}; this version "
                         f"reads format {FORMAT_VERSION}: retrain the model")
    try:
        model = cls(FusionConfig.from_dict(header["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DamagedFileError(f"{folder / CONFIG_FILE} holds no usable fusion configuration ({e}); the "
                               "folder is damaged: " + DAMAGED_FIX) from e
    check_embeddings(header, embeddings, folder)
    check_weight_shapes(model.config, folder, embeddings, len(header["user_ids"]))
    model.history, model.best_epoch = list(header.get("history", [])), int(header.get("best_epoch", 0))
    model._build(embeddings, len(header["user_ids"]), list(header["user_ids"]))
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
        model.net.attach_graph(state["edge_users"].numpy(), state["edge_items"].numpy())
        model.net.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, OSError) as e:
        raise DamagedFileError(f"{folder / WEIGHTS_FILE} does not match {folder / CONFIG_FILE} "
                               f"({type(e).__name__}: {e}); the folder is damaged: " + DAMAGED_FIX) from e
    model._ready()
    model.collaborative = load_collaborative(header, folder, len(header["user_ids"]), len(header["item_ids"]))
    return model


def load_collaborative(header: dict, folder: Path, n_users: int, n_items: int) -> CollaborativeTerm | None:
    """The saved collaborative term (None when the model has none); a damaged one is refused by name."""
    block = header.get("collaborative")
    if not block:
        return None
    from safetensors.numpy import load_file as load_arrays

    path = folder / COLLABORATIVE_FILE
    try:
        if not is_finite_weights(block["weights"]):
            raise ValueError(f"weights {block['weights']} are not finite numbers")
        term = CollaborativeTerm.from_saved(block, load_arrays(str(path)))
        if term.train.shape != (n_users, n_items):
            raise ValueError(f"its interactions are {term.train.shape}, the model has ({n_users}, {n_items})")
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise ModelError(f"the collaborative term in {path} does not match {folder / CONFIG_FILE} "
                         f"({type(e).__name__}: {e}); the folder is damaged, retrain the model") from e
    return term


def check_weight_shapes(config: FusionConfig, folder: Path, emb: EmbeddingSet, n_users: int) -> None:
    """Refuse, before anything is allocated, a weights file whose tensors do not have the shapes the
    saved configuration gives (a config edited to dim 10⁶ would otherwise allocate gigabytes first)."""
    from safetensors import safe_open

    layout = content_layout(emb)
    input_dims = {m: sum(int(emb.matrices[f].shape[1]) for f in fs) for m, fs in layout.items()}
    with torch.device("meta"):  # shapes only: no memory is allocated
        expected = {k: tuple(v.shape) for k, v in
                    FusionNet(config, input_dims, n_users, len(emb.item_ids)).state_dict().items()}
    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise DamagedFileError(f"{path} cannot be read ({type(e).__name__}: {e}); the folder is damaged: "
                               + DAMAGED_FIX) from e
    graph = {"edge_users", "edge_items"}  # the training pairs: their length is data, not configuration
    wrong = [k for k in expected if k not in graph and saved.get(k) != expected[k]]
    wrong += [k for k in saved if k not in expected]
    if wrong:
        k = wrong[0]
        raise DamagedFileError(
            f"{folder / CONFIG_FILE} and {WEIGHTS_FILE} disagree: tensor {k!r} is {saved.get(k, 'absent')} "
            f"in the weights, the configuration (dim {config.dim}) gives {expected.get(k, 'none')}; "
            f"{len(wrong)} tensor(s) differ. The folder is damaged: " + DAMAGED_FIX)


def check_embeddings(header: dict, emb: EmbeddingSet, folder: Path) -> None:
    """Refuse an embedding set whose items, fields or encoders differ from the model's."""
    saved_ids = header["item_ids"]
    if list(emb.item_ids) != saved_ids:
        n_diff = sum(a != b for a, b in zip(emb.item_ids, saved_ids)) + abs(len(emb.item_ids) - len(saved_ids))
        raise ModelError(f"the model in {folder} was trained on {len(saved_ids)} items; this embedding set "
                         f"has {len(emb.item_ids)} and differs at {n_diff} position(s): retrain the model "
                         "on this catalog")
    for f, dim in header["field_dims"].items():
        if f not in emb.matrices:
            raise ModelError(f"the model in {folder} uses field {f!r}, absent from this embedding set "
                             f"(fields: {emb.fields}); re-encode with {header['encoder_ids'].get(f)}")
        if emb.matrices[f].shape[1] != dim or emb.encoder_ids.get(f) != header["encoder_ids"].get(f):
            raise ModelError(f"field {f!r}: the model in {folder} was trained on "
                             f"{header['encoder_ids'].get(f)} ({dim}-d), this embedding set has "
                             f"{emb.encoder_ids.get(f)} ({emb.matrices[f].shape[1]}-d): retrain the model "
                             "or load the matching embeddings")
    extra = sorted(set(emb.fields) - set(header["field_dims"]))
    if extra:
        raise ModelError(f"this embedding set has field(s) {extra} the model in {folder} was not trained "
                         "with; retrain the model on these embeddings")
