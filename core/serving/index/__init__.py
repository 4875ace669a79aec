"""Top-k search of item vectors by inner product: an exact matrix product, an approximate HNSW graph
(hnswlib) and an inverted file (FAISS IVF-Flat, the default from ServingSettings.auto_exact_below items
up) behind one `search(qvec, k, exclude) -> (rows, scores)` call. An approximate index is saved beside the model it
serves and reloaded with it (`ensure_index`), never rebuilt on each start.

Rows are indices into the matrix the index was built from (the caller maps them to item ids). Scores are
inner products; the recommend service appends each item's bias as one more column (and a 1 to the query)
so that an index score equals the model's score.

An index holds FIXED item vectors. What-if modality weights or masks change the item vectors themselves,
so the recommend service scores those queries exactly: over every item, or over a candidate set from the
index whose size it chose from measured recall when the index was built (saved in index.json).
An approximate index chooses its own search width (HNSW ef, IVF nprobe) when built, from recall@10
against exact search on sample queries, up to a stated ceiling (with a logged warning when the target is
not reached there), and saves it beside the index with what it was tuned on. The sample queries are the
caller's named sets of the queries it will send, with the rows it excludes (the recommend service: its
listeners' vectors, liked-items queries); IVF chooses per set an nprobe and a "head" of items scanned
exactly beside the visited cells (IVFIndex), and a query naming a kind (`kind`: a set's name or the kind
its sets stand for) is searched with those of its sets, any other with the widest. Without such sets:
the index's own vectors plus noise.

The parts, one concern a module: `exact` (the protocol and exact search), `hnsw` and `ivf` (the approximate
indexes), `samples` (sample queries and recall), `topk` (top-k selection) and `saved` (which index a catalog
gets; saving and reloading it beside the model).
"""
from __future__ import annotations

from core.serving.index.exact import ExactIndex, VectorIndex
from core.serving.index.hnsw import HNSWConfig, HNSWIndex
from core.serving.index.ivf import IVFConfig, IVFIndex
from core.serving.index.samples import (ITEM_SAMPLE, SampleQueries, TuneQueries, example_queries, exact_truth,
                                        measure_recall, named_queries, recall_per_set)
from core.serving.index.saved import (INDEX_DIR, build_index, ensure_index, fingerprint, load_index,
                                      record_index_setting, resolve_kind, save_index, saved_settings)
from core.serving.index.topk import THRESHOLD_STRIDE, fast_top_k_rows, merge_top_k, not_excluded, top_k_rows
from core.serving.threads import single_thread_blas

__all__ = ["ExactIndex", "HNSWConfig", "HNSWIndex", "INDEX_DIR", "ITEM_SAMPLE", "IVFConfig", "IVFIndex",
           "SampleQueries", "THRESHOLD_STRIDE", "TuneQueries", "VectorIndex", "build_index", "ensure_index",
           "exact_truth", "example_queries", "fast_top_k_rows", "fingerprint", "load_index", "measure_recall",
           "merge_top_k", "named_queries", "not_excluded", "recall_per_set", "record_index_setting", "resolve_kind",
           "save_index", "saved_settings", "single_thread_blas", "top_k_rows"]
