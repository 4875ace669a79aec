"""Exceptions raised by Prism's core. Each message says what went wrong and what to fix."""
from __future__ import annotations


class PrismError(Exception):
    """Base class of every error Prism raises on purpose."""


class CatalogError(PrismError):
    """A catalog (manifest, interactions, features) is malformed; the message names file, row or column."""


class UnsupportedMediaError(PrismError):
    """An image or audio file cannot be read, is of an unsupported type, or is unsafe (e.g. a decompression bomb)."""


class EncoderError(PrismError):
    """An encoder cannot be built or run (missing weights, bad configuration)."""


class ChecksumError(EncoderError):
    """A weights file does not match its expected sha256."""


class MissingModalityError(PrismError):
    """An operation needs a modality that the item, query or model does not have."""


class StoreError(PrismError):
    """The store cannot find or write what was asked."""


class QueryError(PrismError):
    """A recommendation query is empty or invalid."""


class ModelError(PrismError):
    """A model is not fitted, or a saved model does not load or does not fit the given embeddings."""


class ComparisonError(PrismError):
    """Two runs cannot be compared user by user (different data, split or target, or no per-user values)."""


class EngineError(PrismError):
    """A distributed engine (Ray) is not installed, cannot be reached, or a job on it failed."""


class DamagedFileError(StoreError):
    """A stored file (embeddings, model, index, run record, database) is damaged or does not match what it
    claims; the message names the file and how to repair it. Only the catalog it belongs to is affected."""
