"""The loop's per-step bookkeeping: stacked sums equal per-name sums, a saved window resumes bit-exactly, the first
non-finite step and its terms are found, and a non-scalar log is refused clearly."""

from __future__ import annotations

import pytest
import torch

from semi.algorithms.base import StepResult
from semi.engine.step_totals import StepTotals, WindowSums


def result(loss: float, sup: float, unsup: float, **logs: float) -> StepResult:
    return StepResult(torch.tensor(loss), {"sup": torch.tensor(sup), "unsup": torch.tensor(unsup)},
                      {k: torch.tensor(v) for k, v in logs.items()})


def test_sums_and_means_per_name_when_a_log_starts_mid_window():
    totals = StepTotals(torch.device("cpu"), WindowSums())
    totals.add(0, result(3.0, 1.0, 2.0, mask_rate=0.5))
    totals.add(1, result(5.0, 2.0, 3.0, mask_rate=0.25, oheml_weight=0.75))  # a component switched on
    sums = {k: float(v) for k, v in totals.window.sums().items()}
    assert sums == {"loss": 8.0, "loss_sup": 3.0, "loss_unsup": 5.0, "mask_rate": 0.75, "oheml_weight": 0.75}
    assert totals.window.steps == 2 and totals.eval_window.steps == 2
    # means over the window's steps (as the loop logged them before: a late log is averaged over the whole window)
    assert totals.window.means() == {"loss": 4.0, "loss_sup": 1.5, "loss_unsup": 2.5, "mask_rate": 0.375,
                                     "oheml_weight": 0.375}
    totals.window.reset()
    assert totals.window.sums() == {} and totals.window.steps == 0
    assert float(totals.eval_window.sums()["loss"]) == 8.0  # the evaluation window keeps counting


def test_a_saved_window_continues_bit_exactly():
    g = torch.Generator().manual_seed(0)
    values = [torch.rand(4, generator=g) for _ in range(7)]
    names = ("loss", "loss_sup", "mask_rate", "hard_acc_hits")
    straight = WindowSums()
    for v in values:
        straight.add(names, v)
    first = WindowSums()
    for v in values[:3]:
        first.add(names, v)
    resumed = WindowSums(first.sums(), first.steps)  # what a checkpoint saves and loads
    for v in values[3:]:
        resumed.add(names, v)
    assert resumed.steps == straight.steps == 7
    assert all(torch.equal(resumed.sums()[k], straight.sums()[k]) for k in names)


def test_first_non_finite_step_and_its_terms():
    totals = StepTotals(torch.device("cpu"), WindowSums())
    totals.add(0, result(1.0, 0.5, 0.5))
    assert int(totals.nonfinite.step) == -1
    totals.add(1, result(float("nan"), 0.5, float("inf")))
    totals.add(2, result(float("nan"), float("nan"), 0.5))  # later bad steps do not change the first one's terms
    assert int(totals.nonfinite.step) == 1
    assert totals.nonfinite.bad_term_names() == ["unsup"]


def test_a_non_scalar_log_is_refused_by_name():
    totals = StepTotals(torch.device("cpu"), WindowSums())
    bad = StepResult(torch.tensor(1.0), {"sup": torch.tensor(1.0)}, {"per_class": torch.ones(3)})
    with pytest.raises(ValueError, match="per_class"):
        totals.add(0, bad)
