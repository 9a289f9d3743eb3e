"""semi: a PyTorch toolkit for class-imbalanced semi-supervised learning (FixMatch, ACR, SeMi)."""

__version__ = "0.1.0"
