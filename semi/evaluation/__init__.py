"""Evaluation: imbalance-aware metrics, running a model over a held-out set, reports."""
