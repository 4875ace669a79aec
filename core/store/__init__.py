"""The store: one SQLite database with files beside it (media, embeddings, models, indexes), its paths, atomic writes, exports and who may change what it shows."""
