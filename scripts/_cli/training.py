"""Training settings from the flags: optimizer, schedule, batch, fit's keyword arguments, the learning-rate
finder; the progress bar."""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from typing import Any, Iterator

import xpnet
from xpnet.diagnostics import TrainingWarning

from .args import (FULL_BATCH, CLIError, batch_size, learning_rate, non_negative_float, non_negative_int,
                   positive_float, positive_int)
from .prepare import Prepared

DEFAULT_LR = {"sgd": 1e-2, "momentum": 1e-2, "nesterov": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


def add_training_args(p: argparse.ArgumentParser, finder: bool = True) -> None:
    """The training flags: loss, optimizer, learning rate and schedule, epochs, batch, regularization; with
    ``finder`` also ``--lr auto``, --lr-find and --diagnostics (train.py's)."""
    g = p.add_argument_group("training")
    g.add_argument("--loss", default="auto", choices=["auto"] + sorted(xpnet.nn.LOSSES),
                   help="auto (default): bce for binary, cross_entropy for multiclass, mse for regression; "
                        "cross_entropy on a binary task uses two softmax outputs")
    g.add_argument("--optimizer", default="adam", choices=sorted(xpnet.optim.OPTIMIZERS),
                   help="sgd, momentum and nesterov (SGD with momentum 0.9), adam, adamw, rmsprop "
                        "(default adam)")
    g.add_argument("--lr", type=learning_rate if finder else positive_float, metavar="LR",
                   help="learning rate > 0 (default 1e-3 for adam, adamw and rmsprop; 1e-2 for the SGD family)"
                        + ("; auto: run the learning-rate finder (--lr-find) first and train with its suggestion "
                           "(recorded in config.json and the summary)" if finder else ""))
    g.add_argument("--schedule", default="constant", choices=xpnet.optim.SCHEDULES,
                   help="learning-rate schedule over all steps: constant (default), step (x0.1 every third of "
                        "training), exponential (to 1%% of lr at the end), cosine (to 0)")
    g.add_argument("--warmup", type=non_negative_int, default=0, metavar="STEPS",
                   help="linear learning-rate warm-up over this many steps (default 0)")
    g.add_argument("--epochs", type=positive_int, default=200, help="passes over the training data (default 200)")
    g.add_argument("--batch-size", type=batch_size, default=32, metavar="N",
                   help="mini-batch size >= 1 (default 32), or 'full' for full-batch gradient descent: every "
                        "training row in one step per epoch (any N at least the number of training rows does "
                        "the same)")
    g.add_argument("--l2", type=non_negative_float, default=1e-3, metavar="LAMBDA",
                   help="L2 penalty lambda/2 * sum(W^2) on the weights, added to the loss (default 1e-3)")
    g.add_argument("--weight-decay", type=non_negative_float, metavar="WD",
                   help="decoupled weight decay of --optimizer adamw (default 0.01)")
    g.add_argument("--clip-norm", type=positive_float, metavar="C",
                   help="rescale the gradient to global L2 norm at most C before each step (default: off)")
    g.add_argument("--early-stopping", action="store_true",
                   help="stop when the validation loss has not improved for --patience epochs and "
                        "restore the best weights")
    g.add_argument("--patience", type=positive_int, help="epochs to wait for --early-stopping (default 10)")
    if not finder:
        return
    g.add_argument("--lr-find", action="store_true",
                   help="only run the learning-rate finder (xpnet.lr_find) on the training split with the model, "
                        "optimizer, loss, L2 and batch size given: 100 mini-batches at rates from 1e-7 to 1 "
                        "(stopping when the loss explodes); print the suggested rate and its rule, write "
                        "lr_find.png (loss vs learning rate, log axis, suggestion marked) and lr_find.json to the "
                        "output folder, and exit without training")
    g.add_argument("--diagnostics", action="store_true",
                   help="record per-layer gradient and activation statistics at each epoch's last batch "
                        "(fit(diagnostics=True)): the summary shows the last epoch's as a table, each warning "
                        "(dead units, vanishing or exploding gradients, with one fix) is printed once on stderr, "
                        "and diagnostics.png plots mean |dL/dW| per Dense layer over the epochs")


def check_training_args(args: argparse.Namespace, given: dict | None = None) -> None:
    """Cross-flag checks argparse cannot do (``given``: the flags on the command line); fills in the
    effective learning rate (``"auto"`` stays until the finder has run)."""
    _check_weight_decay(args)
    if args.patience is not None and not args.early_stopping:
        raise CLIError("--patience needs --early-stopping")
    if args.early_stopping and args.val_split == 0:
        raise CLIError("--early-stopping needs validation data: drop --val-split 0 (or give a fraction > 0)")
    if getattr(args, "lr_find", False) and "lr" in (given or {}):
        raise CLIError("--lr-find sweeps the learning rate itself: drop --lr")
    if args.patience is None:
        args.patience = 10
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]


def _check_weight_decay(args: argparse.Namespace) -> None:
    if args.weight_decay is not None and args.optimizer != "adamw":
        raise CLIError(f"--weight-decay applies to --optimizer adamw (not {args.optimizer}); "
                       "use --l2 for an L2 penalty with other optimizers")


def batch_rows(args: argparse.Namespace, prep: Prepared) -> int:
    """The rows of one mini-batch: --batch-size, at most the training rows ("full": all of them)."""
    n = prep.sizes["train"]
    return n if args.batch_size == FULL_BATCH else min(args.batch_size, n)


def describe_batch(args: argparse.Namespace, prep: Prepared) -> str:
    """The batch for the summary: ``32``, or ``full (720 rows)`` for full-batch training."""
    rows = batch_rows(args, prep)
    return f"full ({rows} rows)" if rows == prep.sizes["train"] else str(rows)


def steps_per_epoch(args: argparse.Namespace, prep: Prepared) -> int:
    """Steps of one epoch (the last batch may be partial)."""
    return math.ceil(prep.sizes["train"] / batch_rows(args, prep))


def make_optimizer(args: argparse.Namespace) -> xpnet.optim.Optimizer:
    """A fresh optimizer of --optimizer, --lr, --weight-decay."""
    _check_weight_decay(args)  # also for settings restored from a checkpoint
    kw = {"weight_decay": args.weight_decay} if args.weight_decay is not None else {}
    return xpnet.make_optimizer(args.optimizer, args.lr, **kw)


def make_schedule(args: argparse.Namespace, prep: Prepared) -> xpnet.optim.Schedule | None:
    """The --schedule / --warmup learning-rate schedule over all steps (None: a constant rate)."""
    if args.schedule == "constant" and not args.warmup:
        return None
    return xpnet.make_schedule(args.schedule, args.lr, args.epochs * steps_per_epoch(args, prep), args.warmup)


def fit_kwargs(args: argparse.Namespace, prep: Prepared) -> dict:
    """Keyword arguments of xpnet.fit for these flags (a fresh optimizer and schedule each call)."""
    return dict(optimizer=make_optimizer(args), schedule=make_schedule(args, prep),
                loss=None if args.loss == "auto" else args.loss, l2=args.l2, epochs=args.epochs,
                batch_size=batch_rows(args, prep),
                validation_data=(prep.X["val"], prep.y["val"]) if prep.sizes["val"] else None,
                early_stopping=args.early_stopping, patience=args.patience, clip_norm=args.clip_norm,
                seed=args.seed, diagnostics=bool(getattr(args, "diagnostics", False)))


def find_lr(args: argparse.Namespace, prep: Prepared, model: xpnet.Network) -> xpnet.train.LRFinderResult:
    """xpnet.lr_find on the training split with the flags' optimizer, loss, L2, batch size and seed (the model
    and optimizer are left as they were)."""
    settings = argparse.Namespace(**{**vars(args), "lr": 1e-7})  # the finder sets every step's rate
    return xpnet.lr_find(model, prep.X["train"], prep.y["train"], optimizer=make_optimizer(settings),
                         loss=None if args.loss == "auto" else args.loss, l2=args.l2,
                         batch_size=batch_rows(args, prep), seed=args.seed)


def lr_find_record(found: xpnet.train.LRFinderResult) -> dict:
    """lr_find.json (and config.json's ``lr_find`` with --lr auto): the sweep, the suggestion and its rule."""
    return {"suggestion": found.suggestion, "rule": found.rule, "stopped_early": found.stopped_early,
            "steps": len(found.lrs), "lrs": found.lrs, "losses": found.losses, "smoothed": found.smoothed,
            "text": str(found)}


class Progress:
    """fit callback: a tqdm bar over epochs (train loss, validation loss, accuracy) that also keeps
    every epoch's logs, so an interrupted run can still save its history. ``base``: the history of
    the epochs before a resume (the bar then starts at fit's ``initial_epoch``)."""

    def __init__(self, enabled: bool = True, desc: str | None = None, base: dict | None = None):
        self.enabled, self.desc, self.bar, self.base = enabled, desc, None, base
        self.logs: list[dict] = []

    def on_train_begin(self, info: dict) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=info["epochs"], initial=info.get("initial_epoch", 0), desc=self.desc,
                            unit="epoch", file=sys.stderr, dynamic_ncols=True, leave=True)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.logs.append(dict(logs))
        if self.bar is not None:
            post = {"loss": f"{logs['loss']:.4f}"}
            if logs.get("val_loss") is not None:
                post["val_loss"] = f"{logs['val_loss']:.4f}"
            acc = logs.get("val_accuracy")
            if acc is not None:
                post["val_acc"] = f"{acc:.3f}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)

    def on_train_end(self, history: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, line: str) -> None:
        """Print ``line`` on stderr without breaking the bar."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    @contextlib.contextmanager
    def training_warnings(self) -> Iterator[None]:
        """While the block runs, each :class:`xpnet.diagnostics.TrainingWarning` is one ``warning: ...`` line
        on stderr (fit's diagnostics warn once per layer and kind); other warnings are shown as usual."""
        shown = warnings.showwarning

        def show(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
            if issubclass(category, TrainingWarning):
                self.write(f"warning: {message}")
            else:
                shown(message, category, *args, **kwargs)

        with warnings.catch_warnings():
            warnings.simplefilter("always", TrainingWarning)
            warnings.showwarning = show
            yield

    def partial_history(self) -> dict:
        """A History-shaped dict from the epochs seen so far (no per-step losses or gradient norms)."""
        h = xpnet.History()
        for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
            h[k].extend((self.base or {}).get(k) or [])
        if self.base:
            h["best_epoch"] = self.base.get("best_epoch")
        start = len(h["epoch"])
        for e, logs in enumerate(self.logs):
            h["epoch"].append(start + e + 1)
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
                h[k].append(logs.get(k))
        return h
