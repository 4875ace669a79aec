"""Fusion recommender(s) and baselines, one model per file, behind one surface (core.models.base)."""
