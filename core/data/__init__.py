"""Interactions as the models see them: train/valid/test splits and the ranking metrics computed on them."""
