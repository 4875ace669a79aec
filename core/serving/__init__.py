"""Serving: a query encoded, items scored with their named terms, the vector index and the recommend service."""
