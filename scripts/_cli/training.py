"""Training settings from the flags: optimizer, schedule, fit's keyword arguments; the progress bar."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import xpnet

from .args import CLIError, non_negative_float, non_negative_int, positive_float, positive_int
from .prepare import Prepared

DEFAULT_LR = {"sgd": 1e-2, "momentum": 1e-2, "nesterov": 1e-2, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


def add_training_args(p: argparse.ArgumentParser) -> None:
    """The training flags: loss, optimizer, learning rate and schedule, epochs, batch, regularization."""
    g = p.add_argument_group("training")
    g.add_argument("--loss", default="auto", choices=["auto"] + sorted(xpnet.nn.LOSSES),
                   help="auto (default): bce for binary, cross_entropy for multiclass, mse for regression; "
                        "cross_entropy on a binary task uses two softmax outputs")
    g.add_argument("--optimizer", default="adam", choices=sorted(xpnet.optim.OPTIMIZERS),
                   help="sgd, momentum and nesterov (SGD with momentum 0.9), adam, adamw, rmsprop "
                        "(default adam)")
    g.add_argument("--lr", type=positive_float, metavar="LR",
                   help="learning rate > 0 (default 1e-3 for adam, adamw and rmsprop; 1e-2 for the SGD family)")
    g.add_argument("--schedule", default="constant", choices=xpnet.optim.SCHEDULES,
                   help="learning-rate schedule over all steps: constant (default), step (x0.1 every third of "
                        "training), exponential (to 1%% of lr at the end), cosine (to 0)")
    g.add_argument("--warmup", type=non_negative_int, default=0, metavar="STEPS",
                   help="linear learning-rate warm-up over this many steps (default 0)")
    g.add_argument("--epochs", type=positive_int, default=200, help="passes over the training data (default 200)")
    g.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="mini-batch size >= 1 (default 32)")
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


def check_training_args(args: argparse.Namespace) -> None:
    """Cross-flag checks argparse cannot do; fills in the effective learning rate."""
    _check_weight_decay(args)
    if args.patience is not None and not args.early_stopping:
        raise CLIError("--patience needs --early-stopping")
    if args.patience is None:
        args.patience = 10
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]


def _check_weight_decay(args: argparse.Namespace) -> None:
    if args.weight_decay is not None and args.optimizer != "adamw":
        raise CLIError(f"--weight-decay applies to --optimizer adamw (not {args.optimizer}); "
                       "use --l2 for an L2 penalty with other optimizers")


def steps_per_epoch(args: argparse.Namespace, prep: Prepared) -> int:
    """Steps of one epoch (the last batch may be partial)."""
    n = prep.sizes["train"]
    return math.ceil(n / min(args.batch_size, n))


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
                batch_size=args.batch_size, validation_data=(prep.X["val"], prep.y["val"]),
                early_stopping=args.early_stopping, patience=args.patience, clip_norm=args.clip_norm,
                seed=args.seed)


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

    def partial_history(self) -> dict:
        """A History-shaped dict from the epochs seen so far (no per-step losses or gradient norms)."""
        h = xpnet.History()
        for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
            h[k].extend((self.base or {}).get(k) or [])
        if self.base:
            h["best_epoch"] = self.base.get("best_epoch")
        start = len(h["epoch"])
        for e, logs in enumerate(self.logs):
            h["epoch"].append(start + e)
            for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
                h[k].append(logs.get(k))
        return h
