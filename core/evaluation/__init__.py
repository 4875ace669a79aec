"""Splits, ranking metrics with known answers, bootstrap CIs and the evaluation protocol."""
