"""ACR (Wei and Gan, CVPR 2023): the dual-head learner plus an adaptive debiasing tau1 of the standard head's
pseudo-label. Its options live in the `algorithm` section (algorithm.est_epoch, tau1_schedule, ...).

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from semi.specs import MethodSpec, lazy_attributes, register

SPEC = register(MethodSpec(
    name="acr",
    kind="base",
    summary="ACR: the dual-head learner with an adaptive tau1 from an estimate of the unlabeled class mix",
    implementation="semi.algorithms.acr.method:ACR",
    accepts_components=True,
    eval_head="balanced",
    figures=("acr_estimate",),
    reference="Wei and Gan, CVPR 2023; Gank0078/ACR",
))

__getattr__ = lazy_attributes(__name__)
