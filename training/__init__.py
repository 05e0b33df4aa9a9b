"""Training-side code for pyser: corpora, splits, metrics, feature cache, losses, the training loop."""
