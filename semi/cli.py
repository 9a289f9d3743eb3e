"""Command line: `semi train | eval | predict | export | embed | data | report | config show`.

User errors print one clear message and exit non-zero. Nothing imports torch before the configuration (and, for
`train`, the data paths and the run directory) has been checked, so a typo answers at once.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from semi import __version__
from semi.api import CONFIG_DIR, DEFAULT_CONFIG, resolve_config_path  # noqa: F401  (re-exported for callers)
from semi.errors import SemiError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="semi", description="Class-imbalanced semi-supervised learning (FixMatch, "
                                "ACR, SeMi). Settings are `section.key=value` overrides after the options.")
    p.add_argument("--version", action="version", version=f"semi {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model into a new run directory (default: SeMi on long-tailed digits)")
    t.add_argument("--config", "-c", help="YAML file or shipped config name (see semi/configs/; default: digits_lt)")
    t.add_argument("--resume", help="a checkpoint path, or 'auto': the newest valid checkpoint of train.out_dir, "
                   "else of the newest run of this config; the run's saved settings are kept")
    t.add_argument("--allow-changes", action="store_true",
                   help="on resume, let overrides change the run's settings (recorded in config.yaml, results.json)")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algorithm.name=fixmatch train.seed=1")
    e = sub.add_parser("eval", help="evaluate a checkpoint's EMA model on its run's test set")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--json", action="store_true", help="print every metric as JSON instead of the table")
    e.add_argument("overrides", nargs="*", help="e.g. data.root=/path (the rest comes from the checkpoint)")
    pr = sub.add_parser("predict", help="classify new images (files, folders, or an .npz array) with a checkpoint")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, image folders, or one .npz file")
    pr.add_argument("--out", "-o", help="CSV file to write (default: print the CSV)")
    pr.add_argument("--top-k", type=int, default=3, help="top-k classes per image in the CSV (default 3)")
    pr.add_argument("--embeddings", help="also write the embeddings to this .npy file")
    pr.add_argument("--head", choices=("standard", "balanced"), help="default: the algorithm's evaluation head")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    pr.add_argument("--batch-size", type=int, default=256)
    x = sub.add_parser("export", help="write a checkpoint's model as a file that torch alone loads and runs")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True, help="output file, e.g. model.pt2")
    x.add_argument("--head", choices=("standard", "balanced"), help="default: the algorithm's evaluation head")
    m = sub.add_parser("embed", help="turn an image folder or a text file into a features file with an encoder "
                       "whose weights are on disk")
    m.add_argument("input", help="a folder of class folders of images, or a text file (one example a line, "
                   "optionally label<TAB>text)")
    m.add_argument("--encoder", required=True, help="semi:CHECKPOINT, torchvision:NAME, timm:NAME (with --weights), "
                   "or sentence-transformers:DIR")
    m.add_argument("--weights", help="the encoder's weights file (torchvision and timm encoders)")
    m.add_argument("--out", "-o", required=True, help="the .npz features file to write")
    m.add_argument("--image-size", type=int, default=224, help="images are resized to this square (default 224)")
    m.add_argument("--batch-size", type=int, default=64)
    d = sub.add_parser("data", help="print the per-class labeled/unlabeled counts of a config")
    d.add_argument("--config", "-c")
    d.add_argument("overrides", nargs="*")
    r = sub.add_parser("report", help="plots and an HTML page from a run directory")
    r.add_argument("run_dir")
    c = sub.add_parser("config", help="`semi config show`: the resolved configuration with each field's doc")
    c.add_argument("action", choices=("show",))
    c.add_argument("--config", "-c")
    c.add_argument("overrides", nargs="*")
    return p


def cmd_train(args: argparse.Namespace) -> int:
    from semi.api import train

    result = train(args.config, resume=args.resume, allow_changes=args.allow_changes, overrides=args.overrides)
    if _is_main():
        print(format_results(result.results))
        print(f"results: {result.results_path}")
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def format_results(results: dict) -> str:
    m, s = results["metrics"], results["summary"]
    lines = [f"test top-1 {m['top1']:.2f}%  balanced {m['balanced_accuracy']:.2f}%  head/medium/tail "
             f"{m['head_accuracy']:.1f}/{m['medium_accuracy']:.1f}/{m['tail_accuracy']:.1f}%  ({m['head_used']} head)"]
    if s:
        lines.append(f"best top-1 {s.get('best_top1', float('nan')):.2f}%  mean of last 20 evaluations "
                     f"{s.get('mean_last20_top1', float('nan')):.2f}%")
    if results.get("mask_rate") is not None:
        pl = results["pseudo_labels"]
        lines.append(f"mask rate {100 * results['mask_rate']:.1f}%  pseudo-label accuracy "
                     f"{100 * pl['pseudo_label_accuracy']:.1f}%")
    lines.append(f"{results['steps']} steps in {results['train_seconds']:.0f} s")
    return "\n".join(lines)


def format_eval(ev: dict) -> str:
    """A short table: the evaluation head's top-1, balanced and head/medium/tail, then per class for both heads."""
    heads = ev["heads"]
    names = ev.get("class_names") or [str(k) for k in range(len(ev["per_class_accuracy"]))]
    groups = {k: g for g, ks in ev.get("class_groups", {}).items() for k in ks}
    lines = [f"{ev['checkpoint']} (step {ev['step']}); evaluation head: {ev['head_used']}", ""]
    lines.append(f"{'head':<10} {'top-1':>7} {'balanced':>9} {'head':>7} {'medium':>7} {'tail':>7} {'macro-F1':>8} "
                 f"{'ECE':>6} {'LT test':>8} {'rev. test':>9}")
    for name in ("standard", "balanced"):
        h = heads[name]
        mark = " *" if name == ev["head_used"] else ""
        shifted = h.get("shifted_accuracy", {})
        extra = " ".join(f"{'-' if v is None or math.isnan(v) else f'{v:.2f}':>{w}}" for v, w in (
            (h.get("macro_f1"), 8), (h.get("ece"), 6), (shifted.get("consistent"), 8), (shifted.get("reversed"), 9)))
        lines.append(f"{name:<10} {h['top1']:>7.2f} {h['balanced_accuracy']:>9.2f} {h['head_accuracy']:>7.2f} "
                     f"{h['medium_accuracy']:>7.2f} {h['tail_accuracy']:>7.2f} {extra}{mark}")
    width = max(5, *(len(n) for n in names))
    lines += ["", f"{'class':<{width}} {'group':<6} {'standard':>9} {'balanced':>9}"]
    for k, n in enumerate(names):
        cells = [heads[h]["per_class_accuracy"][k] for h in ("standard", "balanced")]
        lines.append(f"{n:<{width}} {groups.get(k, ''):<6} " + " ".join(
            f"{'-' if math.isnan(v) else f'{v:.1f}':>9}" for v in cells))
    if "validation" in ev:
        lines += ["", f"validation top-1 {ev['validation']['top1']:.2f}% (balanced "
                  f"{ev['validation']['balanced_accuracy']:.2f}%)"]
    lines.append("(accuracies in %; ECE: expected calibration error, 15 bins; LT / rev. test: the expected accuracy "
                 "on the test set resampled to the labeled class mix / its reverse; * the head `semi train` reports; "
                 "--json for every metric, top-5 included)")
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from semi.api import evaluate
    from semi.engine.logging import to_json

    ev = evaluate(args.checkpoint, overrides=args.overrides)
    if args.json:
        print(to_json({k: v for k, v in ev.items() if k != "heads"}))
    else:
        print(format_eval(ev))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from semi.api import predict

    if args.top_k < 1 or args.batch_size < 1:
        raise SemiError("--top-k and --batch-size must be >= 1")
    preds = predict(args.checkpoint, args.inputs, head=args.head, device=args.device, batch_size=args.batch_size,
                    embeddings=args.embeddings is not None)
    text = preds.to_csv(args.out, k=args.top_k)
    if args.embeddings:
        import numpy as np

        np.save(args.embeddings, preds.embeddings)
    if args.out:
        print(f"{len(preds.sources)} predictions ({preds.head} head) written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from semi.api import export

    how = export(args.checkpoint, args.out, head=args.head)
    load = "torch.export.load(path).module()" if how == "torch.export" else "torch.jit.load(path)"
    print(f"{args.out}: {how}; load with {load}; input uint8 images (N, H, W, C), or float32 vectors (N, D) for a "
          "model of feature vectors (its semi.json says which), output class probabilities")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from semi.api import load_config
    from semi.data.prepare import prepare_data

    cfg = load_config(args.config, args.overrides)
    data = prepare_data(cfg)
    print(f"{cfg.data.name}: {data.num_classes} classes, N_1={cfg.data.num_labeled_max}, "
          f"M_1={cfg.data.num_unlabeled_max}, gamma_l={cfg.data.imbalance_labeled}, "
          f"unlabeled {cfg.data.unlabeled_distribution}")
    print(data.describe())
    print(f"split digest {data.split.digest()[:16]}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from semi.embed import embed

    shapes = embed(args.input, args.encoder, args.out, args.weights, args.image_size, args.batch_size)
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in shapes.items()) +
          f"; train on it with data.name=features data.path={args.out} model.name=mlp")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from semi.extras import require

    require("matplotlib", "semi report")
    from semi.evaluation.report import write_report

    page = write_report(Path(args.run_dir))
    print(f"report: {page}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from semi.api import load_config
    from semi.config_docs import show_config

    print(show_config(load_config(args.config, args.overrides)))
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "export": cmd_export, "embed": cmd_embed,
            "data": cmd_data, "report": cmd_report, "config": cmd_config}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides (and predict's inputs) may also follow an option (`semi train --resume auto a=1 --config c.yaml
    # b=2`): plain argparse takes only the first run of positionals and calls the rest unrecognized, so they are
    # collected here in order.
    args, extra = parser.parse_known_args(argv)
    rest = "overrides" if hasattr(args, "overrides") else "inputs" if hasattr(args, "inputs") else None
    unknown = [a for a in extra if a.startswith("-") or rest is None]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        setattr(args, rest, [*getattr(args, rest), *extra])
    try:
        return COMMANDS[args.command](args)
    except SemiError as exc:
        print(f"semi {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
