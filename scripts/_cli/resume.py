"""train.py's --resume: the checkpoint a run folder or path names, the flags it fixes, the data, split and
model it was trained on, and what a stopped run prints to resume it."""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex

import numpy as np

import backends
import xpnet
from xpnet import checkpoint as ckpt
from xpnet.io.npzfile import read_npz

from .args import CLIError, check_saved_settings
from .data import DATASETS, data_fingerprint, load_from_settings
from .model import MLP_FLAGS, check_fits
from .prepare import Prepared, Standardizer, prepare

PERIODIC = "checkpoint-{epoch:04d}.npz"  # --checkpoint-every files, named by epochs completed
PERIODIC_RE = re.compile(r"checkpoint-(\d+)\.npz\Z")
# Flags a resumed run may set; every other flag comes from the checkpoint and may only repeat its value.
RESUME_FREE = ("epochs", "backend", "device", "quiet", "out", "resume", "checkpoint_every", "keep_last", "dataset",
               "threads", "distributed")
# Flags of the run itself, not of the training: not saved with the checkpoint's settings.
RUN_ONLY = ("backend", "device", "quiet", "out", "resume", "checkpoint_every", "keep_last", "threads", "lr_find",
            "distributed")
# Flags that start something a resumed run does not do.
NOT_ON_RESUME = ("lr_find",)


def start(args: argparse.Namespace, given: dict, parser: argparse.ArgumentParser) -> tuple[ckpt.Checkpoint, dict]:
    """The checkpoint --resume names and what :func:`resume_args` returns; ``args`` filled from it (the
    backend defaults to the one it was saved on). ``given``: the flags on the command line."""
    for flag in NOT_ON_RESUME:
        if given.get(flag):
            raise CLIError(f"--{flag.replace('_', '-')} applies to a new run, not to --resume")
    ck = load_checkpoint(args.resume)  # CheckpointError (a ValueError): one line, exit 2
    saved = resume_args(args, given, ck, parser)
    if "backend" not in given and "device" not in given:  # default: where the run was saved
        args.backend = ck.meta.get("backend") or "numpy"
        try:
            backends.get(args.backend)
        except backends.BackendUnavailable as exc:
            raise CLIError(f"{exc} (the checkpoint was saved on {args.backend}: pass --backend to resume "
                           f"on another one, e.g. --backend numpy)") from None
    return ck, saved


def load_checkpoint(spec: str) -> ckpt.Checkpoint:
    """The checkpoint --resume names: a file, or a run folder's checkpoint.npz."""
    target = spec
    if os.path.isdir(spec):
        target = os.path.join(spec, "checkpoint.npz")
        if not os.path.exists(target):
            periodic = sorted((int(m.group(1)), f) for f in os.listdir(spec) if (m := PERIODIC_RE.match(f)))
            hint = (f"; its newest checkpoint is {periodic[-1][1]}: pass --resume {os.path.join(spec, periodic[-1][1])}"
                    if periodic else " (is it a train.py run folder?)")
            raise CLIError(f"--resume {spec}: the folder holds no checkpoint.npz{hint}")
    return ckpt.load(target)


def _show(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, list):
        return ",".join(map(str, v)) or "none"
    return str(v)


def run_settings(ck: ckpt.Checkpoint) -> dict | None:
    """The flags of the run that wrote ``ck``: from its extra, or config.json beside it (older train.py)."""
    extra = ck.extra if isinstance(ck.extra, dict) else {}
    if isinstance(extra.get("settings"), dict):
        return dict(extra["settings"])
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(ck.path)), "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    ok = isinstance(config, dict) and config.get("script") == "train.py" and isinstance(config.get("settings"), dict)
    return dict(config["settings"]) if ok else None


def resume_args(args: argparse.Namespace, given: dict, ck: ckpt.Checkpoint, parser: argparse.ArgumentParser) -> dict:
    """Fill ``args`` from the checkpoint (model config, saved flags), checking the flags given against it
    (``parser``: train.py's, whose flags the saved values must be valid for).

    Returns what the rest of the run needs: the checkpoint's extra, whether it is complete, and a note
    when the learning-rate schedule is stretched to a new --epochs.
    """
    extra = ck.extra if isinstance(ck.extra, dict) else {}
    settings = run_settings(ck)
    if settings is None or not isinstance(extra.get("standardize"), dict):
        raise CLIError(f"checkpoint {ck.path!r}: was not written by scripts/train.py (it holds no dataset "
                       f"settings or input standardization); continue it in Python with "
                       f"xpnet.fit(..., resume=path)")
    check_saved_settings(parser, settings, f"checkpoint {ck.path!r}: its saved flag", nullable=MLP_FLAGS)
    cfg = ck.model_config
    fixed = {"arch": None, **settings, "dtype": cfg.get("dtype", "float32"),
             "precision": cfg.get("precision", "float32")}
    if "sizes" in cfg:  # an MLP (also in checkpoints of train.py before --batchnorm, --residual and --arch)
        fixed.update(hidden=list(cfg["sizes"][1:-1]), activation=cfg.get("activation", "relu"),
                     batchnorm=bool(cfg.get("batchnorm")), residual=bool(cfg.get("residual")))
        drop = cfg.get("dropout")
        if isinstance(drop, list) and drop and len(set(drop)) == 1:
            fixed["dropout"] = drop[0]
    conflicts = []
    if "dataset" in given and given["dataset"] != settings.get("dataset") and \
            (given["dataset"] in DATASETS or settings.get("dataset") in DATASETS):  # moving a file is fine
        conflicts.append(f"--dataset {given['dataset']} (the checkpoint has {settings.get('dataset')})")
    for k, v in given.items():
        if k in RESUME_FREE or k not in fixed:
            continue
        if k == "init" and v == cfg.get("init"):
            continue
        if k == "loss" and v == extra.get("loss"):
            continue
        if v != fixed[k]:
            conflicts.append(f"--{k.replace('_', '-')} {_show(v)} (the checkpoint has {_show(fixed[k])})")
    if conflicts:
        raise CLIError(f"--resume {ck.path}: {'; '.join(conflicts)}: the model, data and training settings come "
                       f"from the checkpoint; on resume only --epochs, --backend, --device, --out, --quiet, "
                       f"--checkpoint-every, --keep-last, --threads and --dataset (the same data at another path) "
                       f"may change")
    for k, v in fixed.items():
        if k not in RESUME_FREE and hasattr(args, k):
            setattr(args, k, v)
    original_epochs = int(ck.fit_config.get("epochs") or settings.get("epochs") or ck.epoch)
    if "epochs" not in given:
        args.epochs = original_epochs
    stopped = bool((ck.history or {}).get("stopped_early"))
    partial = ck.meta.get("partial") is not None
    if not stopped and args.epochs < ck.epoch + partial:
        where = f"stopped in epoch {ck.epoch + 1}" if partial else f"has completed {ck.epoch} epochs"
        raise CLIError(f"--epochs {args.epochs}: checkpoint {ck.path!r} {where}; --epochs is the total number "
                       f"of epochs: give {ck.epoch + partial} or more")
    if "dataset" not in given:
        args.dataset = settings.get("dataset", "moons")
    if "dataset" not in given and args.dataset not in DATASETS:
        candidates = [(extra.get("data") or {}).get("path"), args.dataset]
        found = next((c for c in candidates if c and os.path.isfile(c)), None)
        if found is None:
            raise CLIError(f"--resume {ck.path}: the run's dataset file {args.dataset} is not found; "
                           f"pass --dataset PATH (the same data)")
        args.dataset = found
    note = None
    if args.schedule != "constant" and args.epochs != original_epochs:
        note = (f"note: --schedule {args.schedule} spans all --epochs: from here on it is stretched from "
                f"{original_epochs} to {args.epochs} epochs (not the same as training {args.epochs} epochs "
                f"from the start)")
    return {"extra": extra, "complete": stopped or args.epochs == ck.epoch, "stopped": stopped,
            "schedule_note": note}


def saved_split(ck: ckpt.Checkpoint) -> dict | None:
    """The row indices of the run's splits: split.npz beside the checkpoint, if it is there and readable."""
    data = ck.extra.get("data") if isinstance(ck.extra, dict) else None
    n = data.get("n_samples") if isinstance(data, dict) else None
    try:  # the checked reader: a regular file, no pickles, at most the bytes of three index arrays over the data
        arrays = read_npz(os.path.join(os.path.dirname(os.path.abspath(ck.path)), "split.npz"),
                          max_bytes=24 * n if isinstance(n, int) and n > 0 else None)
        idx = {k: arrays[k] for k in ("train", "val", "test")}
    except (ValueError, KeyError):
        return None
    return idx if all(v.dtype.kind in "iu" and v.ndim == 1 for v in idx.values()) else None


def prepare_resumed(args: argparse.Namespace, ck: ckpt.Checkpoint, saved: dict) -> Prepared:
    """The checkpoint's data, split and standardization (checked against what it was trained on)."""
    extra = saved["extra"]
    data = load_from_settings(vars(args))
    fingerprint = (extra.get("data") or {}).get("fingerprint")
    if fingerprint and data_fingerprint(data) != fingerprint:
        raise CLIError(f"--resume {ck.path}: the data in {args.dataset} is not the data the checkpoint was "
                       f"trained on (it changed since, or --dataset names other data)")
    scaler = Standardizer.from_json(extra["standardize"], f"checkpoint {ck.path!r}: extra.standardize")
    ts = extra.get("target_standardize")
    prep = prepare(data, args.task, args.loss, args.test_split, args.val_split, args.seed, idx=saved_split(ck),
                   scaler=scaler, target_scaler=Standardizer.from_json(
                       ts, f"checkpoint {ck.path!r}: extra.target_standardize") if ts else None)
    check = Standardizer.fit(data.X[prep.idx["train"]])  # the same training rows give the saved statistics
    same = check.mean.shape == scaler.mean.shape and np.allclose(check.mean, scaler.mean, rtol=1e-9, atol=1e-12) \
        and np.allclose(check.std, scaler.std, rtol=1e-9, atol=1e-12)
    if not same or (extra.get("splits") not in (None, prep.sizes)):
        raise CLIError(f"--resume {ck.path}: the training split of {args.dataset} does not match the checkpoint's "
                       f"(its sizes or standardization differ)")
    classes = None if prep.classes is None else prep.classes.tolist()
    if classes != extra.get("classes", classes):
        raise CLIError(f"--resume {ck.path}: the classes of the data ({classes}) are not the checkpoint's "
                       f"({extra.get('classes')})")
    return prep


def model_from_checkpoint(args: argparse.Namespace, ck: ckpt.Checkpoint, prep: Prepared,
                          backend: backends.Backend) -> xpnet.Network:
    """A network of the checkpoint's architecture, seed, dtype and precision on ``backend`` (fit(resume=) loads
    the parameters, buffers, optimizer state and counters into it)."""
    model = ck.build_model(backend)
    check_fits(model, prep, args.loss, f"--resume {ck.path}: the checkpoint's model")
    return model


def done_text(ck: ckpt.Checkpoint, args: argparse.Namespace) -> str:
    """Why a resumed run has nothing left to train."""
    h = ck.history or {}
    if h.get("stopped_early"):
        return f"it stopped early after {ck.epoch} epochs"
    return f"{ck.epoch} of {args.epochs} epochs done"


def latest_checkpoint(out: str, since: float) -> str | None:
    """The newest checkpoint this run wrote in ``out`` (modified after ``since``), if any."""
    found = []
    for f in os.listdir(out):
        if f == "checkpoint.npz" or PERIODIC_RE.match(f):
            p = os.path.join(out, f)
            mtime = os.path.getmtime(p)
            if mtime >= since:
                found.append((mtime, p))
    return max(found)[1] if found else None


def resume_command(script: str, checkpoint: str) -> str:
    """The command line that resumes from ``checkpoint`` with ``script`` (train.py's path)."""
    shown = os.path.relpath(os.path.abspath(script))
    if shown.startswith(".."):
        shown = os.path.abspath(script)
    return f"python {shlex.quote(shown)} --resume {shlex.quote(checkpoint)}"


def resumed_line(ck: ckpt.Checkpoint, record: dict) -> str:
    """The summary's ``resumed`` line: from where, and which epochs this run trained."""
    step = int(ck.meta.get("step_in_epoch") or 0)
    at = f"epoch {ck.epoch}" + (f" + {step} steps" if step else "")
    trained = record["epochs_run"] - ck.epoch
    what = ("nothing left to train" if trained <= 0 else f"trained epoch {record['epochs_run']} here" if trained == 1
            else f"trained epochs {ck.epoch + 1}-{record['epochs_run']} here")
    return f"  resumed   from {ck.path} at {at} (saved on {ck.meta.get('backend')}); {what}"
