"""A run folder's figures: the PNG plots and report.html, drawn from the files the run wrote.

Matplotlib, Bokeh and drawing take about a second, longer than a short run's training, so
``train.py`` hands them by default to a background process (``scripts/report.py RUN --figures``)
once everything else is saved, and prints its summary at once. ``--figures wait`` (or
``XPNET_FIGURES=wait``) draws them before the summary; ``--figures none`` leaves them out
(``scripts/report.py RUN --figures`` draws them later). Either way the same code below draws them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from .args import CLIError
from .data import dataset_label
from .model import dense_labels
from .plots import plot_accuracy, plot_decision_boundary, plot_diagnostics, plot_grad_norms, plot_loss
from .rundata import read_json, require_folder, run_data
from .runmodel import load_run_model

__all__ = ["MODES", "default_mode", "planned", "write_figures", "start_background"]

MODES = ("background", "wait", "none")
ENV = "XPNET_FIGURES"
LOG = "figures.log"  # the background writer's errors, if any


def default_mode() -> str:
    """``$XPNET_FIGURES`` when it names a mode, else "background"."""
    mode = os.environ.get(ENV, "").strip().lower()
    return mode if mode in MODES else "background"


def planned(record: dict, task: str, n_features: int) -> list[str]:
    """The files :func:`write_figures` writes for a run with this history, task and input width."""
    names = ["loss.png"] + (["accuracy.png"] if task != "regression" else []) + ["grad_norms.png"]
    if record["per_epoch"].get("diagnostics"):
        names.append("diagnostics.png")
    if task != "regression" and n_features == 2:
        names.append("decision_boundary.png")
    return names + ["report.html"]


def write_figures(run_dir: str) -> tuple[list[str], list[str]]:
    """Draw every figure of a train.py run folder (see :func:`planned`): (files written, one line per figure
    that failed). A figure that fails costs itself, not the others."""
    require_folder(run_dir, "figures:")
    config, record = read_json(os.path.join(run_dir, "config.json")), read_json(os.path.join(run_dir, "history.json"))
    if not isinstance(config, dict) or not isinstance(record, dict):
        raise CLIError(f"figures: {run_dir} has no readable config.json and history.json (is it a train.py run?)")
    run = load_run_model(run_dir)
    prep = run_data(run_dir, run, config)
    settings, path = config.get("settings") or {}, lambda name: os.path.join(run_dir, name)
    title = f"{dataset_label(str(settings.get('dataset', '?')))} on {config.get('backend', '?')}"
    jobs = [("loss.png", lambda: plot_loss(record, path("loss.png"), f"loss: {title}"))]
    if run.task != "regression":
        jobs.append(("accuracy.png", lambda: plot_accuracy(record, path("accuracy.png"), f"accuracy: {title}")))
    jobs.append(("grad_norms.png", lambda: plot_grad_norms(record, dense_labels(run.model), path("grad_norms.png"),
                                                           f"weight-gradient norms: {title}")))
    if record["per_epoch"].get("diagnostics"):
        jobs.append(("diagnostics.png", lambda: plot_diagnostics(record, path("diagnostics.png"),
                                                                 f"mean |dL/dW| per layer: {title}")))
    if prep is not None and run.task != "regression" and prep.data.X.shape[1] == 2:
        held = prep.idx[prep.eval_split]
        jobs.append(("decision_boundary.png", lambda: plot_decision_boundary(
            run, prep.data.X, prep.data.X[held], prep.data.y[held], path("decision_boundary.png"),
            feature_names=prep.data.feature_names)))
    jobs.append(("report.html", lambda: _report(run_dir, run, prep)))
    written, failed = [], []
    for name, job in jobs:
        try:
            job()
            written.append(name)
        except Exception as exc:  # noqa: BLE001 - one figure's failure costs that figure only
            failed.append(f"{name} ({type(exc).__name__}: {' '.join(str(exc).split())})")
    return written, failed


def _report(run_dir: str, run: object, prep: object) -> None:
    from .html_report import write_report  # Bokeh: imported only here

    write_report(run_dir, run, prep)


def start_background(run_dir: str) -> int:
    """Start ``scripts/report.py RUN --figures`` detached (its errors go to ``RUN/figures.log``); returns
    its process id."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "report.py")
    with open(os.path.join(run_dir, LOG), "wb") as log:
        proc = subprocess.Popen([sys.executable, script, run_dir, "--figures", "--quiet"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                env=dict(os.environ, **{ENV: "wait"}))
    return proc.pid
