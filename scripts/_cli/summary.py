"""The summary train.py prints at the end of a run."""
from __future__ import annotations

import argparse
import os

import backends
import xpnet
from xpnet import checkpoint as ckpt

from .data import dataset_label
from .model import describe
from .prepare import Prepared
from .report import DIAGNOSTICS_COLUMNS, diagnostics_rows, fmt, hp, metrics_text, text_table
from .resume import resumed_line
from .training import describe_batch

NO_TEST_SPLIT = "--test-split 0: no test split; these metrics are on the training data"


def run_summary(args: argparse.Namespace, backend: backends.Backend, prep: Prepared, model: xpnet.Network,
                config: dict, record: dict, metrics: dict, fit_seconds: float, total_seconds: float, out: str,
                files: list[str], ck: ckpt.Checkpoint | None = None) -> str:
    """What a finished run prints: data, model, training, final epoch, metrics (and on which split),
    --diagnostics' table, time and outputs."""
    pe = record["per_epoch"]
    sizes = prep.sizes
    if prep.task == "regression":
        kind = "regression"
    else:
        kind = f"{prep.task}, {len(prep.classes)} classes"
    sched = args.schedule + (f" + {args.warmup}-step warm-up" if args.warmup else "")
    lr = f"{args.lr:.3g} from --lr auto" if config.get("lr_find") else hp(args.lr)
    extras = [f"L2 {hp(args.l2)}"] + ([f"clip-norm {hp(args.clip_norm)}"] if args.clip_norm else []) \
        + ([f"weight decay {hp(config['optimizer'].get('weight_decay'))}"] if args.optimizer == "adamw" else [])
    last = {k: pe[k][-1] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}
    final = f"epoch {pe['epoch'][-1]}: train loss {fmt(last['train_loss'])}"
    if last["val_loss"] is None:
        final += (f", train accuracy {fmt(last['train_accuracy'])}" if last["train_accuracy"] is not None else "") \
            + " (no validation split)"
    else:
        final += f", val loss {fmt(last['val_loss'])}" + (
            f", val accuracy {fmt(last['val_accuracy'])}" if last["val_accuracy"] is not None else "")
    if prep.task == "regression":
        final += " (losses on the standardized target)"
    if record["stopped_early"]:
        final += f" (stopped early; best epoch {record['best_epoch']} restored)"
    if pe.get("loss_scale"):
        final += f"; loss scale {pe['loss_scale'][-1]:g}, {sum(pe['skipped_steps'])} steps skipped"
    evaluated = metrics_text(metrics) + (f"  ({NO_TEST_SPLIT})" if metrics["split"] == "train" else "")
    precision = model.precision.describe() if model.precision.low else model.dtype_name
    n_epochs = max(1, len(pe["epoch"]) - (ck.epoch if ck is not None else 0))
    lines = [
        f"xpnet train: {dataset_label(args.dataset)} on {backend.spec} ({backend.describe()})",
        f"  data      {prep.data.X.shape[0]} samples x {prep.data.X.shape[1]} features, {kind}; "
        f"train {sizes['train']}, validation {sizes['val']}, test {sizes['test']}",
        f"  model     {describe(model)}, {model.n_params:,} parameters, {precision}, seed {args.seed}",
        f"  training  {args.optimizer} lr {lr} ({sched}), {config['settings']['loss']} loss, "
        f"batch {describe_batch(args, prep)}, {', '.join(extras)}; {len(pe['epoch'])} epochs x "
        f"{record['steps_per_epoch']} step{'s' if record['steps_per_epoch'] != 1 else ''}",
        *([f"  parallel  {config['distributed']}"] if config.get("distributed") else []),
        *([resumed_line(ck, record)] if ck is not None else []),
        f"  final     {final}",
        f"  {metrics['split']:<10}{evaluated}",
        *diagnostics_lines(pe),
        f"  time      {fit_seconds:.2f} s training ({1000 * fit_seconds / n_epochs:.1f} ms/epoch), "
        f"{total_seconds:.2f} s in all",
        f"  outputs   {out}{os.sep}",
        f"            {' '.join(files)}",
    ]
    return "\n".join(lines)


def diagnostics_lines(pe: dict) -> list[str]:
    """--diagnostics: the last recorded epoch's per-layer statistics as a table."""
    recorded = [(e, d) for e, d in zip(pe["epoch"], pe.get("diagnostics") or []) if d]
    if not recorded:
        return []
    epoch, stats = recorded[-1]
    return [f"  diagnostics of epoch {epoch}'s last batch (warnings, if any, on stderr):",
            *text_table(diagnostics_rows(stats), DIAGNOSTICS_COLUMNS, indent=" " * 12)]
