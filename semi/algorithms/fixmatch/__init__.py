"""FixMatch (Sohn et al., NeurIPS 2020): hard pseudo-labels from the weak view, a confidence mask, cross-entropy on the
strong views.

The spec and options, torch-free; the code is in `method.py`.
"""

from __future__ import annotations

from semi.specs import MethodSpec, lazy_attributes, register

SPEC = register(MethodSpec(
    name="fixmatch",
    kind="base",
    summary="FixMatch: confident weak-view pseudo-labels train the strong views",
    implementation="semi.algorithms.fixmatch.method:FixMatch",
    accepts_components=True,
    reference="Sohn et al., NeurIPS 2020; google-research/fixmatch",
))

__getattr__ = lazy_attributes(__name__)
