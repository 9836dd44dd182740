#!/usr/bin/env python
"""Train an xpnet MLP on a toy or tabular dataset and save everything about the run.

With no flags: the tutorials' make_moons problem (1000 samples, noise 0.2), an MLP
[2, 64, 32, 1] with dropout 0.1 trained with Adam (lr 1e-3), batch 32, L2 1e-3 for
200 epochs on NumPy. Inputs are standardized with the training split's statistics.

Outputs (in --out, default runs/<dataset>-<backend>-<timestamp>/): config.json, history.csv,
history.json, metrics.json, model.npz + model.json (reload with
scripts/_cli/runmodel.load_run_model), split.npz (row indices of the splits), and PNG plots
(loss.png, accuracy.png, grad_norms.png, decision_boundary.png for 2-D inputs),
checkpoint.npz (the whole training state, xpnet.checkpoint format) and report.html (all of it on
one interactive page; scripts/report.py rewrites it).

Checkpoints and resuming: checkpoint.npz is written at the end and when SIGINT (Ctrl-C) or
SIGTERM stops the run; --checkpoint-every N also writes checkpoint-NNNN.npz (NNNN: epochs
completed) every N epochs, --keep-last K keeps the newest K of those. --resume PATH (a
checkpoint, or a run folder holding checkpoint.npz) continues a run up to --epochs in total
(default: the original run's): the model, data, split, standardization and training
settings come from the checkpoint (and ``extra`` saved in it); --epochs, --backend/--device
(default: the backend it was saved on), --out, --quiet, --checkpoint-every/--keep-last and
--dataset (the same data at another path) may be given, any other flag must agree with the
checkpoint. On the same backend a resumed run is bit-identical to an uninterrupted one; on
another backend it matches to float tolerance. The outputs go to a new run folder (or --out)
and the history includes the epochs before the resume.

Exit status: 0 done (also: resuming a run that is already complete); 1 training diverged;
2 bad input (including an unreadable or mismatched --resume checkpoint, or an --out that cannot be
written); 3 an output could not be written during or after training (disk full, no permission: what
was written is kept, the message names what was not); 130 interrupted by Ctrl-C, 143 by SIGTERM
(at any moment; during training the current step finishes, the checkpoint and what exists so far
are saved, and the message gives the command that resumes the run).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)
if __name__ == "__main__":  # Ctrl-C or SIGTERM while the libraries below import: one line, 130 / 143
    from _cli.startup import stop_on_signals

    stop_on_signals()

import backends  # noqa: E402
import numpy as np  # noqa: E402
import xpnet  # noqa: E402
from _cli.args import (ArgumentParser, CLIError, check_saved_settings, explicit_args, positive_int,  # noqa: E402
                       run_cli, script_entry, signal_name)
from _cli.data import DATASETS, add_data_args, data_fingerprint, dataset_label, load_dataset  # noqa: E402
from _cli.model import (MLP_FLAGS, add_model_args, build_model, check_fits, check_model_args,  # noqa: E402
                        dense_labels, describe)
from _cli.plots import plot_accuracy, plot_decision_boundary, plot_grad_norms, plot_loss  # noqa: E402
from _cli.prepare import Prepared, Standardizer, prepare, prepare_from_args  # noqa: E402
from _cli.report import compute_metrics, fmt, history_csv, history_record, hp  # noqa: E402
from _cli.runfolder import (copy_file, default_out_dir, environment, make_out_dir, sigint_ignored,  # noqa: E402
                            write_failed, write_npz)
from _cli.runmodel import RunModel, save_model  # noqa: E402
from _cli.training import Progress, add_training_args, check_training_args, fit_kwargs, steps_per_epoch  # noqa: E402
from xpnet import checkpoint as ckpt  # noqa: E402
from xpnet.io.npzfile import read_npz  # noqa: E402
from xpnet.io.atomic import write_json, write_text  # noqa: E402

EXAMPLES = """examples:
  python scripts/train.py                                   # moons, numpy, 200 epochs
  python scripts/train.py --backend torch --device cuda --dataset digits --hidden 128,64
  python scripts/train.py --dataset data.csv --target label --optimizer adamw --schedule cosine --warmup 100
  python scripts/train.py --dataset digits --hidden 128,128,128 --batchnorm --residual
  python scripts/train.py --arch arch.json                  # the network as a JSON layer list
  python scripts/train.py --dataset iris --early-stopping --patience 20 --epochs 1000 --out runs/iris
  python scripts/train.py --epochs 1000 --checkpoint-every 50 --keep-last 3 --out runs/long
  python scripts/train.py --resume runs/long                # continue after Ctrl-C / SIGTERM
  python scripts/train.py --resume runs/long/checkpoint-0500.npz --epochs 2000 --backend torch
"""
_DEFAULT_LOSS = {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}
PERIODIC = "checkpoint-{epoch:04d}.npz"  # --checkpoint-every files, named by epochs completed
_PERIODIC_RE = re.compile(r"checkpoint-(\d+)\.npz\Z")
# Flags a resumed run may set; every other flag comes from the checkpoint and may only repeat its value.
RESUME_FREE = ("epochs", "backend", "device", "quiet", "out", "resume", "checkpoint_every", "keep_last", "dataset")
_RUN_ONLY = ("backend", "device", "quiet", "out", "resume", "checkpoint_every", "keep_last")  # not saved settings


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("backend")
    g.add_argument("--backend", default="numpy", metavar="NAME",
                   help="array library: numpy (default), cupy, torch or strict (array-api-strict); "
                        "a device may follow a colon, e.g. torch:cuda or strict:device1")
    g.add_argument("--device", metavar="DEV",
                   help="device of the backend, e.g. cpu, cuda, cuda:1 (torch) or device1 (strict); "
                        "default: the library's default device")
    add_data_args(p)
    add_model_args(p)
    add_training_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR",
                   help="output directory (default runs/<dataset>-<backend>-<timestamp>/); existing files "
                        "in it are replaced")
    o.add_argument("--quiet", action="store_true",
                   help="no progress bar (the final summary and errors are still printed)")
    c = p.add_argument_group("checkpoints and resuming")
    c.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="also write the whole training state every N epochs (N >= 1) to checkpoint-NNNN.npz in "
                        "the output folder, NNNN = epochs completed (the state at the end or at an interruption "
                        "is written there too). Default: only checkpoint.npz, at the end and when SIGINT/SIGTERM "
                        "stops the run")
    c.add_argument("--keep-last", type=positive_int, metavar="K",
                   help="keep only the newest K (K >= 1) checkpoint-NNNN.npz files (default: all); "
                        "needs --checkpoint-every. checkpoint.npz (the final state) is always kept")
    c.add_argument("--resume", metavar="PATH",
                   help="continue a run from PATH: a checkpoint .npz, or a run folder holding checkpoint.npz. "
                        "Trains up to --epochs in total (default: the original run's epochs) on the same data, "
                        "split and standardization, bit-identical to an uninterrupted run on the same backend. "
                        "The model and training flags come from the checkpoint: only --epochs, --backend, "
                        "--device, --out, --quiet, --checkpoint-every, --keep-last and --dataset (the same data "
                        "at another path) may be given; the backend defaults to the one the checkpoint was saved "
                        "on. Outputs go to a new run folder (or --out); the history includes the epochs before "
                        "the resume")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run train.py with ``argv`` (default sys.argv[1:]); returns the exit status."""
    return run_cli(_main, argv)


def _main(argv: list[str] | None) -> int:
    t_start, wall_start = time.perf_counter(), time.time()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keep_last is not None and args.checkpoint_every is None:
        raise CLIError("--keep-last needs --checkpoint-every (without it the only checkpoint is checkpoint.npz)")
    ck, saved = None, None
    if args.resume is not None:
        ck = _load_checkpoint(args.resume)  # CheckpointError (a ValueError): one line, exit 2
        given = explicit_args(parser, argv)
        saved = _resume_args(args, given, ck)
        if "backend" not in given and "device" not in given:  # default: where the run was saved
            args.backend = ck.meta.get("backend") or "numpy"
            try:
                backends.get(args.backend)
            except backends.BackendUnavailable as exc:
                raise CLIError(f"{exc} (the checkpoint was saved on {args.backend}: pass --backend to resume "
                               f"on another one, e.g. --backend numpy)") from None
    else:
        check_training_args(args)
        check_model_args(args, explicit_args(parser, argv))
    backend = backends.get(args.backend, args.device)
    if ck is None:
        prep = prepare_from_args(args)
        model = build_model(args, prep, backend)
    else:
        prep = _prepare_resumed(args, ck, saved)
        model = _model_from_checkpoint(args, ck, prep, backend)
    kwargs = fit_kwargs(args, prep)
    steps = steps_per_epoch(args, prep)
    label = f"{dataset_label(args.dataset)}-{backend.spec.replace(':', '-')}"
    args.out = make_out_dir(args.out or default_out_dir(label))
    out = args.out
    path = lambda name: os.path.join(out, name)  # noqa: E731
    effective_loss = args.loss if args.loss != "auto" else _DEFAULT_LOSS[model.output]
    resumed = None if ck is None else {
        "checkpoint": os.path.abspath(ck.path), "epoch": ck.epoch, "step": ck.step,
        "step_in_epoch": int(ck.meta.get("step_in_epoch") or 0), "saved_on": ck.meta.get("backend"),
        "complete": saved["complete"]}

    config = {
        "script": "train.py", "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": vars(args) | {"loss": effective_loss},
        "resumed_from": resumed,
        "seed": args.seed,
        "data": {"dataset": args.dataset, "source": prep.data.source, "n_samples": int(prep.data.X.shape[0]),
                 "n_features": int(prep.data.X.shape[1]), "feature_names": prep.data.feature_names,
                 "target": prep.data.target_name, "task": prep.task,
                 "classes": None if prep.classes is None else prep.classes.tolist(), "splits": prep.sizes,
                 "standardization": "inputs: mean/std of the training split (model.json)"
                                    + ("; target too" if prep.target_scaler else "")},
        "model": {"layers": [layer.config() for layer in model.layers]} | model.config() | {"n_params": model.n_params},
        "optimizer": kwargs["optimizer"].config(),
        "schedule": None if kwargs["schedule"] is None else kwargs["schedule"].config(),
        "steps_per_epoch": steps, "total_steps": steps * args.epochs,
        **environment(backend),
    }
    write_json(path("config.json"), config)
    write_npz(path("split.npz"), {k: v for k, v in prep.idx.items()})
    files = ["config.json", "split.npz"]

    run = RunModel(model, prep.scaler, prep.task, prep.classes, prep.target_scaler)
    progress = Progress(enabled=not args.quiet, desc=backend.spec, base=None if ck is None else ck.history)
    # The full training state goes to checkpoint.npz at the end, and when SIGINT/SIGTERM arrives
    # (fit then finishes the step, writes it and raises ckpt.Interrupted with the history so far);
    # with --checkpoint-every to checkpoint-NNNN.npz too. ``extra`` holds what --resume needs.
    extra = {"script": "train.py", "task": prep.task, "classes": config["data"]["classes"],
             "standardize": prep.scaler.to_json(),
             "target_standardize": prep.target_scaler.to_json() if prep.target_scaler else None,
             "settings": {k: v for k, v in vars(args).items() if k not in _RUN_ONLY}, "loss": effective_loss,
             "splits": prep.sizes,
             "data": {"path": os.path.abspath(args.dataset) if args.dataset not in DATASETS else None,
                      "fingerprint": data_fingerprint(prep.data), "n_samples": int(prep.data.X.shape[0])}}
    final_ck = path("checkpoint.npz")
    if args.checkpoint_every:
        template = os.path.join(out.replace("{", "{{").replace("}", "}}"), PERIODIC)
        saving = dict(checkpoint=template, checkpoint_every=args.checkpoint_every, keep_last=args.keep_last)
    else:
        template = None
        saving = dict(checkpoint=final_ck, checkpoint_every=args.epochs)
    if ck is not None:
        kwargs["resume"] = ck
        if saved["complete"]:
            print(f"{ck.path}: the run is already complete ({_done_text(ck, args)}): nothing to train; "
                  f"writing its outputs to {out}", file=sys.stderr)
    t_fit = time.perf_counter()
    try:
        with warnings.catch_warnings():
            if ck is not None and saved["schedule_note"]:
                print(saved["schedule_note"], file=sys.stderr)
                warnings.filterwarnings("ignore", message="resuming .* with settings that differ")
            if ck is not None and saved["complete"]:  # nothing to train: the state the run ended with
                history = xpnet.History(ck.history)
                ck.restore(model, best=True)
            else:
                history = xpnet.fit(model, prep.X["train"], prep.y["train"], callbacks=[progress],
                                    record_grad_norms=True, checkpoint_extra=extra, **saving, **kwargs)
        backend.synchronize()
    except KeyboardInterrupt as exc:  # ckpt.Interrupted, or a second signal / one outside a step
        progress.close()
        graceful = isinstance(exc, ckpt.Interrupted)
        record = history_record(exc.history if graceful else progress.partial_history(), steps,
                                interrupted=True)
        with sigint_ignored():
            _save_history(out, record)
            save_model(out, run)
            if graceful:
                copy_file(exc.path, final_ck)
                latest = final_ck
            else:
                latest = _latest_checkpoint(out, since=wall_start)
        signum = int(getattr(exc, "signum", 0) or signal.SIGINT)
        how = (f"; resume with: {_resume_command(latest)}" if latest else
               "; no checkpoint of this point was written (stopped outside a training step)")
        steps_done = int(getattr(exc, "step_in_epoch", 0) or 0)
        part = f" (+ {steps_done} steps of epoch {record['epochs_run'] + 1}, in the checkpoint)" if steps_done else ""
        print(f"interrupted ({signal_name(signum)}) after {record['epochs_run']} of {args.epochs} epochs{part}: "
              f"saved config.json, history.csv, history.json, the model and the training state at that point to "
              f"{out}{how}", file=sys.stderr)
        return 128 + signum
    except OSError as exc:  # a checkpoint could not be written (disk full, ...): save what can be, exit 3
        progress.close()
        record = history_record(progress.partial_history(), steps, interrupted=True)
        return write_failed(exc, out, [lambda: _save_history(out, record), lambda: save_model(out, run)],
                            f"after {record['epochs_run']} of {args.epochs} epochs")
    except xpnet.TrainingStopped as exc:
        progress.close()
        _save_history(out, history_record(exc.history, steps))
        print(f"error: training stopped: {' '.join(str(exc).split())} (config and history saved to {out})",
              file=sys.stderr)
        return 1
    fit_seconds = time.perf_counter() - t_fit

    if ck is not None and saved["complete"]:  # fit trained nothing and wrote no checkpoint
        copy_file(ck.path, final_ck)
    elif template is not None:  # fit's last save went to checkpoint-NNNN.npz
        copy_file(template.format(epoch=history["epoch"][-1] + 1), final_ck)
    record = history_record(history, steps)
    files += _save_history(out, record)
    files += save_model(out, run) + ["checkpoint.npz"]
    if template is not None:
        files += sorted(f for f in os.listdir(out) if _PERIODIC_RE.match(f))
    test = prep.idx["test"]
    metrics = compute_metrics(run, prep.data.X[test], prep.data.y[test])
    metrics = {"split": "test", **metrics, "epochs_run": record["epochs_run"], "best_epoch": record["best_epoch"],
               "train_seconds": fit_seconds, "resumed_from": resumed}
    write_json(path("metrics.json"), metrics)
    files.append("metrics.json")

    title = f"{dataset_label(args.dataset)} on {backend.spec}"
    plot_loss(record, path("loss.png"), f"loss: {title}")
    files.append("loss.png")
    if prep.task != "regression":
        plot_accuracy(record, path("accuracy.png"), f"accuracy: {title}")
        files.append("accuracy.png")
    plot_grad_norms(record, dense_labels(model), path("grad_norms.png"), f"weight-gradient norms: {title}")
    files.append("grad_norms.png")
    if prep.task != "regression" and prep.data.X.shape[1] == 2:
        plot_decision_boundary(run, prep.data.X, prep.data.X[test], prep.data.y[test],
                               path("decision_boundary.png"), feature_names=prep.data.feature_names)
        files.append("decision_boundary.png")
    files += _write_report(out, run, prep)

    print(_summary(args, backend, prep, model, config, record, metrics, fit_seconds,
                   time.perf_counter() - t_start, out, files, ck))
    return 0


# ---------------------------------------------------------------- resuming
def _load_checkpoint(spec: str) -> ckpt.Checkpoint:
    """The checkpoint --resume names: a file, or a run folder's checkpoint.npz."""
    target = spec
    if os.path.isdir(spec):
        target = os.path.join(spec, "checkpoint.npz")
        if not os.path.exists(target):
            periodic = sorted((int(m.group(1)), f) for f in os.listdir(spec) if (m := _PERIODIC_RE.match(f)))
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


def _run_settings(ck: ckpt.Checkpoint) -> dict | None:
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


def _resume_args(args: argparse.Namespace, given: dict, ck: ckpt.Checkpoint) -> dict:
    """Fill ``args`` from the checkpoint (model config, saved flags), checking the flags given against it.

    Returns what the rest of the run needs: the checkpoint's extra, whether it is complete, and a note
    when the learning-rate schedule is stretched to a new --epochs.
    """
    extra = ck.extra if isinstance(ck.extra, dict) else {}
    settings = _run_settings(ck)
    if settings is None or not isinstance(extra.get("standardize"), dict):
        raise CLIError(f"checkpoint {ck.path!r}: was not written by scripts/train.py (it holds no dataset "
                       f"settings or input standardization); continue it in Python with "
                       f"xpnet.fit(..., resume=path)")
    check_saved_settings(build_parser(), settings, f"checkpoint {ck.path!r}: its saved flag", nullable=MLP_FLAGS)
    cfg = ck.model_config
    fixed = {"arch": None, **settings, "dtype": cfg.get("dtype", "float32")}
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
                       f"--checkpoint-every, --keep-last and --dataset (the same data at another path) may change")
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


def _saved_split(ck: ckpt.Checkpoint) -> dict | None:
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


def _prepare_resumed(args: argparse.Namespace, ck: ckpt.Checkpoint, saved: dict) -> Prepared:
    """The checkpoint's data, split and standardization (checked against what it was trained on)."""
    extra = saved["extra"]
    data = load_dataset(args.dataset, args.target, args.samples, args.noise, args.seed)
    fingerprint = (extra.get("data") or {}).get("fingerprint")
    if fingerprint and data_fingerprint(data) != fingerprint:
        raise CLIError(f"--resume {ck.path}: the data in {args.dataset} is not the data the checkpoint was "
                       f"trained on (it changed since, or --dataset names other data)")
    scaler = Standardizer.from_json(extra["standardize"], f"checkpoint {ck.path!r}: extra.standardize")
    ts = extra.get("target_standardize")
    prep = prepare(data, args.task, args.loss, args.test_split, args.val_split, args.seed, idx=_saved_split(ck),
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


def _model_from_checkpoint(args: argparse.Namespace, ck: ckpt.Checkpoint, prep: Prepared,
                           backend) -> xpnet.Network:
    """A network of the checkpoint's architecture, seed and dtype on ``backend`` (fit(resume=) loads the
    parameters, buffers, optimizer state and counters into it)."""
    model = ck.build_model(backend)
    check_fits(model, prep, args.loss, f"--resume {ck.path}: the checkpoint's model")
    return model


def _done_text(ck: ckpt.Checkpoint, args: argparse.Namespace) -> str:
    h = ck.history or {}
    if h.get("stopped_early"):
        return f"it stopped early after {ck.epoch} epochs"
    return f"{ck.epoch} of {args.epochs} epochs done"


def _latest_checkpoint(out: str, since: float) -> str | None:
    """The newest checkpoint this run wrote in ``out`` (modified after ``since``), if any."""
    found = []
    for f in os.listdir(out):
        if f == "checkpoint.npz" or _PERIODIC_RE.match(f):
            p = os.path.join(out, f)
            mtime = os.path.getmtime(p)
            if mtime >= since:
                found.append((mtime, p))
    return max(found)[1] if found else None


def _resume_command(checkpoint: str) -> str:
    script = os.path.relpath(os.path.abspath(__file__))
    if script.startswith(".."):
        script = os.path.abspath(__file__)
    return f"python {shlex.quote(script)} --resume {shlex.quote(checkpoint)}"


def _write_report(out: str, run: RunModel, prep: Prepared) -> list[str]:
    """report.html (Bokeh, imported only here); a failure costs the report, never the run: one line."""
    try:
        from _cli.html_report import write_report

        write_report(out, run, prep)
        return ["report.html"]
    except Exception as exc:  # noqa: BLE001 - everything else of the run is saved already
        print(f"note: report.html not written ({type(exc).__name__}: {' '.join(str(exc).split())}); the run is saved; "
              f"write it later with: python scripts/report.py {shlex.quote(out)}", file=sys.stderr)
        return []


def _save_history(out: str, record: dict) -> list[str]:
    write_json(os.path.join(out, "history.json"), record)
    write_text(os.path.join(out, "history.csv"), history_csv(record))
    return ["history.csv", "history.json"]


def _summary(args, backend, prep, model, config, record, metrics, fit_seconds, total_seconds, out, files,
             ck=None) -> str:
    pe = record["per_epoch"]
    sizes = prep.sizes
    if prep.task == "regression":
        kind = "regression"
    else:
        kind = f"{prep.task}, {len(prep.classes)} classes"
    sched = args.schedule + (f" + {args.warmup}-step warm-up" if args.warmup else "")
    extras = [f"L2 {hp(args.l2)}"] + ([f"clip-norm {hp(args.clip_norm)}"] if args.clip_norm else []) \
        + ([f"weight decay {hp(config['optimizer'].get('weight_decay'))}"] if args.optimizer == "adamw" else [])
    last = {k: pe[k][-1] for k in ("train_loss", "val_loss", "val_accuracy")}
    final = f"epoch {pe['epoch'][-1]}: train loss {fmt(last['train_loss'])}, val loss {fmt(last['val_loss'])}"
    if last["val_accuracy"] is not None:
        final += f", val accuracy {fmt(last['val_accuracy'])}"
    if prep.task == "regression":
        final += " (losses on the standardized target)"
    if record["stopped_early"]:
        final += f" (stopped early; best epoch {record['best_epoch']} restored)"
    if prep.task == "regression":
        test = "  ".join(f"{k} {fmt(metrics[k])}" for k in ("mse", "rmse", "mae", "r2"))
    else:
        test = "  ".join(f"{k} {fmt(metrics[k])}" for k in ("accuracy", "precision", "recall", "f1", "roc_auc",
                                                                 "log_loss"))
    n_epochs = max(1, len(pe["epoch"]) - (ck.epoch if ck is not None else 0))
    lines = [
        f"xpnet train: {dataset_label(args.dataset)} on {backend.spec} ({backend.describe()})",
        f"  data      {prep.data.X.shape[0]} samples x {prep.data.X.shape[1]} features, {kind}; "
        f"train {sizes['train']}, validation {sizes['val']}, test {sizes['test']}",
        f"  model     {describe(model)}, {model.n_params:,} parameters, {model.dtype_name}, seed {args.seed}",
        f"  training  {args.optimizer} lr {hp(args.lr)} ({sched}), {config['settings']['loss']} loss, "
        f"batch {args.batch_size}, {', '.join(extras)}; {len(pe['epoch'])} epochs x {record['steps_per_epoch']} steps",
        *([_resumed_line(ck, record)] if ck is not None else []),
        f"  final     {final}",
        f"  test      {test}",
        f"  time      {fit_seconds:.2f} s training ({1000 * fit_seconds / n_epochs:.1f} ms/epoch), "
        f"{total_seconds:.2f} s in all",
        f"  outputs   {out}{os.sep}",
        f"            {' '.join(files)}",
    ]
    return "\n".join(lines)


def _resumed_line(ck: ckpt.Checkpoint, record: dict) -> str:
    step = int(ck.meta.get("step_in_epoch") or 0)
    at = f"epoch {ck.epoch}" + (f" + {step} steps" if step else "")
    trained = record["epochs_run"] - ck.epoch
    what = ("nothing left to train" if trained <= 0 else f"trained epoch {record['epochs_run']} here" if trained == 1
            else f"trained epochs {ck.epoch + 1}-{record['epochs_run']} here")
    return f"  resumed   from {ck.path} at {at} (saved on {ck.meta.get('backend')}); {what}"


if __name__ == "__main__":
    script_entry(main)
