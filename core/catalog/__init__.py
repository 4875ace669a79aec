"""Items, interactions, importers and the demo catalog generator."""
from core.catalog.model import MODALITIES, SPLITS, Catalog, FeatureMatrix, Item, empty_interactions

__all__ = ["MODALITIES", "SPLITS", "Catalog", "FeatureMatrix", "Item", "empty_interactions"]
