#!/usr/bin/env python
"""Train the same model with the same seed on several backends and compare them step by step.

For every backend after the first (the reference) it reports whether the initial weights
and dropout masks are bit-identical, the relative deviation of every step's training loss
from the reference's, |loss_b - loss_ref| / |loss_ref|, and the largest difference of the
final parameters, max |p_b - p_ref| / max |p_ref|. It prints a table, writes parity.json
and parity.png (deviation over steps, log scale) into --out.

Exit status: 0 all within tolerance; 1 a deviation above --tol (default 1e-4 for float32,
1e-9 for float64), initial weights or dropout masks not bit-identical, or training diverged;
2 bad input; 130 interrupted.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)
if __name__ == "__main__":  # Ctrl-C or SIGTERM while the libraries below import: one line, 130 / 143
    from _cli.startup import stop_on_signals

    stop_on_signals()

import numpy as np  # noqa: E402

import backends  # noqa: E402
import xpnet  # noqa: E402
from _cli.args import ArgumentParser, CLIError, explicit_args, positive_float, run_cli, script_entry  # noqa: E402
from _cli.data import add_data_args, dataset_label  # noqa: E402
from _cli.model import add_model_args, build_model, check_model_args, describe  # noqa: E402
from _cli.plots import pyplot, save_figure  # noqa: E402
from _cli.prepare import Prepared, prepare_from_args  # noqa: E402
from _cli.report import fmt, hp  # noqa: E402
from _cli.runfolder import default_out_dir, make_out_dir  # noqa: E402
from _cli.training import (Progress, add_training_args, batch_rows, check_training_args, fit_kwargs,  # noqa: E402
                           steps_per_epoch)
from xpnet.io.atomic import write_json  # noqa: E402

DEFAULT_TOL = {"float32": 1e-4, "float64": 1e-9}
MASK_COUNTERS = (0, 1, 2, 1000)
EXAMPLES = """examples:
  python scripts/parity.py --backends numpy,strict:device1,torch:cpu --epochs 20
  python scripts/parity.py --backends numpy,cupy,torch:cuda --dtype float64 --dataset digits
  python scripts/parity.py --backends numpy,torch:cpu --hidden 64,64 --batchnorm --residual
"""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="parity.py", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("comparison")
    g.add_argument("--backends", default="numpy,strict", metavar="SPECS",
                   help="comma-separated backend specs, the first is the reference (default numpy,strict); "
                        "e.g. numpy,cupy or numpy,strict:device1,torch:cpu,torch:cuda")
    g.add_argument("--tol", type=positive_float,
                   help="largest relative deviation allowed (default 1e-4 for float32, 1e-9 for float64)")
    add_data_args(p)
    add_model_args(p)
    add_training_args(p, finder=False)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", help="output directory (default runs/parity-<dataset>-<timestamp>/)")
    o.add_argument("--quiet", action="store_true", help="no progress bars (the table is still printed)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run parity.py with ``argv`` (default sys.argv[1:]); returns the exit status."""
    return run_cli(_main, argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    specs = [s.strip() for s in args.backends.split(",") if s.strip()]
    if len(specs) < 2:
        raise CLIError(f"--backends needs at least two backends separated by commas "
                       f"(e.g. numpy,strict), got {args.backends!r}")
    check_training_args(args)
    check_model_args(args, explicit_args(parser, argv))
    bes = [backends.get(s) for s in specs]
    seen = [b.spec for b in bes]
    if len(set(seen)) != len(seen):
        raise CLIError(f"--backends names the same backend twice: {', '.join(seen)}")
    prep = prepare_from_args(args)
    models = [build_model(args, prep, be) for be in bes]  # bad model settings fail before any training
    tol = args.tol if args.tol is not None else DEFAULT_TOL[args.dtype]
    args.out = make_out_dir(args.out or default_out_dir(f"parity-{dataset_label(args.dataset)}"))

    runs = []
    for be, model in zip(bes, models):
        run = {"backend": be, "init": be.to_numpy(model.params).copy(), "masks": _masks(model, args, prep)}
        progress = Progress(enabled=not args.quiet, desc=be.spec)
        t0 = time.perf_counter()
        try:
            h = xpnet.fit(model, prep.X["train"], prep.y["train"], callbacks=[progress], **fit_kwargs(args, prep))
        except xpnet.TrainingStopped as exc:
            progress.close()
            print(f"error: training stopped on {be.spec}: {' '.join(str(exc).split())}", file=sys.stderr)
            return 1
        be.synchronize()
        run.update(seconds=time.perf_counter() - t0, step_loss=np.asarray(h["step_loss"], dtype=np.float64),
                   params=be.to_numpy(model.params).copy(), final_loss=h["loss"][-1], final_val_loss=h["val_loss"][-1])
        runs.append(run)

    rows = _compare(runs, tol)
    passed = all(r["pass"] for r in rows)
    steps = steps_per_epoch(args, prep)
    report = {
        "script": "parity.py", "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": vars(args), "dtype": args.dtype, "tolerance": tol, "tolerance_is_default": args.tol is None,
        "reference": runs[0]["backend"].spec, "steps_per_epoch": steps, "dropout_counters_checked": list(MASK_COUNTERS),
        "definitions": {"rel_loss_deviation": "|loss_b(step) - loss_ref(step)| / |loss_ref(step)|",
                        "rel_param_diff": "max |p_b - p_ref| / max |p_ref| over the final flat parameters"},
        "passed": passed,
        "backends": [{k: v for k, v in r.items() if k not in ("rel", "loss")} for r in rows],
        "step_loss": {r["spec"]: r["loss"] for r in rows},
        "rel_loss_deviation": {r["spec"]: r["rel"] for r in rows[1:]},
        "environment": {"versions": {b.spec: b.versions() for b in bes} | {"xpnet": xpnet.__version__},
                        "command": [sys.executable] + sys.argv},
    }
    write_json(os.path.join(args.out, "parity.json"), report)
    _plot(rows, tol, args, os.path.join(args.out, "parity.png"))
    print(_table(rows, tol, args, models[0], steps, passed))
    _write_report(args.out)
    return 0 if passed else 1


def _write_report(out: str) -> None:
    """report.html (Bokeh, imported only here); a failure costs the report, never the results: one line."""
    try:
        from _cli.html_report import write_report

        write_report(out)
    except Exception as exc:  # noqa: BLE001 - parity.json and parity.png are written already
        print(f"note: report.html not written ({type(exc).__name__}: {' '.join(str(exc).split())}); write it later "
              f"with: python scripts/report.py {out}", file=sys.stderr)


def _masks(model: xpnet.Network, args: argparse.Namespace, prep: Prepared) -> list[np.ndarray]:
    """The scaled dropout masks of every Dropout layer at a few counters (batch-sized; the width is that
    of the last Dense layer before it, depth-first)."""
    rows = batch_rows(args, prep)
    out, width = [], model.n_inputs
    for _, layer in xpnet.nn.walk(model.root):
        width = getattr(layer, "n_out", width)
        if isinstance(layer, xpnet.nn.Dropout):
            out += [model.backend.to_numpy(layer.mask((rows, width), model.dtype, c)).copy() for c in MASK_COUNTERS]
    return out


def _same_bits(a: list[np.ndarray] | np.ndarray, b: list[np.ndarray] | np.ndarray) -> bool:
    a, b = (a, b) if isinstance(a, list) else ([a], [b])
    return len(a) == len(b) and all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                                    for x, y in zip(a, b))


def _compare(runs: list[dict], tol: float) -> list[dict]:
    ref = runs[0]
    tiny = np.finfo(np.float64).tiny
    p_scale = max(float(np.max(np.abs(ref["params"].astype(np.float64)))), tiny)
    rows = []
    for r in runs:
        n = min(len(r["step_loss"]), len(ref["step_loss"]))
        rel = np.abs(r["step_loss"][:n] - ref["step_loss"][:n]) / np.maximum(np.abs(ref["step_loss"][:n]), tiny)
        absdiff = np.abs(r["step_loss"][:n] - ref["step_loss"][:n])
        pdiff = float(np.max(np.abs(r["params"].astype(np.float64) - ref["params"].astype(np.float64))))
        worst = int(np.argmax(rel)) if n else 0
        row = {"spec": r["backend"].spec, "description": r["backend"].describe(), "device": r["backend"].device_name,
               "seconds": r["seconds"], "final_train_loss": r["final_loss"], "final_val_loss": r["final_val_loss"],
               "steps": int(len(r["step_loss"])), "same_number_of_steps": len(r["step_loss"]) == len(ref["step_loss"]),
               "init_bit_identical": _same_bits(r["init"], ref["init"]),
               "dropout_masks_bit_identical": _same_bits(r["masks"], ref["masks"]) if ref["masks"] else None,
               "max_rel_loss_deviation": float(rel[worst]) if n else 0.0, "max_rel_loss_step": worst + 1,
               "max_abs_loss_deviation": float(absdiff.max()) if n else 0.0,
               "max_abs_param_diff": pdiff, "max_rel_param_diff": pdiff / p_scale,
               "loss": r["step_loss"].tolist(), "rel": rel.tolist()}
        row["pass"] = bool(row["init_bit_identical"] and row["dropout_masks_bit_identical"] is not False
                           and row["same_number_of_steps"] and row["max_rel_loss_deviation"] <= tol
                           and row["max_rel_param_diff"] <= tol)
        rows.append(row)
    return rows


def _sample_steps(n: int) -> list[int]:
    picks = {1, 2, 3, n}
    k = 10
    while k < n:
        picks.update({k, 2 * k, 5 * k})
        k *= 10
    return sorted(s for s in picks if 1 <= s <= n)


def _table(rows: list[dict], tol: float, args: argparse.Namespace, model: xpnet.Network, steps: int,
           passed: bool) -> str:
    ref = rows[0]
    yes = lambda v: "n/a" if v is None else ("identical" if v else "DIFFERENT")  # noqa: E731
    head = ["backend", "init weights", "dropout masks", "max rel dloss (step)", "max abs dloss",
            "max rel dparam", "final loss", "time", "status"]
    table = [head]
    for i, r in enumerate(rows):
        if i == 0:
            table.append([r["spec"] + " (ref)", "-", "-", "-", "-", "-", fmt(r["final_train_loss"]),
                          f"{r['seconds']:.2f}s", ""])
            continue
        table.append([r["spec"], yes(r["init_bit_identical"]), yes(r["dropout_masks_bit_identical"]),
                      _dev(r["max_rel_loss_deviation"]) + (f" ({r['max_rel_loss_step']})"
                                                           if r["max_rel_loss_deviation"] else ""),
                      _dev(r["max_abs_loss_deviation"]), _dev(r["max_rel_param_diff"]),
                      fmt(r["final_train_loss"]), f"{r['seconds']:.2f}s",
                      "ok" if r["pass"] else "FAIL" + ("" if r["same_number_of_steps"] else
                                                       f" ({r['steps']} steps vs {ref['steps']})")])
    lines = [f"xpnet parity: {dataset_label(args.dataset)}, {describe(model)}, {args.dtype}, seed {args.seed}, "
             f"{args.optimizer} lr {hp(args.lr)}, batch {args.batch_size}; "
             f"{ref['steps']} steps ({steps} per epoch); reference {ref['spec']}", ""]
    lines += _columns(table)
    n = ref["steps"]
    others = rows[1:]
    step_table = [["step", f"loss {ref['spec']}"] + [f"rel dev {r['spec']}" for r in others]]
    for s in _sample_steps(n):
        step_table.append([str(s), f"{ref['loss'][s - 1]:.8g}"] +
                          [_dev(r["rel"][s - 1]) if s <= len(r["rel"]) else "-" for r in others])
    lines += ["", f"training loss by step, relative deviation from {ref['spec']} (all {n} steps in parity.json):"]
    lines += _columns(step_table)
    which = "default for " + args.dtype if args.tol is None else "--tol"
    verdict = "PASS: every backend within tolerance" if passed else "FAIL: see the status column"
    lines += ["", f"tolerance {tol:g} ({which}); {verdict}", f"outputs   {args.out}{os.sep}  parity.json parity.png"]
    return "\n".join(lines)


def _dev(v: float) -> str:
    return "0" if v == 0 else f"{v:.2e}"


def _columns(table: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]


def _plot(rows: list[dict], tol: float, args: argparse.Namespace, path: str) -> None:
    """Each step's relative loss deviation (dots; exact zeros drawn at a floor) and its running maximum."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    floor = float(np.finfo(args.dtype).eps) / 100
    for i, r in enumerate(rows[1:]):
        rel = np.asarray(r["rel"], dtype=np.float64)
        steps = np.arange(1, len(rel) + 1)
        color = f"C{i}"
        ax.plot(steps, np.maximum(rel, floor), ls="none", marker=".", ms=2.5, color=color, alpha=0.5)
        ax.plot(steps, np.maximum(np.maximum.accumulate(rel), floor), lw=1.4, color=color,
                label=f"{r['spec']} (line: running max)")
    ax.axhline(tol, color="red", ls="--", lw=1.0, label=f"tolerance {tol:g}")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"|loss - loss {rows[0]['spec']}| / |loss {rows[0]['spec']}|")
    ax.set_title(f"loss deviation from {rows[0]['spec']} ({args.dtype}); exact 0 drawn at {floor:.1e}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    script_entry(main)
