"""A run's report: PNG figures in `run_dir/report/` and one self-contained HTML page (`report/index.html`, the
figures embedded as base64 data URIs, so the single file can be mailed).

Inputs are what the trainer writes: `metrics.jsonl` (one JSON object per line, {"kind": "train" | "eval",
"step": N, ...}), `results.json` (final metrics, labeled/unlabeled counts, class names, the config) and
`config.yaml`. Anything may be missing (a run stopped early has no results.json; a supervised run has no
pseudo-labels; FixMatch has no ACR estimate; only SeMi has a memory bank): the report draws what the data allow and
says on the page what it left out and why.

Modules: `run_data` (reading a run), `plotting` (shared drawing helpers), `training_figures` (every run's figures),
`method_figures` (figures some methods offer, by their spec), `page` (the HTML page), `sweep_figures` (a benchmark
sweep's records: `plot_method_comparison`, `plot_per_class`).

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot, so making a
report neither changes the caller's matplotlib backend nor leaves figures open.
"""

from semi.evaluation.report.page import write_report
from semi.evaluation.report.run_data import RunData, load_run
from semi.evaluation.report.sweep_figures import plot_method_comparison, plot_per_class

__all__ = ["RunData", "load_run", "plot_method_comparison", "plot_per_class", "write_report"]
