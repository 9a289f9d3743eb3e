"""Data sources, one module per family; importing this package registers them all by name."""

from semi.data.sources import cifar, digits, features, imagenet, mnist, stl10, svhn, user  # noqa: F401
from semi.data.sources.base import ImageData, available_sources, get_source, register_source

__all__ = ["ImageData", "available_sources", "get_source", "register_source"]
