"""Per-session state: initialised once per browser session, never shared between sessions.

Uploads, the current query, its results, feedback and explanation targets live here — nothing per-user is
ever put in `st.cache_resource`.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULT_WEIGHTS = {"text": 1.0, "image": 1.0, "audio": 1.0}

DEFAULTS: dict[str, Any] = {
    "catalog_name": None,  # the active catalog of this session (None = the first stored one, else "demo")
    "query": None,  # the last submitted core.serving.service.Query
    "encoded": None,  # its EncodedQuery (re-ranking with sliders never re-encodes)
    "result": None,  # the RecommendationResult on screen
    "had_rerank": False,  # whether `result` came from a re-rank (so rank arrows are shown)
    "query_catalog": None,  # the catalog `encoded` belongs to
    "image_uploads": [],  # list[Upload] kept across page switches (uploader widgets reset when you leave)
    "audio_uploads": [],
    "whatif": False,  # modality-weight sliders active
    "weights": None,  # dict[modality, float] when what-if is on
    "prior_weight": None,  # popularity prior weight of content queries (None = core.serving.prior's default)
    "similarity_weight": None,  # similarity-to-upload weight λ (None = core.serving.similarity's default)
    "like_weight": None,  # "items like your upload" weight μ (None = core.serving.similarity's default)
    "top_k": 10,
    "feedback": [],  # [(item_id, "like" | "dislike")] in order
    "explain_target": None,  # {"item_id", "mode": "query" | "user", "user_id"}
    "explanations": {},  # key -> Explanation, so returning to the page is instant
    "pending_demo_query": False,  # Home's one-click demo: Recommend runs it on arrival
    "pending_query_text": "",  # the text that demo query carries
    "upload_errors": [],  # messages naming refused uploads and what to fix, from the last submit
    "uploader_gen_image": 0,  # part of the uploader widget keys: bumping one gives a fresh, empty uploader
    "uploader_gen_audio": 0,
    "flash": [],  # (level, message) pairs raised inside widget callbacks, shown once
    "train_log": [],  # the last training run's per-epoch reports (dicts)
    "import_report": None,  # the last ImportReport shown on the Catalog page
    "eval_message": None,  # result line of the last evaluation started here
}


def init_state() -> None:
    """Create every session key that is missing (once per session; reruns keep values)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = _fresh(value)


def _fresh(value: Any) -> Any:
    # mutable defaults must not be shared between sessions
    if isinstance(value, (list, dict)):
        return type(value)()
    return value


def reset_query() -> None:
    """Forget the query, its results, uploads and feedback of this session (the store is untouched)."""
    for key in ("query", "encoded", "result", "had_rerank", "query_catalog", "image_uploads", "audio_uploads",
                "feedback", "explain_target", "explanations", "weights", "whatif", "upload_errors"):
        st.session_state[key] = _fresh(DEFAULTS[key])


def set_catalog(name: str) -> None:
    """Switch this session to another catalog; results of the old one no longer apply."""
    if st.session_state.get("catalog_name") != name:
        st.session_state["catalog_name"] = name
        reset_query()
