"""What a run reports: test metrics, the history record (history.json / .csv), the summary's metrics and
diagnostics lines, number formatting."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from xpnet import metrics as xm

from .data import plain
from .runmodel import RunModel


def compute_metrics(run: RunModel, X: np.ndarray, y_true: np.ndarray) -> dict:
    """Test metrics from raw inputs and raw targets (labels as in the data, or values).

    Computed with :mod:`xpnet.metrics` on the model's device (scikit-learn's definitions).
    Classification: accuracy, precision / recall / F1 (binary: of the second class;
    multiclass: macro averages), ROC AUC (one-vs-rest macro for multiclass; null when a
    class is missing from y_true), log loss and the confusion matrix (rows: true class,
    columns: predicted, in ``classes`` order). Regression: MSE, RMSE, MAE, R² on the
    target's own scale.
    """
    n = int(len(y_true))
    if run.task == "regression":
        pred, y = run.predict(X), np.asarray(y_true, dtype=np.float64)
        return {"task": "regression", "n": n, "mse": xm.mean_squared_error(y, pred),
                "rmse": xm.root_mean_squared_error(y, pred), "mae": xm.mean_absolute_error(y, pred),
                "r2": xm.r2_score(y, pred)}
    k = len(run.classes)
    lookup = {c: i for i, c in enumerate(run.classes.tolist())}
    yi = np.array([lookup[plain(v)] for v in np.asarray(y_true).tolist()], dtype=np.int64)
    Xs = run.scaler.transform(X)
    pred, proba = run.model.predict(Xs), run.model.forward(Xs)  # on the device
    labels = list(range(k))
    avg = "binary" if k == 2 else "macro"
    score = (proba[:, 0] if proba.shape[1] == 1 else proba[:, 1]) if k == 2 else proba
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xm.UndefinedMetricWarning)  # a class absent from y_true: AUC null
        return {"task": run.task, "n": n, "classes": [plain(c) for c in run.classes], "average": avg,
                "accuracy": xm.accuracy_score(yi, pred),
                "precision": xm.precision_score(yi, pred, labels=labels, average=avg, zero_division=0),
                "recall": xm.recall_score(yi, pred, labels=labels, average=avg, zero_division=0),
                "f1": xm.f1_score(yi, pred, labels=labels, average=avg, zero_division=0),
                "roc_auc": xm.roc_auc_score(yi, score, labels=None if k == 2 else labels),
                "log_loss": xm.log_loss(yi, proba, labels=labels),
                "confusion_matrix": xm.confusion_matrix(yi, pred, labels=labels)}


def history_record(h: Any, steps: int, interrupted: bool = False) -> dict:
    """The history.json document: per-epoch and per-step series (epochs and steps numbered from 1, as
    xpnet.History numbers epochs); ``diagnostics``, ``loss_scale`` and ``skipped_steps`` when recorded."""
    per_epoch = {"epoch": list(h["epoch"]), "train_loss": h["loss"], "val_loss": h["val_loss"],
                 "train_accuracy": h["accuracy"], "val_accuracy": h["val_accuracy"], "lr": h["lr"],
                 "seconds": h["time"]}
    for key in ("grad_norms", "diagnostics", "loss_scale", "skipped_steps"):
        if any(v is not None for v in h.get(key) or []):
            per_epoch[key] = h[key]
    return {"per_epoch": per_epoch,
            "per_step": {"step": list(range(1, len(h["step_loss"]) + 1)), "loss": h["step_loss"]},
            "steps_per_epoch": steps, "epochs_run": len(h["epoch"]),
            "best_epoch": h.get("best_epoch"), "stopped_early": bool(h.get("stopped_early")),
            "interrupted": interrupted,
            "notes": "train_accuracy is measured on the training forwards (dropout active); grad_norms[e][l] "
                     "is the L2 norm of the weight gradient of the l-th Dense layer (depth-first) at the last step of "
                     "epoch e"
                     + ("; interrupted: the unfinished last epoch is not recorded" if interrupted else "")
                     + ("; per-step losses and gradient norms were not recorded (stopped outside a step)"
                        if h["epoch"] and not h["step_loss"] else "")}


def metrics_text(metrics: dict) -> str:
    """The summary's metrics: ``accuracy 0.98  precision 0.99 ...``; multiclass precision, recall and F1
    say they are macro averages (``precision (macro) 0.97``)."""
    if metrics["task"] == "regression":
        return "  ".join(f"{k} {fmt(metrics[k])}" for k in ("mse", "rmse", "mae", "r2"))
    avg = f" ({metrics['average']})" if metrics.get("average") not in (None, "binary") else ""
    return "  ".join(f"{k}{avg if k in ('precision', 'recall', 'f1') else ''} {fmt(metrics[k])}"
                     for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"))


DIAGNOSTICS_COLUMNS = ("layer", "Dense", "activation", "mean |dW|", "max |dW|", "mean |W|", "act mean", "act std",
                       "dead")


def diagnostics_rows(stats: list[dict]) -> list[list[str]]:
    """One row per Dense layer of xpnet.diagnostics statistics (columns: :data:`DIAGNOSTICS_COLUMNS`)."""
    return [[str(s["layer"]), s["name"], s["activation"], fmt(s["grad_mean_abs"]), fmt(s["grad_max_abs"]),
             fmt(s["weight_mean_abs"]), fmt(s["act_mean"]), fmt(s["act_std"]),
             "-" if s["dead_fraction"] is None else f"{s['dead_fraction']:.0%}"] for s in stats]


def text_table(rows: list[list[str]], head: tuple[str, ...] | list[str], indent: str = "") -> list[str]:
    """Rows as left-aligned text columns under ``head``."""
    table = [list(head)] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]


HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "seconds")


def history_csv(record: dict) -> str:
    """history.csv: one row per epoch (empty cells for None)."""
    pe = record["per_epoch"]
    lines = [",".join(HISTORY_COLUMNS)]
    for i in range(len(pe["epoch"])):
        lines.append(",".join("" if pe[c][i] is None else repr(pe[c][i]) for c in HISTORY_COLUMNS))
    return "\n".join(lines) + "\n"


def fmt(v: Any, digits: int = 4) -> str:
    """A number for the summaries: 4 decimals (4 significant digits when tiny or huge), "-" for None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)) else f"{v:.{digits}f}"
    return str(v)


def hp(v: Any) -> str:
    """A hyperparameter as the user would type it: 0.001, 1e-05, 64."""
    return f"{v:g}" if isinstance(v, float) else str(v)
