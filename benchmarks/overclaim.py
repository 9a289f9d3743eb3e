"""Where a newly learned rarest class's wrong claims may come from: a probe of finished dual-head-family runs (no
training). It reads the final models' unmasked predictions on clean images, not the pseudo-labels that passed the
masks during training.

    python benchmarks/overclaim.py RUN_DIR [RUN_DIR ...]     # e.g. runs/mnist-semiplus/reversed_semi_0
    python benchmarks/overclaim.py runs/mnist-20000/* --out results/overclaim-20000.json   # the budget curve's runs

For each run folder (its `checkpoints/latest.pt`), the split rebuilt from the run's configuration:
- on the unlabeled pool (clean images), with the online model, which makes the pseudo-labels during training:
  which share of each true class is called the rarest labeled class by the standard head's raw softmax (what
  FlexMatch's counts and the mask read), by the balanced head's training target p12 = softmax(standard logits -
  tau12 log pi_labeled) (what the balanced head learns from) and by the balanced head itself; and, with `flex`
  attached, which share of each true class FlexMatch last recorded as a confident claim of it;
- on the validation split only (never the test set), with the EMA model, which evaluation uses: the balanced
  head's top-1 as trained and after a post-hoc logit adjustment by alpha x log of its own predicted class mix on
  the pool (alpha 0.5 and 1; add-one counts), a probe of whether correcting for the pool's class mix would help.

Writes `results/overclaim.json` (one entry per run folder, replaced on a new probe) and prints, per method and
setting, the means over the probed seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
ALPHAS = (0.5, 1.0)


def called_as(pred: np.ndarray, truth: np.ndarray, k: int, num_classes: int) -> list[float]:
    """Per true class c, the share (%) of its images that `pred` calls k (nan for a class with no image)."""
    out = []
    for c in range(num_classes):
        rows = truth == c
        out.append(100.0 * float(np.mean(pred[rows] == k)) if rows.any() else float("nan"))
    return out


def mix_adjusted_top1(logits: np.ndarray, truth: np.ndarray, pool_pred: np.ndarray, alpha: float) -> float:
    """Top-1 (%) of `logits - alpha * log pi`, pi the class mix of `pool_pred` with add-one counts."""
    counts = np.bincount(pool_pred, minlength=logits.shape[1]).astype(np.float64) + 1.0
    adjusted = logits - alpha * np.log(counts / counts.sum())
    return 100.0 * float(np.mean(adjusted.argmax(1) == truth))


def _outputs(model, images: np.ndarray, pre: dict, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """(standard logits, balanced logits) of uint8 images, in batches."""
    import torch

    from semi.data.layout import normalize, stat_tensors, to_model_layout

    mean, std = stat_tensors(pre["mean"], pre["std"], tuple(pre["image_shape"]), torch.device("cpu"))
    standard, balanced = [], []
    with torch.no_grad():
        for i in range(0, len(images), 512):
            x = normalize(to_model_layout(torch.from_numpy(np.ascontiguousarray(images[i:i + 512]))), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = model(x)
            standard.append(out.logits.float())
            balanced.append(out.logits_balanced.float())
    return torch.cat(standard).numpy(), torch.cat(balanced).numpy()


def probe(run: Path) -> dict:
    """The probe's entry for one run folder."""
    import torch

    from semi.config import config_from_dict
    from semi.data.prepare import prepare_data
    from semi.engine.assembly import model_for

    state = torch.load(run / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    cfg, pre = config_from_dict(state["config"]), state["preprocessing"]
    data = prepare_data(cfg)
    k, rarest = data.num_classes, int(np.argmin(data.labeled_prior))
    pool, val = data.split.unlabeled, data.split.validation

    def loaded(weights: dict):
        model = model_for(cfg, k, int(pre["image_shape"][-1]))
        model.load_state_dict(weights)
        return model.eval()

    log_prior = state["algorithm"]["log_prior"].numpy()
    standard, balanced = _outputs(loaded(state["model"]), data.images[pool], pre, cfg.train.channels_last)
    truth = data.labels[pool]
    target12 = (standard - cfg.algorithm.tau12 * log_prior).argmax(1)
    results = run / "results.json"
    commit = json.loads(results.read_text())["environment"].get("git_commit") if results.exists() else None
    called = {"standard_raw": called_as(standard.argmax(1), truth, rarest, k),
              "balanced_target_p12": called_as(target12, truth, rarest, k),
              "balanced_head": called_as(balanced.argmax(1), truth, rarest, k)}
    entry: dict = {"run": run.name, "git_commit": commit, "step": int(state["step"]), "rarest_class": rarest,
                   "pool_called_rarest": called}
    claims = [v for name, v in state["algorithm"].items() if name.endswith(".selected")]
    if claims:
        called["flex_claims"] = called_as(claims[0].numpy(), truth, rarest, k)
    ema = loaded(state["ema"]["module"])
    _, pool_balanced = _outputs(ema, data.images[pool], pre, cfg.train.channels_last)
    _, val_balanced = _outputs(ema, data.images[val], pre, cfg.train.channels_last)
    val_truth, pool_mix = data.labels[val], pool_balanced.argmax(1)
    entry["validation_top1"] = {"as_trained": 100.0 * float(np.mean(val_balanced.argmax(1) == val_truth)),
                                **{f"mix_adjusted_{a}": mix_adjusted_top1(val_balanced, val_truth, pool_mix, a)
                                   for a in ALPHAS}}
    return entry


def summary(entries: list[dict]) -> str:
    """Per method and setting (the run name without its seed), means over runs: the pool shares of classes that the
    balanced target calls the rarest class (every other class), and the validation top-1 as trained and adjusted."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        groups[e["run"].rsplit("_", 1)[0]].append(e)
    lines = []
    for name, runs in sorted(groups.items()):
        r = runs[0]["rarest_class"]
        rarest_recall = {path: statistics.mean(e["pool_called_rarest"][path][r] for e in runs)
                         for path in runs[0]["pool_called_rarest"]}
        others = [statistics.mean(e["pool_called_rarest"]["balanced_target_p12"][c] for e in runs)
                  for c in range(len(runs[0]["pool_called_rarest"]["balanced_target_p12"])) if c != r]
        val = {key: statistics.mean(e["validation_top1"][key] for e in runs) for key in runs[0]["validation_top1"]}
        lines.append(f"{name} ({len(runs)} runs): rarest class {r} recalled on the pool by "
                     + ", ".join(f"{p} {v:.1f}%" for p, v in rarest_recall.items())
                     + f"; other classes called {r} by the balanced target: "
                     + " ".join(f"{v:.1f}" for v in others)
                     + "; validation top-1 " + ", ".join(f"{key} {v:.2f}" for key, v in val.items()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "overclaim.json")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)  # a probe beside running sweeps
    entries = [probe(run) for run in args.runs]
    old = json.loads(args.out.read_text()) if args.out.exists() else []
    names = {e["run"] for e in entries}
    args.out.write_text(json.dumps([e for e in old if e["run"] not in names] + entries, indent=1) + "\n")
    print(summary(entries))


if __name__ == "__main__":
    main()
