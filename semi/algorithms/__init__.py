"""Algorithms: bases registered by name (supervised, oracle, fixmatch, dualhead, acr) and SeMi's attachable
components."""

from semi.algorithms import acr, darp, dual_head, fixmatch, simpro, supervised  # noqa: F401  (registers the bases)
from semi.algorithms.registry import base_names, build_algorithm, parse_algorithm_name

__all__ = ["base_names", "build_algorithm", "parse_algorithm_name"]
