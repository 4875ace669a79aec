"""Queries into model space: uploads decoded and encoded exactly like the catalog, projected by the model and
combined with liked/disliked items and a known listener's vector into one query vector."""
from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import numpy as np

from core.catalog.media import load_audio, load_image
from core.catalog.model import Catalog
from core.encoders.embeddings import EmbeddingSet
from core.errors import QueryError
from core.serving.listeners import Listeners
from core.serving.query import EncodedQuery, Query
from core.serving.scoring import ItemScorer
from core.serving.similarity import like_upload, unit_rows, upload_similarity
from core.serving.threads import single_threaded


class QueryEncoder:
    """Turns queries into EncodedQuery with one catalog's embeddings, its encoders and the fusion model."""

    def __init__(self, catalog: Catalog, embeddings: EmbeddingSet, model: Any, encoders: dict[str, Any],
                 listeners: Listeners, scorer: ItemScorer) -> None:
        self.catalog = catalog
        self.embeddings = embeddings
        self.model = model
        self.encoders = encoders
        self.listeners = listeners
        self.scorer = scorer
        self.modalities = scorer.modalities
        self.n_items = scorer.n_items
        self._unit_fields: dict[str, np.ndarray] | None = None  # unit-row field matrices, on first upload

    def rows_of(self, item_ids: Collection[str]) -> tuple[list[int], list[str]]:
        """Catalog rows of `item_ids` and the ids that are not in the catalog."""
        rows, unknown = [], []
        for i in item_ids:
            try:
                rows.append(self.catalog.index_of(i))
            except KeyError:
                unknown.append(i)
        return rows, unknown

    def _usable_fields(self, modality: str, warnings: list[str]) -> list[str] | None:
        """The fields of `modality` the uploads can be encoded into, or None (with a warning) when they
        cannot be encoded exactly like the catalog was."""
        label = {"text": "query text", "image": "image uploads", "audio": "audio uploads"}[modality]
        if modality not in self.modalities:
            warnings.append(f"The {label} {'was' if modality == 'text' else 'were'} ignored: catalog "
                            f"{self.catalog.name!r} and its model have no "
                            f"{modality} modality (they have {', '.join(self.modalities)}).")
            return None
        fields = self.embeddings.fields_of(modality)
        problems = [p for p in map(self.encoder_problem, fields) if p]
        if problems:
            warnings.append(f"The {label} {'was' if modality == 'text' else 'were'} ignored: "
                            f"{'; '.join(problems)}.")
            return None
        return fields

    def _encode_uploads(self, query: Query, warnings: list[str]
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(field inputs, projected content per modality) of the query's text, images and audio."""
        # Decode every upload first, so a bad file is refused by name before any encoding work.
        images = [load_image(u.data, name=u.name) for u in query.images]
        audios = [load_audio(u.data, name=u.name) for u in query.audio]
        inputs = {"text": [query.text.strip()] if query.text.strip() else [], "image": images, "audio": audios}
        field_inputs: dict[str, np.ndarray] = {}
        content: dict[str, np.ndarray] = {}
        for modality, batch in inputs.items():
            if not batch:
                continue
            fields = self._usable_fields(modality, warnings)
            if fields is None:
                continue
            from core.encoders.pipeline import encode_inputs  # the encoder stack loads only when uploads come

            kwargs = {"texts": batch} if modality == "text" else \
                {"images": batch} if modality == "image" else {"audios": batch}
            if modality == "audio":  # each audio encoder takes the clips at its own sample rate
                from core.encoders.pipeline import encode_audio_uploads

                encoded = encode_audio_uploads({f: self.encoders[f] for f in fields}, self.embeddings,
                                               [(u.data, u.name) for u in query.audio])
            else:
                encoded = encode_inputs({f: self.encoders[f] for f in fields}, self.embeddings, **kwargs)
            encoded = {f: np.asarray(encoded[f], dtype=np.float32) for f in fields}
            projected = self.model.project_content(encoded)
            field_inputs.update(encoded)
            content[modality] = np.asarray(projected[modality], dtype=np.float32)
        return field_inputs, content

    def encode_query(self, query: Query) -> EncodedQuery:
        """The query's vector (uploads encoded like the catalog, projected by the model, combined with
        liked/disliked items and a known listener's vector) and what explaining it later needs."""
        if query.is_empty():
            raise QueryError("the query is empty: type a description, upload an image or a clip, pick tracks "
                             "you like, or choose a listener")
        start = time.perf_counter()
        warnings: list[str] = []
        field_inputs, content = self._encode_uploads(query, warnings)
        with single_threaded():
            return self._combine(query, field_inputs, content, warnings, start)

    def encode_fields(self, field_inputs: dict[str, np.ndarray], query: Query | None = None) -> EncodedQuery:
        """An encoded query from field vectors already encoded like the catalog (what uploads encode to),
        projected by the model and combined as encode_query does: e.g. an item's own stored vectors used as
        a query (the retrieval benchmark). Fields of modalities the model lacks are ignored with a warning."""
        start = time.perf_counter()
        warnings: list[str] = []
        inputs = {f: np.atleast_2d(np.asarray(x, np.float32)) for f, x in field_inputs.items()}
        content: dict[str, np.ndarray] = {}
        for modality in self.modalities:
            fields = [f for f in inputs if self.embeddings.modality_of.get(f) == modality]
            if fields:
                projected = self.model.project_content({f: inputs[f] for f in fields})
                content[modality] = np.asarray(projected[modality], dtype=np.float32)
        ignored = sorted(f for f in inputs if self.embeddings.modality_of.get(f) not in content)
        if ignored:
            warnings.append(f"Fields {ignored} were ignored: the model has no such modality.")
        with single_threaded():
            return self._combine(query or Query(), inputs, content, warnings, start)

    def _combine(self, query: Query, field_inputs: dict[str, np.ndarray], content: dict[str, np.ndarray],
                 warnings: list[str], start: float) -> EncodedQuery:
        """The encoded query from projected uploads, liked/disliked items and a known listener."""
        liked, unknown_liked = self.rows_of(query.liked)
        disliked, unknown_disliked = self.rows_of(query.disliked)
        if unknown_liked or unknown_disliked:
            warnings.append(f"Item ids not in catalog {self.catalog.name!r} were ignored: "
                            f"{sorted(set(unknown_liked + unknown_disliked))}.")
        user_row = self.listeners.user_row(query.user_id) if query.user_id else None
        if not (content or liked or user_row is not None):
            raise QueryError("nothing in the query could be used: " + (" ".join(warnings) or
                             "add text, an image, a clip or a liked track"))
        parts = []
        if user_row is not None:
            parts.append(np.asarray(self.model.user_vector(user_row), dtype=np.float32))
        if content or liked:
            parts.append(np.asarray(self.model.query_vector(liked=liked, disliked=disliked,
                                                            content=content or None), dtype=np.float32))
        elif disliked:  # a listener plus dislikes only: the dislikes still push away
            parts.append(np.asarray(self.model.query_vector(liked=[], disliked=disliked), dtype=np.float32))
        # parts are summed, not averaged: each keeps the scale the model gave it
        vector = np.sum(parts, axis=0).astype(np.float32)
        if not np.isfinite(vector).all():
            raise QueryError("the query vector is not finite; the model or an upload produced NaN values")
        exclude = set(liked) | set(disliked)
        if user_row is not None:
            exclude |= set(self.listeners.training_rows(user_row).tolist())
        used = {f: x for f, x in field_inputs.items() if self.embeddings.modality_of.get(f) in content}
        similarity = None
        if user_row is None and used:
            if self._unit_fields is None:
                self._unit_fields = unit_rows(self.embeddings.matrices)
            similarity = upload_similarity(used, self._unit_fields, self.embeddings.masks,
                                           self.embeddings.modality_of, self.modalities, self.n_items,
                                           unit_items=True)
        return EncodedQuery(query=query, vector=vector, content=content, field_inputs=field_inputs,
                            liked_rows=liked, disliked_rows=disliked, user_row=user_row, exclude_rows=exclude,
                            modalities=[m for m in self.modalities if m in content], warnings=warnings,
                            encode_ms=(time.perf_counter() - start) * 1e3, similarity=similarity,
                            like=None if similarity is None else like_upload(similarity, self.scorer.unit_item_vectors,
                                                                                    unit_items=True))

    def encoder_problem(self, field_name: str) -> str | None:
        """Why uploads of `field_name` cannot be encoded like the catalog was, or None when they can."""
        encoder = self.encoders.get(field_name)
        if encoder is None:
            return f"no encoder is loaded for field {field_name!r}"
        stored = self.embeddings.encoder_ids.get(field_name)
        if encoder.id != stored:
            return (f"field {field_name!r} was encoded with {stored} but the loaded encoder is {encoder.id}; "
                    "re-encode the catalog or load the same encoders")
        return None
