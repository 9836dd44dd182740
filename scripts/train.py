#!/usr/bin/env python
"""Train an xpnet MLP on a toy or tabular dataset and save everything about the run.

With no flags: the tutorials' make_moons problem (1000 samples, noise 0.2), an MLP
[2, 64, 32, 1] with dropout 0.1 trained with Adam (lr 1e-3), batch 32, L2 1e-3 for
200 epochs on NumPy. Inputs are standardized with the training split's statistics.

Outputs (in --out, default runs/<dataset>-<backend>-<timestamp>/): config.json, history.csv,
history.json, metrics.json, model.npz + model.json (reload with
scripts/_common.load_run_model), split.npz (row indices of the splits), and PNG plots
(loss.png, accuracy.png, grad_norms.png, decision_boundary.png for 2-D inputs), and
checkpoint.npz (the whole training state, xpnet.checkpoint format: resume with
xpnet.fit(..., resume=path)).

Exit status: 0 done; 1 training diverged; 2 bad input; 130 interrupted by Ctrl-C (143 by
SIGTERM): the current step finishes and what exists so far is saved.
"""
from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _common as C  # noqa: E402
import backends  # noqa: E402
import xpnet  # noqa: E402
from xpnet import checkpoint as ckpt  # noqa: E402

EXAMPLES = """examples:
  python scripts/train.py                                   # moons, numpy, 200 epochs
  python scripts/train.py --backend torch --device cuda --dataset digits --hidden 128,64
  python scripts/train.py --dataset data.csv --target label --optimizer adamw --schedule cosine --warmup 100
  python scripts/train.py --dataset iris --early-stopping --patience 20 --epochs 1000 --out runs/iris
"""
_DEFAULT_LOSS = {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}


def build_parser() -> argparse.ArgumentParser:
    p = C.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("backend")
    g.add_argument("--backend", default="numpy", metavar="NAME",
                   help="array library: numpy (default), cupy, torch or strict (array-api-strict); "
                        "a device may follow a colon, e.g. torch:cuda or strict:device1")
    g.add_argument("--device", metavar="DEV",
                   help="device of the backend, e.g. cpu, cuda, cuda:1 (torch) or device1 (strict); "
                        "default: the library's default device")
    C.add_data_args(p)
    C.add_model_args(p)
    C.add_training_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR",
                   help="output directory (default runs/<dataset>-<backend>-<timestamp>/); existing files "
                        "in it are replaced")
    o.add_argument("--quiet", action="store_true",
                   help="no progress bar (the final summary and errors are still printed)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run train.py with ``argv`` (default sys.argv[1:]); returns the exit status."""
    return C.run_cli(_main, argv)


def _main(argv: list[str] | None) -> int:
    t_start = time.perf_counter()
    args = build_parser().parse_args(argv)
    C.check_training_args(args)
    backend = backends.get(args.backend, args.device)
    prep = C.prepare_from_args(args)
    model = C.build_model(args, prep, backend)
    kwargs = C.fit_kwargs(args, prep)
    steps = C.steps_per_epoch(args, prep)
    label = f"{C.dataset_label(args.dataset)}-{backend.spec.replace(':', '-')}"
    args.out = C.make_out_dir(args.out or C.default_out_dir(label))
    out = args.out
    path = lambda name: os.path.join(out, name)  # noqa: E731

    config = {
        "script": "train.py", "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": vars(args) | {"loss": args.loss if args.loss != "auto" else _DEFAULT_LOSS[model.output]},
        "seed": args.seed,
        "data": {"dataset": args.dataset, "source": prep.data.source, "n_samples": int(prep.data.X.shape[0]),
                 "n_features": int(prep.data.X.shape[1]), "feature_names": prep.data.feature_names,
                 "target": prep.data.target_name, "task": prep.task,
                 "classes": None if prep.classes is None else prep.classes.tolist(), "splits": prep.sizes,
                 "standardization": "inputs: mean/std of the training split (model.json)"
                                    + ("; target too" if prep.target_scaler else "")},
        "model": model.config() | {"n_params": model.n_params},
        "optimizer": kwargs["optimizer"].config(),
        "schedule": None if kwargs["schedule"] is None else kwargs["schedule"].config(),
        "steps_per_epoch": steps, "total_steps": steps * args.epochs,
        **C.environment(backend),
    }
    C.write_json(path("config.json"), config)
    C.write_npz(path("split.npz"), {k: v for k, v in prep.idx.items()})
    files = ["config.json", "split.npz"]

    run = C.RunModel(model, prep.scaler, prep.task, prep.classes, prep.target_scaler)
    progress = C.Progress(enabled=not args.quiet, desc=backend.spec)
    # The full training state goes to checkpoint.npz at the end, and when SIGINT/SIGTERM arrives
    # (fit then finishes the step, writes it and raises ckpt.Interrupted with the history so far).
    extra = {"task": prep.task, "classes": config["data"]["classes"], "standardize": prep.scaler.to_json(),
             "target_standardize": prep.target_scaler.to_json() if prep.target_scaler else None}
    t_fit = time.perf_counter()
    try:
        history = xpnet.fit(model, prep.X["train"], prep.y["train"], callbacks=[progress], record_grad_norms=True,
                            checkpoint=path("checkpoint.npz"), checkpoint_every=args.epochs,
                            checkpoint_extra=extra, **kwargs)
        backend.synchronize()
    except KeyboardInterrupt as exc:  # ckpt.Interrupted, or a second Ctrl-C / one outside a step
        progress.close()
        graceful = isinstance(exc, ckpt.Interrupted)
        record = C.history_record(exc.history if graceful else progress.partial_history(), steps,
                                  interrupted=True)
        with C.sigint_ignored():
            _save_history(out, record)
            C.save_model(out, run)
        signum = exc.signum if graceful else signal.SIGINT
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        resume = f"; full training state in {exc.path} (xpnet.fit(..., resume=...))" if graceful else ""
        print(f"interrupted ({name}) after {record['epochs_run']} of {args.epochs} epochs: saved config.json, "
              f"history.csv, history.json and the model at that point to {out}{resume}", file=sys.stderr)
        return 128 + int(signum)
    except xpnet.TrainingStopped as exc:
        progress.close()
        _save_history(out, C.history_record(exc.history, steps))
        print(f"error: training stopped: {' '.join(str(exc).split())} (config and history saved to {out})",
              file=sys.stderr)
        return 1
    fit_seconds = time.perf_counter() - t_fit

    record = C.history_record(history, steps)
    files += _save_history(out, record)
    files += C.save_model(out, run) + ["checkpoint.npz"]
    test = prep.idx["test"]
    metrics = C.compute_metrics(run, prep.data.X[test], prep.data.y[test])
    metrics = {"split": "test", **metrics, "epochs_run": record["epochs_run"], "best_epoch": record["best_epoch"],
               "train_seconds": fit_seconds}
    C.write_json(path("metrics.json"), metrics)
    files.append("metrics.json")

    title = f"{C.dataset_label(args.dataset)} on {backend.spec}"
    C.plot_loss(record, path("loss.png"), f"loss: {title}")
    files.append("loss.png")
    if prep.task != "regression":
        C.plot_accuracy(record, path("accuracy.png"), f"accuracy: {title}")
        files.append("accuracy.png")
    C.plot_grad_norms(record, model.sizes, path("grad_norms.png"), f"weight-gradient norms: {title}")
    files.append("grad_norms.png")
    if prep.task != "regression" and prep.data.X.shape[1] == 2:
        C.plot_decision_boundary(run, prep.data.X, prep.data.X[test], prep.data.y[test],
                                 path("decision_boundary.png"), feature_names=prep.data.feature_names)
        files.append("decision_boundary.png")

    print(_summary(args, backend, prep, model, config, record, metrics, fit_seconds,
                   time.perf_counter() - t_start, out, files))
    return 0


def _save_history(out: str, record: dict) -> list[str]:
    C.write_json(os.path.join(out, "history.json"), record)
    C.write_text(os.path.join(out, "history.csv"), C.history_csv(record))
    return ["history.csv", "history.json"]


def _summary(args, backend, prep, model, config, record, metrics, fit_seconds, total_seconds, out, files) -> str:
    pe = record["per_epoch"]
    sizes = prep.sizes
    if prep.task == "regression":
        kind = "regression"
    else:
        kind = f"{prep.task}, {len(prep.classes)} classes"
    sched = args.schedule + (f" + {args.warmup}-step warm-up" if args.warmup else "")
    extras = [f"L2 {C.hp(args.l2)}"] + ([f"clip-norm {C.hp(args.clip_norm)}"] if args.clip_norm else []) \
        + ([f"weight decay {C.hp(config['optimizer'].get('weight_decay'))}"] if args.optimizer == "adamw" else [])
    last = {k: pe[k][-1] for k in ("train_loss", "val_loss", "val_accuracy")}
    final = f"epoch {pe['epoch'][-1]}: train loss {C.fmt(last['train_loss'])}, val loss {C.fmt(last['val_loss'])}"
    if last["val_accuracy"] is not None:
        final += f", val accuracy {C.fmt(last['val_accuracy'])}"
    if prep.task == "regression":
        final += " (losses on the standardized target)"
    if record["stopped_early"]:
        final += f" (stopped early; best epoch {record['best_epoch']} restored)"
    if prep.task == "regression":
        test = "  ".join(f"{k} {C.fmt(metrics[k])}" for k in ("mse", "rmse", "mae", "r2"))
    else:
        test = "  ".join(f"{k} {C.fmt(metrics[k])}" for k in ("accuracy", "precision", "recall", "f1", "roc_auc",
                                                                 "log_loss"))
    n_epochs = max(1, len(pe["epoch"]))
    lines = [
        f"xpnet train: {C.dataset_label(args.dataset)} on {backend.spec} ({backend.describe()})",
        f"  data      {prep.data.X.shape[0]} samples x {prep.data.X.shape[1]} features, {kind}; "
        f"train {sizes['train']}, validation {sizes['val']}, test {sizes['test']}",
        f"  model     MLP {model.sizes} {model.activation} -> {model.output}, dropout {C.hp(args.dropout)}, "
        f"{model.n_params:,} parameters, {model.dtype_name}, seed {args.seed}",
        f"  training  {args.optimizer} lr {C.hp(args.lr)} ({sched}), {config['settings']['loss']} loss, "
        f"batch {args.batch_size}, {', '.join(extras)}; {len(pe['epoch'])} epochs x {record['steps_per_epoch']} steps",
        f"  final     {final}",
        f"  test      {test}",
        f"  time      {fit_seconds:.2f} s training ({1000 * fit_seconds / n_epochs:.1f} ms/epoch), "
        f"{total_seconds:.2f} s in all",
        f"  outputs   {out}{os.sep}",
        f"            {' '.join(files)}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    C.script_entry(main)
