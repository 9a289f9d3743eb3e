"""Algorithms: bases registered by name (supervised, oracle, fixmatch, dualhead, acr, daso, abc, cpe) and SeMi's
attachable components."""

from semi.algorithms import abc, acr, cpe, daso, dual_head, fixmatch, supervised  # noqa: F401  (registers the bases)
from semi.algorithms.registry import base_names, build_algorithm, parse_algorithm_name

__all__ = ["base_names", "build_algorithm", "parse_algorithm_name"]
