"""Explanations: Shapley shares, the explain service and its check, the sentences, the 2-D map."""
