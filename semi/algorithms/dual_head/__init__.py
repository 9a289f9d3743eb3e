"""The logit-adjusted dual-head learner: SeMi's authors' base, and ACR without its adaptive tau1.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from semi.specs import MethodSpec, lazy_attributes, register

SPEC = register(MethodSpec(
    name="dualhead",
    kind="base",
    summary="the logit-adjusted dual-head learner (ACR's two heads without its adaptive tau1)",
    implementation="semi.algorithms.dual_head.method:DualHead",
    accepts_components=True,
    eval_head="balanced",
    reference="SeMi's authors' base; ACR (Wei and Gan, CVPR 2023)",
))

__getattr__ = lazy_attributes(__name__)
