"""The run's figures (matplotlib, Agg backend), written atomically as PNG files."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from xpnet.io.atomic import atomic_write

from .data import plain
from .runmodel import RunModel


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str) -> None:
    """Write ``fig`` to ``path`` as PNG and close it."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    pyplot().close(fig)


def _positive(values: Sequence[Any]) -> bool:
    vals = [v for v in values if v is not None]
    return bool(vals) and all(v > 0 for v in vals)


def _finish_line_plot(fig: Any, ax: Any, path: str, xlabel: str, ylabel: str, title: str) -> None:
    """Label, grid and legend a line plot, then save it to ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_loss(record: dict, path: str, title: str = "") -> None:
    """Train loss per step (faint) and per epoch, validation loss per epoch."""
    plt = pyplot()
    pe, ps = record["per_epoch"], record["per_step"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if ps["loss"]:
        steps = np.asarray(ps["step"], dtype=float) / record["steps_per_epoch"]
        ax.plot(steps, ps["loss"], color="tab:blue", alpha=0.2, lw=0.6, label="train loss (per step)")
    ax.plot(pe["epoch"], pe["train_loss"], color="tab:blue", lw=1.6, label="train loss (epoch mean)")
    if any(v is not None for v in pe["val_loss"]):
        ax.plot(pe["epoch"], [np.nan if v is None else v for v in pe["val_loss"]], color="tab:orange", lw=1.6,
                label="validation loss")
    if _positive(pe["train_loss"] + pe["val_loss"] + ps["loss"]):
        ax.set_yscale("log")
    _finish_line_plot(fig, ax, path, "epoch", "loss (incl. L2 penalty)", title or "loss")


def plot_accuracy(record: dict, path: str, title: str = "") -> None:
    plt = pyplot()
    pe = record["per_epoch"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label, color in (("train_accuracy", "train (dropout on)", "tab:blue"),
                              ("val_accuracy", "validation", "tab:orange")):
        if any(v is not None for v in pe[key]):
            ax.plot(pe["epoch"], [np.nan if v is None else v for v in pe[key]], color=color, lw=1.6, label=label)
    _finish_line_plot(fig, ax, path, "epoch", "accuracy", title or "accuracy")


def plot_grad_norms(record: dict, labels: Sequence[str], path: str, title: str = "") -> None:
    """The L2 norm of each Dense layer's weight gradient (``labels``: one per layer) at the last step of
    each epoch."""
    plt = pyplot()
    pe = record["per_epoch"]
    norms = np.asarray(pe["grad_norms"], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i in range(norms.shape[1]):
        ax.plot(pe["epoch"], norms[:, i], lw=1.4, label=labels[i])
    if np.all(norms > 0):
        ax.set_yscale("log")
    _finish_line_plot(fig, ax, path, "epoch", "||dL/dW|| (last step of the epoch)",
                      title or "gradient norms per layer")


def plot_decision_boundary(run: RunModel, X_all: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                           path: str, title: str = "", feature_names: Sequence[str] = ("x0", "x1")) -> None:
    """Predicted class regions over the input plane (raw units), with the test points on top."""
    plt = pyplot()
    lo, hi = X_all.min(axis=0), X_all.max(axis=0)
    pad = 0.08 * (hi - lo) + 1e-9
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 250),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], 250))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    k = len(run.classes)
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("RdBu" if k == 2 else "tab10")
    if k == 2:
        p = run.predict_proba(grid)[:, 1].reshape(gx.shape)
        cs = ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.7)
        ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1.2)
        fig.colorbar(cs, ax=ax, label=f"P(class {plain(run.classes[1])})")
    else:
        idx = run.predict_index(grid).reshape(gx.shape)
        ax.contourf(gx, gy, idx, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.35, vmin=0, vmax=9)
    lookup = {c: i for i, c in enumerate(run.classes.tolist())}
    yi = np.array([lookup[plain(v)] for v in np.asarray(y_test).tolist()])
    pred = run.predict_index(X_test)
    colors = [cmap(0.0 if i == 0 else 1.0) for i in yi] if k == 2 else [cmap(i % 10) for i in yi]
    ax.scatter(X_test[:, 0], X_test[:, 1], c=colors, edgecolors="k", s=22, linewidths=0.6)
    wrong = pred != yi
    if wrong.any():
        ax.scatter(X_test[wrong, 0], X_test[wrong, 1], marker="x", c="yellow", s=40, linewidths=1.5,
                   label=f"misclassified ({int(wrong.sum())})")
        ax.legend(loc="lower right")
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.set_title(title or f"decision boundary, test accuracy {float(np.mean(~wrong)):.3f}")
    save_figure(fig, path)


def plot_lr_find(record: dict, path: str, title: str = "") -> None:
    """The learning-rate finder's sweep (``record``: :func:`~.training.lr_find_record`): raw and smoothed loss
    against the learning rate on a log axis, the suggestion marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(record["lrs"], record["losses"], color="tab:blue", alpha=0.3, lw=0.8, label="loss (per batch)")
    ax.plot(record["lrs"], record["smoothed"], color="tab:blue", lw=1.6, label="smoothed loss")
    ax.axvline(record["suggestion"], color="tab:red", ls="--", lw=1.2,
               label=f"suggestion {record['suggestion']:.3g}")
    ax.set_xscale("log")
    finite = [v for v in record["smoothed"] if np.isfinite(v)]
    if finite:  # the exploding tail would squash the curve
        lo, hi = min(finite), max(finite[: max(1, len(finite) // 10)] + [min(finite)])
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-12), hi + 0.5 * (hi - lo + 1e-12))
    _finish_line_plot(fig, ax, path, "learning rate", "training loss", title or "learning-rate finder")


def plot_diagnostics(record: dict, path: str, title: str = "") -> None:
    """Mean |dL/dW| per Dense layer over the epochs (log scale), from the diagnostics in ``record``."""
    plt = pyplot()
    pe = record["per_epoch"]
    recorded = [(e, d) for e, d in zip(pe["epoch"], pe.get("diagnostics") or []) if d]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    layers = recorded[0][1] if recorded else []
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(1, len(layers))))
    for i, s in enumerate(layers):  # first layer dark, last light
        values = [d[i]["grad_mean_abs"] for _, d in recorded]
        ax.plot([e for e, _ in recorded], values, lw=1.4, color=colors[i],
                label=f"{s['layer']}: {s['name']} ({s['activation']})")
    if recorded and all(d[i]["grad_mean_abs"] > 0 for _, d in recorded for i in range(len(d))):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean |dL/dW| (last batch of the epoch)")
    ax.set_title(title or "gradients per layer")
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if layers:
        ax.legend(fontsize="x-small" if len(layers) > 8 else "small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    save_figure(fig, path)
