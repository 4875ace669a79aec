"""A catalog's working set: imports into the store (imports.py), its embeddings, active model and reference runs
prepared on demand (prepare.py), earlier models and tuned configurations put back (history.py), and the warm start."""
