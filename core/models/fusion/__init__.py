"""The fusion recommender: per-modality projection heads, a fusion strategy, items and users in one space.

Reading order: config.py (FusionConfig: every knob, and the hand-chosen PRESETS) → network.py (ModalityHead
and FusionNet, the torch module: project → fuse → item and user vectors → optional LightGCN propagation →
dot-product scores) → train.py (the training loop) → recommender.py (FusionRecommender, the Recommender
surface the services call) with queries.py (what it answers about new queries: uploads, liked items,
modality subsets) and persistence.py (save and load).

A model sees media only through an EmbeddingSet aligned with the training items. A modality's input is
the concatenation of its fields (e.g. image = [image CNN features, image descriptor]); an item without
any field of a modality has that modality masked, and a masked modality contributes nothing on any path.
"""
