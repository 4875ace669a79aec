"""A catalog's working set: its embeddings, active model and reference runs prepared on demand, and the warm start."""
