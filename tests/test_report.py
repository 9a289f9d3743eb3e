"""The run report: figures and a self-contained HTML page from real tiny runs, partial runs, and sweep records."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from semi.cli import main
from semi.engine.trainer import Trainer
from semi.errors import SemiError
from semi.evaluation.report import plot_method_comparison, plot_per_class, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r"<img src='data:image/png;base64,([A-Za-z0-9+/=]+)'")
ALL_FIGURES = {"training_curves.png", "per_class_accuracy.png", "confusion_matrix.png", "pseudo_label_quality.png",
               "acr_distribution.png", "memory_bank.png", "semi_diagnostics.png"}
EXPECTED = {  # tiny runs have semi.warmup_epochs=0, so the prototype and OHEML statistics are logged
    "acr+semi": ALL_FIGURES,
    "semi": ALL_FIGURES - {"acr_distribution.png"},  # semi = dualhead+semi: no distribution estimate
    "fixmatch": ALL_FIGURES - {"acr_distribution.png", "memory_bank.png", "semi_diagnostics.png"},
    "supervised": {"training_curves.png", "per_class_accuracy.png", "confusion_matrix.png"},
}


def _train(tiny_config, name: str) -> Path:
    cfg = tiny_config(**{"algorithm.name": name})
    Trainer(cfg).fit()
    return Path(cfg.train.out_dir)


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in IMG.findall(page)]


def _check_page(page_path: Path, figures: set[str]) -> str:
    assert page_path.name == "index.html" and page_path.parent.name == "report"
    page = page_path.read_text(encoding="utf-8")
    images = _images(page)
    assert len(images) == len(figures)
    assert all(img.startswith(PNG_MAGIC) and len(img) > 5000 for img in images)
    assert {p.name for p in page_path.parent.glob("*.png")} == figures
    assert "could not be drawn" not in page
    assert "src='report/" not in page and "src=\"" not in page  # nothing linked: the page stands alone
    return page


@pytest.mark.slow
@pytest.mark.parametrize("name", ["acr+semi", "semi", "fixmatch", "supervised"])
def test_report_of_a_finished_run(tiny_config, name):
    run_dir = _train(tiny_config, name)
    results = json.loads((run_dir / "results.json").read_text())
    page = _check_page(write_report(run_dir), EXPECTED[name])
    for label in ("Test top-1", "Balanced accuracy", "Head / medium / tail", "Best (top-1 / balanced)",
                  "Mean of the last 20 evaluations", "Mask rate", "Steps", "Algorithm", "Data set", "Imbalance"):
        assert label in page
    assert f"{results['metrics']['top1']:.2f}%" in page
    assert "N_1 = 30" in page and "gamma_l = 10.0" in page and "digits" in page
    assert f"<td>{name} (evaluated with the" in page
    assert "results.json is missing" not in page
    if name == "fixmatch":
        assert "fixmatch is not ACR-based" in page and "fixmatch has no SeMi memory bank" in page
        assert "fixmatch has no SeMi components" in page
    if name == "semi":
        assert "semi is not ACR-based" in page and "SeMi: what its parts do" in page
        assert {"window_proto_acc", "window_blend_acc", "oheml_weight_per_class"} <= set(results["diagnostics"])
    if name == "supervised":
        assert "supervised makes no pseudo-labels" in page


@pytest.mark.slow
def test_report_from_metrics_jsonl_only(tiny_config, capsys):
    run_dir = _train(tiny_config, "acr+semi")
    (run_dir / "results.json").unlink()
    shutil.rmtree(run_dir / "checkpoints")
    with open(run_dir / "metrics.jsonl", "a") as fh:  # a run killed in the middle of a line
        fh.write('{"kind": "train", "step": 13, "loss": 0.')
    # every evaluation logs per-class accuracy, so only the confusion matrix needs results.json
    page = _check_page(write_report(run_dir), ALL_FIGURES - {"confusion_matrix.png"})
    assert "results.json is missing" in page and "metrics.jsonl only" in page
    assert "1 line(s) of metrics.jsonl were not valid records" in page
    assert "last evaluation in metrics.jsonl, step 12" in page
    assert "Test top-1" in page and "Balanced accuracy" in page

    # the command line writes the same page, and a second report replaces the first
    (run_dir / "config.yaml").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert str(run_dir / "report" / "index.html") in capsys.readouterr().out
    assert "<td>unknown</td>" in (run_dir / "report" / "index.html").read_text()


def test_report_of_an_empty_or_missing_run_dir(tmp_path):
    page = write_report(tmp_path).read_text()
    assert "Neither metrics.jsonl nor results.json" in page and not _images(page)
    with pytest.raises(SemiError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_report_survives_broken_files(tmp_path):
    (tmp_path / "results.json").write_text('{"metrics": ')
    (tmp_path / "config.yaml").write_text("data: [unclosed")
    lines = [{"kind": "train", "step": s, "loss": 2.0 / s, "loss_sup": 1.0 / s, "loss_unsup": 0.0, "mask_rate": None}
             for s in (1, 2, 3)]
    lines += [{"kind": "eval", "step": 3, "top1": 50.0, "balanced_accuracy": 40.0,
               "pseudo_label_precision": [None, 0.5], "pseudo_label_recall": [0.1, None]},
              "not an object", {"kind": "eval"}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    page = write_report(tmp_path).read_text()
    assert "results.json could not be read" in page and "config.yaml could not be read" in page
    assert "3 line(s) of metrics.jsonl were not valid records" in page
    assert len(_images(page)) == 2 and "could not be drawn" not in page  # training curves, pseudo-label quality
    assert "50.00%" in page


def _semi_eval(step: int, num: int, warm: bool, nulls: bool = False) -> dict:
    rec = {"kind": "eval", "step": step, "top1": 40.0 + step / 10, "balanced_accuracy": 35.0,
           "pseudo_label_accuracy": 0.6 + step / 1000, "window_mask_rate": 0.5 + step / 500,
           "window_hard_acc": None if nulls else 0.3 + step / 1000,
           "bank_purity": None if nulls or warm else 0.7, "bank_purity_per_class": [None if nulls else 0.7] * num,
           "bank_fill": [min(8, step // 10)] * num}
    if not warm:  # the prototypes and OHEML start after the warm-up
        rec.update(window_proto_acc=None if nulls else 0.55 + step / 2000, window_classifier_acc=0.6,
                   window_blend_acc=None if nulls else 0.65,
                   oheml_weight_per_class=[None if nulls and k % 2 else 0.3 + 0.6 * k / num for k in range(num)])
    return rec


@pytest.mark.parametrize("num", [4, 40])
def test_semi_diagnostics_from_synthetic_records(tmp_path, num):
    (tmp_path / "config.yaml").write_text("algorithm: {name: semi}\nsemi: {oheml_strength: 0.75, bank_size: 8}\n")
    lines = [_semi_eval(10, num, warm=True)] + [_semi_eval(s, num, warm=False) for s in (20, 30, 40)]
    lines.append(_semi_eval(50, num, warm=False, nulls=True))  # an evaluation window with nothing measurable
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    page = write_report(tmp_path).read_text()
    png = tmp_path / "report" / "semi_diagnostics.png"
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000
    assert "SeMi: what its parts do" in page and "could not be drawn" not in page
    assert "Not drawn" in page and "semi is not ACR-based" in page


def test_semi_diagnostics_absent_without_its_keys(tmp_path):
    lines = [{"kind": "eval", "step": s, "top1": 50.0, "window_hard_acc": 0.3, "window_mask_rate": 0.6,
              "pseudo_label_accuracy": 0.7} for s in (10, 20)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    page = write_report(tmp_path).read_text()  # no config: the algorithm is unknown
    assert not (tmp_path / "report" / "semi_diagnostics.png").exists()
    assert "diagnostics (bank purity, prototype and OHEML statistics) not logged" in page
    (tmp_path / "config.yaml").write_text("algorithm: {name: fixmatch}\n")
    assert "fixmatch has no SeMi components" in write_report(tmp_path).read_text()
    (tmp_path / "config.yaml").write_text("algorithm: {name: acr+semi}\n"
                                          "semi: {memory_bank: false, prototypes: false, oheml: false}\n")
    assert "memory bank, prototypes and OHEML are switched off" in write_report(tmp_path).read_text()
    nulls = [{**rec, "bank_purity": None, "window_proto_acc": None, "window_hard_acc": None} for rec in lines]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in nulls) + "\n")
    (tmp_path / "config.yaml").write_text("algorithm: {name: acr+semi}\n")
    page = write_report(tmp_path).read_text()
    assert "diagnostics hold no values yet" in page  # only the grey reference lines would be left


def _records() -> list[dict]:
    records = []
    for setting in ("consistent", "reversed"):
        for m, method in enumerate(("fixmatch", "acr", "semi")):
            for seed in range(3):
                acc = [90.0 - 8 * k + m * 3 + seed for k in range(10)]
                records.append({"setting": setting, "method": method, "seed": seed, "top1": 70.0 + 3 * m + seed,
                                "balanced_accuracy": 65.0 + 3 * m - seed, "per_class_accuracy": acc})
    records.append({"setting": "reversed", "method": "supervised", "seed": 0, "top1": 50.0,
                    "balanced_accuracy": None, "per_class_accuracy": [float("nan")] * 10})
    return records


def test_sweep_figures(tmp_path):
    records = _records()
    for path in (plot_method_comparison(records, tmp_path / "cmp.png"),
                 plot_per_class(records, tmp_path / "pc.png"),
                 plot_per_class(records, str(tmp_path / "pc_consistent.png"), setting="consistent",
                                methods=("fixmatch", "semi", "oracle")),
                 plot_method_comparison([], tmp_path / "cmp_empty.png"),
                 plot_per_class(records, tmp_path / "pc_none.png", setting="uniform")):
        data = Path(path).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
