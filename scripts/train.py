#!/usr/bin/env python
"""Train an xpnet MLP on a toy or tabular dataset and save everything about the run.

With no flags: the tutorials' make_moons problem (1000 samples, noise 0.2), an MLP
[2, 64, 32, 1] with dropout 0.1 trained with Adam (lr 1e-3), batch 32, L2 1e-3 for
200 epochs on NumPy. Inputs are standardized with the training split's statistics.

Outputs (in --out, default runs/<dataset>-<backend>-<timestamp>/): config.json, history.csv,
history.json, metrics.json, model.npz + model.json (reload with
scripts/_cli/runmodel.load_run_model), split.npz (row indices of the splits), and PNG plots
(loss.png, accuracy.png, grad_norms.png, decision_boundary.png for 2-D inputs, diagnostics.png with
--diagnostics), checkpoint.npz (the whole training state, xpnet.checkpoint format) and report.html
(all of it on one interactive page; scripts/report.py rewrites it). --lr-find writes lr_find.json and
lr_find.png only and trains nothing; --lr auto writes them too, then trains with the suggested rate.
--test-split 0 trains on every row (less validation) and reports metrics on the training data.

Checkpoints and resuming: checkpoint.npz is written at the end and when SIGINT (Ctrl-C) or
SIGTERM stops the run; --checkpoint-every N also writes checkpoint-NNNN.npz (NNNN: epochs
completed) every N epochs, --keep-last K keeps the newest K of those. --resume PATH (a
checkpoint, or a run folder holding checkpoint.npz) continues a run up to --epochs in total
(default: the original run's): the model, data, split, standardization and training
settings come from the checkpoint (and ``extra`` saved in it); --epochs, --backend/--device
(default: the backend it was saved on), --out, --quiet, --checkpoint-every/--keep-last, --threads
and --dataset (the same data at another path) may be given, any other flag must agree with the
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
import os
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
import xpnet  # noqa: E402
from _cli import distributed, resume  # noqa: E402
from _cli.args import AUTO_LR, ArgumentParser, CLIError, explicit_args, positive_int, run_cli, script_entry, signal_name  # noqa: E402,E501
from _cli.data import DATASETS, add_data_args, data_fingerprint, dataset_label  # noqa: E402
from _cli.model import add_model_args, build_model, check_model_args  # noqa: E402
from _cli import figures  # noqa: E402
from _cli.figures import planned  # noqa: E402
from _cli.plots import plot_lr_find  # noqa: E402
from _cli.prepare import prepare_from_args, split_note  # noqa: E402
from _cli.report import compute_metrics, history_csv, history_record  # noqa: E402
from _cli.runfolder import copy_file, default_out_dir, environment, make_out_dir, sigint_ignored, write_failed, write_npz  # noqa: E402,E501
from _cli.runmodel import RunModel, save_model  # noqa: E402
from _cli.summary import NO_TEST_SPLIT, run_summary  # noqa: E402
from _cli.training import (Progress, add_training_args, check_training_args, find_lr, fit_kwargs,  # noqa: E402
                           lr_find_record, steps_per_epoch)
from xpnet import checkpoint as ckpt  # noqa: E402
from xpnet.io.atomic import write_json, write_text  # noqa: E402

EXAMPLES = """examples:
  python scripts/train.py                                   # moons, numpy, 200 epochs
  python scripts/train.py --backend torch --device cuda --dataset digits --hidden 128,64
  python scripts/train.py --dataset data.csv --target label --optimizer adamw --schedule cosine --warmup 100
  python scripts/train.py --dataset digits --hidden 64x20 --activation sigmoid --residual --diagnostics
  python scripts/train.py --dataset xor4 --test-split 0 --val-split 0 --hidden 2 --activation sigmoid \\
      --dropout 0 --l2 0 --optimizer sgd --lr 1 --batch-size full --epochs 3000   # XOR, all four rows
  python scripts/train.py --lr-find                         # suggest a learning rate (lr_find.png)
  python scripts/train.py --lr auto --precision float16     # train with it, in float16
  python scripts/train.py --arch arch.json                  # the network as a JSON layer list
  python scripts/train.py --dataset iris --early-stopping --patience 20 --epochs 1000 --out runs/iris
  python scripts/train.py --epochs 1000 --checkpoint-every 50 --keep-last 3 --out runs/long
  python scripts/train.py --resume runs/long                # continue after Ctrl-C / SIGTERM
  mpiexec -n 4 python scripts/train.py --distributed --dataset digits --batch-size 256   # data-parallel over MPI
  python scripts/train.py --resume runs/long/checkpoint-0500.npz --epochs 2000 --backend torch
"""
_DEFAULT_LOSS = {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}


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
    g.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU threads of torch (torch:cpu runs 1 by default: a small network's step is dozens of "
                        "tiny operations, which more threads slow down on a busy machine; set through "
                        "XPNET_THREADS before the backend is created) and of the BLAS under NumPy (through "
                        "threadpoolctl, when installed). Default: torch 1, BLAS its own default")
    distributed.add_distributed_args(g)
    add_data_args(p)
    add_model_args(p)
    add_training_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR",
                   help="output directory (default runs/<dataset>-<backend>-<timestamp>/); existing files "
                        "in it are replaced")
    o.add_argument("--quiet", action="store_true",
                   help="no progress bar (the final summary and errors are still printed)")
    o.add_argument("--figures", choices=figures.MODES, default=figures.default_mode(),
                   help="the PNG plots and report.html: 'background' (default; $XPNET_FIGURES may change it) "
                        "draws them in a detached process after the run, so the summary comes at once "
                        "(drawing takes about a second); 'wait' draws them first; 'none' leaves them out "
                        "(scripts/report.py RUN --figures draws them later)")
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
                        "--device, --out, --quiet, --checkpoint-every, --keep-last, --threads and --dataset (the "
                        "same data at another path) may be given; the backend defaults to the one the checkpoint "
                        "was saved on. Outputs go to a new run folder (or --out); the history includes the epochs "
                        "before the resume")
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
    if args.threads is not None:  # before any backend is created
        backends.set_threads(args.threads)
    given = explicit_args(parser, argv)
    ck, saved = None, None
    if args.resume is not None:
        ck, saved = resume.start(args, given, parser)
    else:
        check_training_args(args, given)
        check_model_args(args, given)
    comm = distributed.start(args)  # --distributed: the MPI communicator (rank 0 writes the outputs)
    backend = backends.get(args.backend, args.device)
    if ck is None:
        prep = prepare_from_args(args)
        model = build_model(args, prep, backend)
        if (note := split_note(prep)) is not None:
            print(note, file=sys.stderr)
    else:
        prep = resume.prepare_resumed(args, ck, saved)
        model = resume.model_from_checkpoint(args, ck, prep, backend)
    lr_found = None
    if args.lr_find or args.lr == AUTO_LR:  # the finder leaves the model and optimizer as they were
        lr_found = lr_find_record(find_lr(args, prep, model))
        args.lr = lr_found["suggestion"]
    kwargs = fit_kwargs(args, prep) | ({"comm": comm} if comm is not None else {})  # bad settings fail here
    steps = steps_per_epoch(args, prep)
    label = f"{dataset_label(args.dataset)}-{backend.spec.replace(':', '-')}"
    args.out = distributed.shared(comm, lambda: make_out_dir(args.out or default_out_dir(label)))
    out = args.out
    path = lambda name: os.path.join(out, name)  # noqa: E731
    if lr_found and distributed.is_root(comm):  # rank 0 writes the outputs
        write_json(path("lr_find.json"), {"settings": vars(args)} | lr_found)
        plot_lr_find(lr_found, path("lr_find.png"), f"learning-rate finder: {dataset_label(args.dataset)}, "
                                                    f"{args.optimizer} on {backend.spec}")
    if args.lr_find:
        if distributed.is_root(comm):
            print(f"xpnet {lr_found['text']}\n  outputs   {out}{os.sep}\n            lr_find.json lr_find.png")
        return 0
    effective_loss = args.loss if args.loss != "auto" else _DEFAULT_LOSS[model.output]
    resumed = None if ck is None else {
        "checkpoint": os.path.abspath(ck.path), "epoch": ck.epoch, "step": ck.step,
        "step_in_epoch": int(ck.meta.get("step_in_epoch") or 0), "saved_on": ck.meta.get("backend"),
        "complete": saved["complete"]}

    config = {
        "script": "train.py", "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": vars(args) | {"loss": effective_loss},
        "lr_find": lr_found,
        "resumed_from": resumed,
        "distributed": distributed.describe(comm, backend),
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
    if distributed.is_root(comm):
        write_json(path("config.json"), config)
        write_npz(path("split.npz"), {k: v for k, v in prep.idx.items()})
    files = ["config.json", "split.npz"] + (["lr_find.json", "lr_find.png"] if lr_found else [])

    run = RunModel(model, prep.scaler, prep.task, prep.classes, prep.target_scaler)
    progress = Progress(enabled=not args.quiet, desc=backend.spec, base=None if ck is None else ck.history)
    # The full training state goes to checkpoint.npz at the end, and when SIGINT/SIGTERM arrives
    # (fit then finishes the step, writes it and raises ckpt.Interrupted with the history so far);
    # with --checkpoint-every to checkpoint-NNNN.npz too. ``extra`` holds what --resume needs.
    extra = {"script": "train.py", "task": prep.task, "classes": config["data"]["classes"],
             "standardize": prep.scaler.to_json(),
             "target_standardize": prep.target_scaler.to_json() if prep.target_scaler else None,
             "settings": {k: v for k, v in vars(args).items() if k not in resume.RUN_ONLY}, "loss": effective_loss,
             "splits": prep.sizes,
             "data": {"path": os.path.abspath(args.dataset) if args.dataset not in DATASETS else None,
                      "fingerprint": data_fingerprint(prep.data), "n_samples": int(prep.data.X.shape[0])}}
    final_ck = path("checkpoint.npz")
    if args.checkpoint_every:
        template = os.path.join(out.replace("{", "{{").replace("}", "}}"), resume.PERIODIC)
        saving = dict(checkpoint=template, checkpoint_every=args.checkpoint_every, keep_last=args.keep_last)
    else:
        template = None
        saving = dict(checkpoint=final_ck, checkpoint_every=args.epochs)
    if ck is not None:
        kwargs["resume"] = ck
        if saved["complete"]:
            print(f"{ck.path}: the run is already complete ({resume.done_text(ck, args)}): nothing to train; "
                  f"writing its outputs to {out}", file=sys.stderr)
    if not distributed.is_root(comm):  # the other ranks train alongside rank 0, which writes every output
        return distributed.follow(model, prep.X["train"], prep.y["train"],
                                  dict(record_grad_norms=True, checkpoint_extra=extra, **saving, **kwargs),
                                  train=ck is None or not saved["complete"])
    t_fit = time.perf_counter()
    try:
        with warnings.catch_warnings(), progress.training_warnings():
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
                latest = resume.latest_checkpoint(out, since=wall_start)
        signum = int(getattr(exc, "signum", 0) or signal.SIGINT)
        how = (f"; resume with: {resume.resume_command(__file__, latest)}" if latest else
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
        copy_file(template.format(epoch=history["epoch"][-1]), final_ck)
    record = history_record(history, steps)
    files += _save_history(out, record)
    files += save_model(out, run) + ["checkpoint.npz"]
    if template is not None:
        files += sorted(f for f in os.listdir(out) if resume.PERIODIC_RE.match(f))
    split = prep.eval_split  # "train" with --test-split 0: evaluated on the training data
    test = prep.idx[split]
    metrics = compute_metrics(run, prep.data.X[test], prep.data.y[test])
    metrics = {"split": split, **({"note": NO_TEST_SPLIT} if split == "train" else {}), **metrics,
               "epochs_run": record["epochs_run"], "best_epoch": record["best_epoch"],
               "train_seconds": fit_seconds, "resumed_from": resumed}
    write_json(path("metrics.json"), metrics)
    files.append("metrics.json")

    files += _figures(args.figures, out, planned(record, prep.task, prep.data.X.shape[1]))

    print(run_summary(args, backend, prep, model, config, record, metrics, fit_seconds,
                   time.perf_counter() - t_start, out, files, ck))
    return 0


def _figures(mode: str, out: str, names: list[str]) -> list[str]:
    """Draw the run's figures (see _cli/figures.py) now, in the background, or not; a failure costs the
    figures, never the run: one line. Returns the names for the summary."""
    if mode == "none":
        return []
    if mode == "background":
        pid = figures.start_background(out)
        return names + [f"(the figures: drawn in the background by process {pid}; errors in {figures.LOG})"]
    try:
        written, failed = figures.write_figures(out)
    except Exception as exc:  # noqa: BLE001 - everything else of the run is saved already
        written, failed = [], [f"({type(exc).__name__}: {' '.join(str(exc).split())})"]
    if failed:
        print(f"note: not written: {'; '.join(failed)}; the run is saved; draw the figures later with: "
              f"python scripts/report.py {shlex.quote(out)} --figures", file=sys.stderr)
    return written


def _save_history(out: str, record: dict) -> list[str]:
    write_json(os.path.join(out, "history.json"), record)
    write_text(os.path.join(out, "history.csv"), history_csv(record))
    return ["history.csv", "history.json"]


if __name__ == "__main__":
    script_entry(main)
