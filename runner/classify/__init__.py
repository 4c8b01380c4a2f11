"""Embeddings + manifest -> out-of-fold probabilities: LightGBM per fold, the fit processes, the inner early-stopping split."""
