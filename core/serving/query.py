"""What a user asks with (Query, Upload), the feedback that edits it, and the query turned into model space
(EncodedQuery): plain dataclasses the pages build and the services pass around."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Upload:
    """An uploaded file: its name (shown in messages) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Query:
    """What a user asks with: any mix of text, images, audio, liked/disliked item ids and a known listener."""

    text: str = ""
    images: list[Upload] = field(default_factory=list)
    audio: list[Upload] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)  # catalog item ids
    disliked: list[str] = field(default_factory=list)  # catalog item ids
    user_id: str | None = None  # a listener of the catalog's interactions

    def is_empty(self) -> bool:
        """True when the query gives nothing to rank from (disliked items alone are not enough)."""
        return not (self.text.strip() or self.images or self.audio or self.liked or self.user_id)


def apply_feedback(query: Query, item_id: str, liked: bool) -> Query:
    """A new query with `item_id` moved to the liked (or disliked) list; the given query is unchanged."""
    keep, drop = (query.liked, query.disliked) if liked else (query.disliked, query.liked)
    keep = [i for i in keep if i != item_id] + [item_id]
    drop = [i for i in drop if i != item_id]
    return replace(query, liked=keep, disliked=drop) if liked else replace(query, disliked=keep, liked=drop)


@dataclass
class EncodedQuery:
    """A query turned into model space; kept so that re-ranking and explaining need no re-encoding."""

    query: Query
    vector: np.ndarray  # (dim,) the query vector the model scores items against
    content: dict[str, np.ndarray]  # modality -> (n, dim) projected uploads
    field_inputs: dict[str, np.ndarray]  # field -> (n, D_f) encoded uploads, standardised like the catalog
    liked_rows: list[int]
    disliked_rows: list[int]
    user_row: int | None  # the listener's row in the model's training data
    exclude_rows: set[int]  # never recommended: liked, disliked and the listener's training items
    modalities: list[str]  # modalities of the uploads that made it into the vector
    warnings: list[str]
    encode_ms: float
    # (I, M) raw-encoder cosine of each item to the uploads per modality (core.serving.similarity); None without
    # uploads or for a known listener
    similarity: np.ndarray | None = None
    like: np.ndarray | None = None  # (I,) like_i of core.serving.similarity; None when `similarity` is None

    @property
    def known_listener(self) -> bool:
        """Whether the query starts from a listener the model was trained on (the learned bias applies)."""
        return self.user_row is not None
