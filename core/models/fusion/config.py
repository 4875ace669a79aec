"""FusionConfig: everything that defines a fusion model and its training, saved beside the weights; and the
hand-chosen configurations every search starts from."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from core.data.metrics import metric_k
from core.encoders.embeddings import EmbeddingSet
from core.errors import ModelError
from core.models.collaborative import parse_members

STRATEGIES = ("concat", "weighted", "gated", "adversarial")
USER_MODES = ("id", "aggregate", "both")
LOSSES = ("bpr", "bce", "softmax", "full-softmax")
MODALITY_ORDER = ("text", "image", "audio")


@dataclass
class FusionConfig:
    """Everything that defines a fusion model and its training; saved beside the weights."""

    strategy: str = "gated"  # "concat" | "weighted" | "gated" | "adversarial"
    dim: int = 64  # size of every projected modality, item vector and user vector
    hidden: int = 256  # hidden width of the projection heads, the gate and the concat MLP (0 = linear heads)
    dropout: float = 0.1  # dropout inside the projection heads while training
    use_item_id: bool = True  # add a learned id embedding to items seen in training (0 for cold items)
    user_mode: str = "both"  # "id" | "aggregate" (mean of the user's items + linear) | "both" (their sum)
    graph_layers: int = 0  # LightGCN propagation steps over the training user–item graph (0 = off)
    item_bias: bool = True  # a learned score offset per item
    loss: str = "bpr"  # "bpr" (pairwise) | "bce" (pointwise) | "softmax" (sampled softmax over the negatives)
    #                    | "full-softmax" (softmax over every item; `negatives` unused)
    negatives: int = 1  # sampled unseen items per training pair
    optimizer: str = "adam"  # "adam" | "rmsprop"
    lr: float = 1e-3  # learning rate
    l2: float = 0.0  # weight decay on every parameter
    emb_reg: float = 1e-4  # L2 on the batch's layer-0 user and item vectors (the LightGCN convention)
    l1: float = 0.0  # L1 on the projection heads' first layer: few input features in use
    align_weight: float = 0.1  # InfoNCE between the projected modalities of the same item (0 = off)
    align_temperature: float = 0.2  # temperature of that InfoNCE
    adv_weight: float = 0.1  # modality discriminator through gradient reversal ("adversarial" only)
    dislike_weight: float = 0.5  # share of the disliked items' mean subtracted from a query vector
    epochs: int = 100  # upper bound; early stopping usually ends sooner
    batch_size: int = 2048  # training pairs per optimiser step
    patience: int = 10  # epochs without a better validation metric before stopping
    valid_metric: str = "recall@20"  # "recall@K" | "ndcg@K" on the validation split, training items masked
    seed: int = 0  # seeds torch and numpy (weights, dropout, negative sampling)
    collaborative: str = "ease+als+itemknn"  # known listeners' scores add these models fitted on the training
    #                                  interactions, weighted on validation (core.models.collaborative; "none" = off)
    collaborative_settings: dict = field(default_factory=dict)  # member -> its tuned settings (the catalog's,
    #                                  core.tuning.baseline_store); a member without them gets what the model's
    #                                  member_search finds when fitted (FusionRecommender(member_search=...))

    def __post_init__(self) -> None:
        checks = {"strategy": (self.strategy, STRATEGIES), "user_mode": (self.user_mode, USER_MODES),
                  "loss": (self.loss, LOSSES), "optimizer": (self.optimizer, ("adam", "rmsprop"))}
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"FusionConfig.{name}={value!r}; choose one of {list(allowed)}")
        if self.dim < 1 or self.negatives < 1 or self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("FusionConfig dim, negatives, epochs, batch_size and patience must be ≥ 1 "
                             f"(got {self.dim}, {self.negatives}, {self.epochs}, {self.batch_size}, "
                             f"{self.patience})")
        if self.graph_layers < 0 or self.hidden < 0:
            raise ValueError(f"FusionConfig graph_layers and hidden must be ≥ 0 (got {self.graph_layers}, "
                             f"{self.hidden})")
        metric_k(self.valid_metric)  # raises on a malformed name
        parse_members(self.collaborative)  # raises on an unknown member
        from core.limits import check_setting

        for f in fields(self):  # the declared ranges (core.limits): no setting may cost unbounded memory
            if str(f.type) in ("int", "float"):
                check_setting(f.name, getattr(self, f.name), f"FusionConfig.{f.name}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "FusionConfig":
        """A config from saved values; keys this version does not know are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"the saved fusion config has settings this version does not know: {unknown}; "
                             "retrain the model with this version of Prism")
        return cls(**values)





# Hand-chosen configurations, each labelled by the catalog whose validation split it was chosen on. They
# are the starting points of every search (core.tuning.space), not looked up by a catalog's name: a
# catalog's configuration comes from core.tuning.resolve_fusion_config.
PRESETS: dict[str, FusionConfig] = {
    # Last.fm-2K (text + audio, 1,858 users, 1,425 artists, x_label split): LightGCN propagation over
    # content + id items, sampled softmax. Test Recall@20 .4349, NDCG@20 .3036 without the collaborative
    # term (MMRec protocol: training items masked; mean of 3 seeds), a fit in 70–90 s on 2 cores.
    "lfm2k": FusionConfig(strategy="gated", dim=128, hidden=0, dropout=0.1, use_item_id=True, user_mode="id",
                          graph_layers=2, item_bias=False, loss="softmax", negatives=64, lr=0.01,
                          emb_reg=1e-4, align_weight=0.1, epochs=200, batch_size=8192, patience=15),
    # the generated demo catalog (three modalities, 600 tracks, ~24 training listens per listener): content
    # only, linear heads and strong L2 on user vectors and weights, since a listener's taste over a few
    # attributes has to be read from a handful of listens; a small alignment weight keeps uploads landing
    # near their items without blurring which modality a score comes from. Validation Recall@20 .306 against
    # .275 for an id + MLP head with light regularisation (the regularisation is what moved it); about 20 s.
    "demo": FusionConfig(strategy="gated", dim=64, hidden=0, dropout=0.2, use_item_id=False,
                         user_mode="id", graph_layers=0, loss="softmax", negatives=64, lr=0.01,
                         l2=1e-4, emb_reg=0.05, align_weight=0.02, epochs=300, batch_size=2048, patience=30),
}



def content_layout(emb: EmbeddingSet) -> dict[str, list[str]]:
    """modality -> its fields in the embedding set's order, modalities in canonical order."""
    return {m: emb.fields_of(m) for m in MODALITY_ORDER if emb.fields_of(m)}

