"""Supervised baselines: labeled data only, and the oracle (the labeled + unlabeled pool with true labels).

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from semi.specs import MethodSpec, lazy_attributes, register

SPEC = register(MethodSpec(
    name="supervised",
    kind="base",
    summary="labeled data only (a lower bound)",
    implementation="semi.algorithms.supervised.method:Supervised",
    uses_unlabeled=False,
))
ORACLE_SPEC = register(MethodSpec(
    name="oracle",
    kind="base",
    summary="the labeled + unlabeled pool with true labels (an upper bound)",
    implementation="semi.algorithms.supervised.method:Oracle",
    uses_unlabeled=False,
    trains_on_true_labels=True,
))

__getattr__ = lazy_attributes(__name__)
