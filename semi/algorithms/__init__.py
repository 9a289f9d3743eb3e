"""Algorithms: bases registered by name (supervised, oracle, fixmatch, dualhead, acr, daso, abc, cpe, darp, simpro)
and SeMi's attachable components."""

from semi.algorithms import abc, acr, cpe, darp, daso, dual_head, fixmatch, simpro, supervised  # noqa: F401
from semi.algorithms.registry import base_names, build_algorithm, parse_algorithm_name

__all__ = ["base_names", "build_algorithm", "parse_algorithm_name"]
