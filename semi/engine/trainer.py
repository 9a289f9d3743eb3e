"""The training loop. Everything it calls is a named function elsewhere; the loop itself is `Trainer.fit`.

One step: batch (uint8, built from the step number) -> normalise on the device -> algorithm.training_step
(one forward over all views, pseudo-labels, components, losses) -> backward -> optimiser and schedule -> EMA
-> every `log_every` steps the accumulated scalars are read once (no host sync per step) -> every
`eval_every` steps the EMA model is evaluated, the history logged, a checkpoint written.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semi import distributed as dist
from semi.algorithms.base import StepInfo
from semi.config import Config, recipe_record, save_config
from semi.data.layout import normalize
from semi.data.loaders import augment_batch, make_loader
from semi.data.prepare import PreparedData, prepare_data
from semi.engine.assembly import build_run
from semi.engine.checkpoint import CheckpointManager, atomic_write_text, load_checkpoint
from semi.engine.logging import MetricsLogger, environment, to_json
from semi.engine.runtime import amp_dtype, resolve_device, seed_everything  # noqa: F401  (re-exported)
from semi.engine.step_totals import FirstNonFinite, StepTotals, WindowSums
from semi.errors import CheckpointError, SemiError
from semi.evaluation.evaluate import evaluate_heads, soft_confusion
from semi.evaluation.metrics import summarize_history, window_means
from semi.runs import check_can_create, new_run_dir

STEP_VIEWS = ("x_l", "u_w", "u_s1", "u_s2")
"""The image views of a training batch, in the order of the step's forward pass."""


def make_run_dir(run_dir: Path) -> None:
    """Create the run directory (only once the run can start: a failed start leaves no folder behind)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SemiError(f"output directory {run_dir} is not writable: {exc.strerror or exc}") from None


def progress_text(scalars: dict[str, float], top1: float | None) -> str:
    """The progress bar's postfix in fixed widths (placeholders until a value exists)."""
    loss = scalars.get("loss")
    mask = scalars.get("mask_rate")
    return (f"loss {'-' if loss is None else f'{loss:.4f}':>7}"
            f"  mask {'-' if mask is None else f'{100 * mask:.1f}%':>6}"
            f"  acc {'-' if top1 is None else f'{top1:.1f}%':>6}")


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary and exits cleanly."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\nreceived {signal.Signals(signum).name}: saving a checkpoint at the end of this step (under "
              f"DDP: at the next log boundary)",
              file=sys.stderr)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def numpy_rng_state() -> list[Any]:
    """numpy's global generator state as tensors and plain values (a checkpoint loads with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def set_numpy_rng_state(state: Any) -> None:
    """Restore `numpy_rng_state()`'s value, or an older checkpoint's raw `np.random.get_state()` tuple."""
    name, keys, *rest = state
    if isinstance(keys, torch.Tensor):
        keys = keys.numpy().astype(np.uint32)
    np.random.set_state((name, keys, *rest))


class Cadence:
    """When the loop does what, from the step counter: epoch starts, log boundaries (every `log_every`, every
    evaluation, the last step) and evaluations (every `eval_every` and the last step)."""

    def __init__(self, t: Any, total: int):
        self.t, self.total = t, total

    def epoch_starts(self, step: int) -> bool:
        return step % self.t.steps_per_epoch == 0

    def evaluates(self, done: int) -> bool:
        """After `done` steps."""
        return done % self.t.eval_every == 0 or done == self.total

    def logs(self, done: int) -> bool:
        return done % self.t.log_every == 0 or self.evaluates(done)


class WindowClock:
    """Wall time of a log window and the share of it spent fetching batches."""

    def __init__(self) -> None:
        self.start, self.data_seconds = time.perf_counter(), 0.0

    @contextmanager
    def data(self):
        t0 = time.perf_counter()
        yield
        self.data_seconds += time.perf_counter() - t0

    @contextmanager
    def paused(self):
        """Time spent inside (evaluations, checkpoints) is not the window's: step_seconds and train_seconds count
        data loading and training steps only."""
        t0 = time.perf_counter()
        yield
        self.start += time.perf_counter() - t0

    def read(self) -> tuple[float, float]:
        """(seconds since the window started, less paused time, of which fetching data)."""
        return time.perf_counter() - self.start, self.data_seconds

    def reset(self) -> None:
        self.start, self.data_seconds = time.perf_counter(), 0.0


class Trainer:
    def __init__(self, cfg: Config, data: PreparedData | None = None, read_only: bool = False):
        """read_only (`semi eval`): touch nothing in the run directory, which a training may be writing to. Nothing
        is created on disk here: the run directory appears when `fit` starts."""
        self.cfg = cfg
        t = cfg.train
        if t.out_dir is None:
            t.out_dir = str(new_run_dir(cfg))
        self.run_dir = Path(t.out_dir)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        self.is_main = self.rank == 0
        if self.is_main and not read_only:
            check_can_create(self.run_dir)
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = dist.device_for_rank(resolve_device(t.device))
        seed_everything(t.seed, t.deterministic)

        self.data = data if data is not None else prepare_data(cfg)
        run = build_run(cfg, self.data, self.device, self.rank, self.world_size)
        self.model, self.ema, self.eval_model, self.algorithm = run.model, run.ema, run.eval_model, run.algorithm
        self.train_model, self.optimizer, self.scheduler = run.train_model, run.optimizer, run.scheduler
        self.amp_dtype, self.scaler, self.batches = run.amp_dtype, run.scaler, run.batches
        self.mean, self.std, self.labeled_counts = run.mean, run.std, run.labeled_counts
        self.checkpoints = CheckpointManager(self.run_dir, t.keep_checkpoints)
        if self.is_main and not read_only:
            self.checkpoints.remove_stale_temporaries()
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best_val: float | None = None
        self.skipped_steps = 0
        self.train_seconds = 0.0
        self.first_step_seconds: float | None = None
        self.config_changes: list[dict[str, Any]] = []  # settings changed on resume (--allow-changes), in order
        self._eval_window = WindowSums()  # step logs since the last evaluation (its diagnostics)

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "algorithm": self.algorithm.state_dict(),
            "history": self.history, "best_val": self.best_val, "skipped_steps": self.skipped_steps,
            "train_seconds": self.train_seconds, "config_changes": self.config_changes,
            # a signal-time save is mid-window
            "eval_window": {"sums": self._eval_window.sums(), "steps": self._eval_window.steps},
            "rng": {"python": random.getstate(), "numpy": numpy_rng_state(), "torch": torch.get_rng_state(),
                    # this device's generator only: get_rng_state_all() would wake every visible GPU
                    "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
            "config": self.cfg.to_dict(), "signature": self.signature(), "preprocessing": self.preprocessing(),
        }

    def preprocessing(self) -> dict[str, Any]:
        """What `semi predict` and `semi export` need to treat new images as this run's evaluation does."""
        d = self.data
        return {"mean": list(d.mean), "std": list(d.std), "image_shape": list(d.test_images.shape[1:]),
                "class_names": list(d.class_names), "source": self.cfg.data.name,
                "eval_head": self.algorithm.eval_head}

    def signature(self) -> dict[str, Any]:
        """What a checkpoint must share with this run to be resumable into it."""
        return {"num_classes": self.data.num_classes, "model": self.cfg.model.name,
                "embed_dim": self.model.embed_dim, "algorithm": self.cfg.algorithm.name,
                "split_digest": self.data.split.digest(), "in_channels": int(self.data.images.shape[-1])}

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        theirs, ours = state.get("signature", {}), self.signature()
        diffs = [f"{k}: checkpoint {theirs.get(k)!r}, this run {v!r}" for k, v in ours.items() if theirs.get(k) != v]
        if diffs:
            raise CheckpointError(f"checkpoint {source} comes from a different setup:\n" +
                                  "\n".join(f"  - {d}" for d in diffs))
        try:
            self.model.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.algorithm.load_state_dict(state["algorithm"])
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[:3]
            raise CheckpointError(f"checkpoint {source} does not fit this run's model or algorithm state (saved by "
                                  f"another semi version or setup?): {' '.join(first)}") from None
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.best_val = state["best_val"]
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.config_changes = list(state.get("config_changes", []))
        window = state.get("eval_window", {"sums": {}, "steps": 0})
        # in place, like every reset of the window: a running loop's StepTotals holds this object
        self._eval_window.restore({k: v.to(self.device) for k, v in window["sums"].items()}, int(window["steps"]))
        rng = state["rng"]
        random.setstate(rng["python"])
        set_numpy_rng_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        cuda_rng = rng.get("cuda")
        if isinstance(cuda_rng, torch.Tensor) and self.device.type == "cuda":  # (older checkpoints: a list)
            torch.cuda.set_rng_state(cuda_rng, self.device)

    def resume(self, spec: str) -> Path | None:
        """spec: a checkpoint path, or 'auto' (the newest valid checkpoint of the run directory, if any)."""
        if spec == "auto":
            found = self.checkpoints.newest_valid(set_aside=self.is_main)
            if found is None:
                print(f"no checkpoint in {self.checkpoints.folder}: starting a new run", file=sys.stderr)
                return None
            path, state = found
        else:
            path = Path(spec)
            state = load_checkpoint(path, trusted=True)
        self.load_state_dict(state, path)
        return path

    # ------------------------------------------------------------------------------------------ loop
    def info(self, step: int) -> StepInfo:
        spe = self.cfg.train.steps_per_epoch
        return StepInfo(step=step, epoch=step // spe, total_steps=self.cfg.total_steps,
                        total_epochs=self.cfg.train.epochs)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch on the device, its inputs as normalised floats. The input views of a step are normalised
        together into `x_all` (x_l, u_w, u_s1, u_s2 in that order: the order of the training step's one forward
        pass, which then needs no concatenation of its own), and each view is a slice of it."""
        out = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if k != "augment_seed"}
        if "augment_seed" in batch:  # data.augment_on=device: the raw images are here, augment them here
            out = augment_batch({**out, "augment_seed": batch["augment_seed"]}, self.batches.augmenter)
        views = [k for k in STEP_VIEWS if k in out]
        if views:
            x = normalize(torch.cat([out[k] for k in views]), self.mean, self.std)  # images: the cat is on uint8
            if self.cfg.train.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            out["x_all"] = x
            out.update(zip(views, x.split([len(out[k]) for k in views])))
        return out

    def fit(self) -> dict[str, Any]:
        total, cadence = self.cfg.total_steps, Cadence(self.cfg.train, self.cfg.total_steps)
        logger = self._open_run_dir()
        loader = make_loader(self.batches, self.step, self.cfg.data.num_workers, self.cfg.data.prefetch,
                             pin_memory=self.device.type == "cuda")
        progress = self._progress_bar()
        totals = StepTotals(self.device, self._eval_window)  # loss/log sums and the non-finite check, no sync
        clock = WindowClock()
        stopped = False
        with _StopRequest() as stop, self._loader_guard(loader):
            while self.step < total:
                step, info = self.step, self.info(self.step)
                if cadence.epoch_starts(step):
                    self.algorithm.on_epoch_start(info.epoch)
                with clock.data():
                    batch = self.to_device(self._next_batch(loader))
                result = self.train_step(batch, info)
                if self.first_step_seconds is None:  # the compilation under train.compile (one sync per process)
                    self.first_step_seconds = self._first_step_time(clock)
                self.step += 1
                if result is not None:  # None: a skipped non-finite step (train.nonfinite=skip)
                    totals.add(step, result)
                if progress is not None:
                    progress.update(1)
                boundary = cadence.logs(self.step)
                stopped = self._stop_agreed(stop.signal, boundary)
                if boundary or stopped:
                    self._log_window(logger, totals, clock, progress)
                with clock.paused():
                    if cadence.evaluates(self.step):
                        self.evaluate_and_checkpoint(logger)
                    elif stopped:
                        self.save_checkpoint()
                if stopped:
                    break
        if progress is not None:
            progress.close()
        logger.close()
        if stopped and self.step < total:
            how = signal.Signals(stop.signal).name if stop.signal else "a signal to another rank"
            raise SemiError(f"stopped by {how} at step {self.step}; checkpoint saved in {self.checkpoints.folder} "
                            f"(continue with: semi train --resume auto train.out_dir={self.run_dir})", exit_code=130)
        return self.finish()

    def _first_step_time(self, clock: WindowClock) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return clock.read()[0]

    def _open_run_dir(self) -> MetricsLogger:
        """Create (or tidy, on resume) the run directory, write config.yaml, open the metrics log."""
        if self.is_main:
            make_run_dir(self.run_dir)
        logger = MetricsLogger(self.run_dir, self.cfg.train.tensorboard, enabled=self.is_main)
        try:
            logger.drop_after(self.step)  # lines a killed run logged past its checkpoint (or an older run's lines)
            if self.is_main:  # checkpoints past this start (an older checkpoint resumed, or a reused run directory)
                self.checkpoints.set_aside_newer_than(self.step)
        except OSError as exc:
            raise SemiError(f"could not tidy the run directory {self.run_dir} before training: {exc}") from None
        if self.is_main:
            save_config(self.cfg, self.run_dir / "config.yaml", comments=[
                f"changed on resume at step {c['step']} (--allow-changes): " +
                ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in c["changes"].items())
                for c in self.config_changes])
        return logger

    def _progress_bar(self) -> Any:
        if not (self.cfg.train.progress and self.is_main):
            return None
        from tqdm import tqdm

        total = self.cfg.total_steps
        width = len(str(total))  # every field has a fixed width, so the bar does not jump as the numbers change
        progress = tqdm(total=total, initial=self.step, desc=self.cfg.algorithm.name, dynamic_ncols=True,
                        file=sys.stderr, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt:>" + str(width) +
                        "}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt:>11}]{postfix}")
        progress.set_postfix_str(progress_text({}, None), refresh=False)
        return progress

    def _log_window(self, logger: MetricsLogger, totals: StepTotals, clock: WindowClock, progress: Any) -> None:
        """At a log boundary: check the window's steps were finite, log its means and timings, reset it."""
        self._check_finite(totals.nonfinite)
        elapsed, data_seconds = clock.read()
        self.train_seconds += elapsed
        window = totals.window.steps
        scalars = totals.window.means()
        scalars.update(lr=self.optimizer.param_groups[0]["lr"], step_seconds=elapsed / max(window, 1),
                       data_share=data_seconds / max(elapsed, 1e-9))
        logger.log("train", self.step, scalars)
        if progress is not None:
            progress.set_postfix_str(progress_text(scalars, self.history[-1]["top1"] if self.history else None),
                                     refresh=False)
        totals.window.reset()
        clock.reset()  # the logging above is not part of the next window

    def _stop_agreed(self, signalled: int | None, boundary: bool) -> bool:
        """Stop after this step? A single process stops at once. Under DDP every rank must stop after the same
        step (one that leaves early strands the others in a collective), so the ranks agree at log boundaries."""
        if self.world_size == 1:
            return signalled is not None
        if not boundary:
            return False
        flag = torch.tensor(float(signalled is not None), device=self.device)
        return bool(dist.all_reduce_max(flag) > 0)

    def train_step(self, batch: dict[str, torch.Tensor], info: StepInfo):
        """Forward, losses, backward, optimiser, schedule, EMA. Returns None for a skipped non-finite step."""
        self.train_model.train()
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        skip_mode = self.cfg.train.nonfinite == "skip"
        if skip_mode:  # what the step observes (bank, estimates, counters) is rolled back if it is skipped
            saved = {k: v.clone() for k, v in self.algorithm.state_dict().items()}
        with autocast:
            result = self.algorithm.training_step(self.train_model, batch, info)
        if skip_mode:
            # one host sync per step, the price of this mode; all ranks skip together or none does (DDP)
            finite = torch.isfinite(result.loss).float()
            if not bool(dist.all_reduce_min(finite) > 0):
                self.optimizer.zero_grad(set_to_none=True)
                self.algorithm.load_state_dict(saved)
                self.skipped_steps += 1
                return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(result.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.ema.update(self.model)
        return result

    def _next_batch(self, loader: Any) -> dict[str, torch.Tensor]:
        try:
            return next(loader)
        except (ConnectionError, EOFError) as exc:  # the worker end of a batch transfer went away
            raise self._worker_failed(exc) from None

    def _worker_failed(self, exc: BaseException) -> SemiError:
        return SemiError(f"a data loader worker died at step {self.step} ({type(exc).__name__}: {exc}); the last "
                         f"checkpoint is in {self.checkpoints.folder}. Try fewer data.num_workers (memory?) or 0")

    @contextmanager
    def _loader_guard(self, loader: Any):
        """A dead worker surfaces as a RuntimeError from DataLoader's SIGCHLD handler, wherever the main thread is
        at that moment (often mid-step, not in next()): say what happened. Always end the workers, so that their
        handler cannot fire again after the run has stopped."""
        try:
            yield
        except RuntimeError as exc:
            if "DataLoader worker" in str(exc):
                raise self._worker_failed(exc) from None
            raise
        finally:
            shutdown = getattr(loader, "_shutdown_workers", None)
            if shutdown is not None:
                try:
                    shutdown()
                except RuntimeError:  # the dead worker reported once more while shutting down: already handled
                    pass

    def _check_finite(self, nonfinite: FirstNonFinite) -> None:
        first_bad = nonfinite.step
        if self.world_size > 1:  # every rank stops on any rank's bad step (DDP has averaged it into all weights)
            never = torch.iinfo(torch.long).max
            first_bad = dist.all_reduce_min(torch.where(first_bad >= 0, first_bad, never))
            first_bad = torch.where(first_bad == never, -1, first_bad)
        bad = int(first_bad)
        if bad >= 0:
            # this rank's terms (under DDP: if the bad step was its own)
            names = nonfinite.bad_term_names()
            terms = f" in loss term(s) {', '.join(names)}" if names else ""
            raise SemiError(f"non-finite loss at step {bad}{terms}; stopping. The last good checkpoint in "
                            f"{self.checkpoints.folder} was kept (train.nonfinite=skip skips such steps instead)")

    def save_checkpoint(self) -> None:
        if self.is_main:
            self.checkpoints.save(self.step, self.state_dict())

    def evaluate_and_checkpoint(self, logger: MetricsLogger) -> dict[str, Any]:
        ev = self.evaluate()
        if self.algorithm.observes_validation and len(self.data.split.validation):
            self.algorithm.observe_validation(*self._validation_confusion(), self.info(self.step - 1))
        self.history.append({"step": self.step, **{k: ev[k] for k in ("top1", "balanced_accuracy", "head_accuracy",
                                                                        "medium_accuracy", "tail_accuracy")},
                             **({"val_top1": ev["validation"]["top1"]} if "validation" in ev else {})})
        pl = self.algorithm.pop_pseudo_label_stats() if self.algorithm.uses_unlabeled else None
        diag = self.algorithm.diagnostics()
        window = window_means(self._eval_window.sums(), self._eval_window.steps)  # e.g. mask rates, proto accuracy
        self._eval_window.reset()  # in place: the loop's StepTotals holds this object
        # per-class test accuracy at every evaluation: when a rare class is learned, not only whether
        record = {**self.history[-1], "per_class_accuracy": ev["per_class_accuracy"], **({} if pl is None else pl),
                  **diag, **window}
        record.update(self.algorithm.truth_diagnostics(self.data.unlabeled_true_counts().astype(np.float64)))
        logger.log("eval", self.step, record)
        self.last_eval = {**ev, "pseudo_labels": pl, "diagnostics": record}
        # best_val first: the step checkpoint must carry it, or a resume from it would re-pick a worse "best"
        is_best = "validation" in ev and (self.best_val is None or ev["validation"]["top1"] > self.best_val)
        if is_best:
            self.best_val = ev["validation"]["top1"]
        if self.is_main:
            self.checkpoints.save(self.step, self.state_dict())
            if is_best:
                self.checkpoints.save_best(self.state_dict())
        return ev

    def _validation_confusion(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the validation split's soft confusion, the summed softmax over the unlabeled images that are not
        labeled), both of the evaluation model (what `Algorithm.observe_validation` takes)."""
        d = self.data
        args = (d.num_classes, self.mean, self.std, self.device)
        confusion = soft_confusion(self.eval_model, d.images[d.split.validation], d.labels[d.split.validation], *args)
        pool = d.split.unlabeled[~np.isin(d.split.unlabeled, d.split.labeled)]
        sums = soft_confusion(self.eval_model, d.images[pool], np.zeros(len(pool), dtype=np.int64), *args)[:, 0]
        return confusion, sums

    def evaluate(self) -> dict[str, Any]:
        d = self.data
        head = self.algorithm.eval_head
        dist.broadcast_buffers(self.ema.module)
        args = (d.num_classes, self.labeled_counts, self.mean, self.std, self.device, self.cfg.train.channels_last)
        heads = evaluate_heads(self.eval_model, d.test_images, d.test_labels, *args)
        out: dict[str, Any] = {**heads[head], "head_used": head, "heads": heads}
        if len(d.split.validation):
            val = evaluate_heads(self.eval_model, d.images[d.split.validation], d.labels[d.split.validation], *args)
            out["validation"] = val[head]
        return out

    def finish(self) -> dict[str, Any]:
        ev = getattr(self, "last_eval", None) or {**self.evaluate(), "pseudo_labels": None, "diagnostics": {}}
        results = {
            "metrics": {k: v for k, v in ev.items() if k not in ("heads", "pseudo_labels", "diagnostics")},
            "metrics_by_head": ev["heads"],
            "summary": summarize_history(self.history),
            "pseudo_labels": ev["pseudo_labels"],
            "mask_rate": (ev["pseudo_labels"] or {}).get("mask_rate_known"),
            "diagnostics": ev["diagnostics"],
            "history": self.history,
            "steps": self.step, "skipped_steps": self.skipped_steps, "train_seconds": self.train_seconds,
            "first_step_seconds": self.first_step_seconds,
            "seed": self.cfg.train.seed, "world_size": self.world_size,
            "labeled_counts": self.labeled_counts,
            "unlabeled_counts": [int(v) for v in self.data.unlabeled_true_counts()],
            "class_names": self.data.class_names,
            "split_digest": self.data.split.digest(), "data_digest": self.data.files_digest,
            "environment": environment(), "config": self.cfg.to_dict(), "config_changes": self.config_changes,
            "recipe": recipe_record(self.cfg),
        }
        if self.best_val is not None:
            results["summary"]["best_val_top1"] = self.best_val
        if self.is_main:
            atomic_write_text(self.run_dir / "results.json", to_json(results))
        return results
