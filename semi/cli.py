"""Command line: `semi train | eval | data | report`. User errors print one clear message and exit non-zero."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semi.errors import SemiError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = "digits_lt"


def resolve_config_path(name: str | None) -> Path | None:
    """A path, or the name of a shipped config (`cifar10_lt` -> semi/configs/cifar10_lt.yaml); None: the default run."""
    if name is None:
        name = DEFAULT_CONFIG
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    shipped = CONFIG_DIR / f"{name}.yaml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) if CONFIG_DIR.is_dir() else "none"
    raise SemiError(f"config {name!r} is neither a file nor a shipped config; shipped configs: {known}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="semi", description="Class-imbalanced semi-supervised learning (FixMatch, "
                                "ACR, SeMi). Settings are `section.key=value` overrides after the options.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model (default: SeMi on long-tailed digits, no download)")
    t.add_argument("--config", "-c", help="YAML file or shipped config name (see semi/configs/; default: digits_lt)")
    t.add_argument("--resume", help="checkpoint path, or 'auto' for the newest valid one in train.out_dir")
    t.add_argument("overrides", nargs="*", help="dotted overrides, e.g. algorithm.name=fixmatch train.seed=1")
    e = sub.add_parser("eval", help="evaluate a checkpoint's EMA model on the test set")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("overrides", nargs="*", help="e.g. data.root=/path (the rest comes from the checkpoint)")
    d = sub.add_parser("data", help="print the per-class labeled/unlabeled counts of a config")
    d.add_argument("--config", "-c")
    d.add_argument("overrides", nargs="*")
    r = sub.add_parser("report", help="plots and an HTML page from a run directory")
    r.add_argument("run_dir")
    return p


def cmd_train(args: argparse.Namespace) -> int:
    from semi.config import load_config
    from semi.engine import distributed
    from semi.engine.trainer import Trainer

    cfg = load_config(resolve_config_path(args.config), args.overrides)
    distributed.init_from_env(cfg.train.device)
    try:
        trainer = Trainer(cfg)
        if args.resume:
            path = trainer.resume(args.resume)
            if path is not None and trainer.is_main:
                print(f"resumed from {path} at step {trainer.step}", file=sys.stderr)
        if trainer.is_main:
            print(trainer.data.describe().splitlines()[-1], file=sys.stderr)
        results = trainer.fit()
        if trainer.is_main:
            print(format_results(results))
            print(f"results: {Path(cfg.train.out_dir) / 'results.json'}")
    finally:
        distributed.shutdown()
    return 0


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


def cmd_eval(args: argparse.Namespace) -> int:
    from semi.config import config_from_dict, deep_merge, parse_overrides
    from semi.engine.checkpoint import load_checkpoint
    from semi.engine.logging import to_json
    from semi.engine.trainer import Trainer
    from semi.errors import CheckpointError

    state = load_checkpoint(Path(args.checkpoint))
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{args.checkpoint} holds no run configuration (not written by `semi train`?)")
    over, problems = parse_overrides(args.overrides)
    if problems:
        raise SemiError("\n".join(problems))
    values = deep_merge(state["config"], over)
    values["train"] = {**values.get("train", {}), "progress": False, "tensorboard": False}
    cfg = config_from_dict(values)
    trainer = Trainer(cfg, read_only=True)
    trainer.load_state_dict(state, Path(args.checkpoint))
    ev = trainer.evaluate()
    out = {k: v for k, v in ev.items() if k != "heads"}
    print(to_json({"checkpoint": str(args.checkpoint), "step": trainer.step, **out}))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from semi.config import load_config
    from semi.data.prepare import prepare_data

    cfg = load_config(resolve_config_path(args.config), args.overrides)
    data = prepare_data(cfg)
    print(f"{cfg.data.name}: {data.num_classes} classes, N_1={cfg.data.num_labeled_max}, "
          f"M_1={cfg.data.num_unlabeled_max}, gamma_l={cfg.data.imbalance_labeled}, "
          f"unlabeled {cfg.data.unlabeled_distribution}")
    print(data.describe())
    print(f"split digest {data.split.digest()[:16]}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from semi.evaluation.report import write_report

    page = write_report(Path(args.run_dir))
    print(f"report: {page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may also follow an option (`semi train --resume auto a=1 --config c.yaml b=2`): plain argparse
    # takes only the first run of positionals and calls the rest unrecognized, so they are collected here in order.
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    command = {"train": cmd_train, "eval": cmd_eval, "data": cmd_data, "report": cmd_report}[args.command]
    try:
        return command(args)
    except SemiError as exc:
        print(f"semi {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
