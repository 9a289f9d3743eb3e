"""The training loop's per-step bookkeeping, on the device and without a host sync: sums of each step's loss terms
and logs (for the log window and the evaluation window) and the first non-finite step.

A step's values (the loss, each loss term, the algorithm's logs: 0-dim tensors) are stacked into one vector, so a
step costs a handful of ops however many values it logs. Added one at a time, SeMi's ~20 values cost ~100 small
ops per step, about 1 ms of a 30 ms small-CNN step on CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from semi.algorithms.base import StepResult


class WindowSums:
    """Sums over steps of named 0-dim values, one vector per distinct tuple of names (the tuple changes when, e.g.,
    a component starts logging after its warm-up), and the number of steps added."""

    def __init__(self, sums: dict[str, Tensor] | None = None, steps: int = 0):
        self.restore(sums or {}, steps)

    def restore(self, sums: dict[str, Tensor], steps: int) -> None:
        """Continue from a saved window (`sums()` and `steps`), in place: one group, in the saved order, so a
        resumed run adds exactly as the original did."""
        self.groups: dict[tuple[str, ...], Tensor] = {}
        if sums:
            self.groups[tuple(sums)] = torch.stack([v.float() for v in sums.values()])
        self.steps = steps

    def reset(self) -> None:
        self.restore({}, 0)

    def add(self, names: tuple[str, ...], values: Tensor) -> None:
        """One step's values [len(names)], in the order of `names`."""
        group = self.groups.get(names)
        self.groups[names] = values if group is None else group + values
        self.steps += 1

    def sums(self) -> dict[str, Tensor]:
        """name -> its sum over the steps that logged it (0-dim device tensors; no host sync)."""
        out: dict[str, Tensor] = {}
        for names, vector in self.groups.items():
            for name, v in zip(names, vector.unbind()):
                out[name] = out[name] + v if name in out else v
        return out

    def means(self) -> dict[str, float]:
        """name -> sum / steps in the window (one host transfer per group)."""
        out: dict[str, float] = {}
        for names, vector in self.groups.items():
            for name, v in zip(names, vector.tolist()):
                out[name] = out.get(name, 0.0) + v
        return {k: v / max(self.steps, 1) for k, v in out.items()}


class FirstNonFinite:
    """The first step whose loss was not finite (-1: none so far), and which loss terms were not finite then."""

    def __init__(self, device: torch.device):
        self.step = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_terms: dict[tuple[str, ...], Tensor] = {}

    def observe(self, step: int, finite: Tensor, terms: tuple[str, ...]) -> None:
        """finite: [1 + len(terms)] bool, the total loss's then each term's."""
        first_now = (self.step < 0) & ~finite[0]
        self.step = torch.where(first_now, step, self.step)
        bad = first_now & ~finite[1:]
        seen = self.bad_terms.get(terms)
        self.bad_terms[terms] = bad if seen is None else seen | bad

    def bad_term_names(self) -> list[str]:
        """The terms that were not finite at the first bad step (host sync; only once a bad step is known)."""
        return sorted({n for group, flags in self.bad_terms.items() for n, f in zip(group, flags.tolist()) if f})


class StepTotals:
    """What the loop keeps of every step: its values summed into the log window and the evaluation window, and the
    non-finite check. Per step: one stack, one isfinite, two adds and a few ops for the check."""

    def __init__(self, device: torch.device, eval_window: WindowSums):
        self.window = WindowSums()
        self.eval_window = eval_window
        self.nonfinite = FirstNonFinite(device)
        self._names: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}

    def add(self, step: int, result: StepResult) -> None:
        terms, logged = tuple(result.losses), tuple(result.logs)
        names = self._names.get((terms, logged))
        if names is None:
            names = self._names[(terms, logged)] = ("loss", *(f"loss_{t}" for t in terms), *logged)
        with torch.no_grad():
            try:
                values = torch.stack([result.loss, *result.losses.values(), *result.logs.values()]).float()
            except RuntimeError:
                shapes = {n: tuple(v.shape) for n, v in zip(names, (result.loss, *result.losses.values(),
                                                                      *result.logs.values()))}
                raise ValueError(f"a step's losses and logs must be 0-dim tensors, got shapes {shapes}") from None
            self.nonfinite.observe(step, torch.isfinite(values[: 1 + len(terms)]), terms)
        self.window.add(names, values)
        self.eval_window.add(names, values)
