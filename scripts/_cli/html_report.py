"""report.html: one self-contained page per run folder (train.py or parity.py), charts by Bokeh.

Bokeh (imported here, lazily, only when a report is written) draws the interactive charts: hover
for values, click a legend entry to hide its series. Its JavaScript is inlined (about 1.3 MB, the
core bundle only), so the page opens offline. The tables (summary, diagnostics, confusion matrix,
parity) are plain HTML. Every number comes from the run's files or from xpnet (the decision
boundary's probabilities, the diagnostics); nothing is computed in the page.
"""
from __future__ import annotations

import datetime
import html
import json
import os
from typing import Any

import numpy as np

from .args import CLIError
from .data import plain
from .pages import render, write_page
from .prepare import Prepared
from .report import DIAGNOSTICS_COLUMNS, diagnostics_rows, fmt
from .rundata import read_json, require_folder, run_data
from .runmodel import RunModel, load_run_model

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH, HEIGHT = 760, 320


def esc(v: Any) -> str:
    return html.escape(str(v))


def _table(rows: list[list[Any]], head: list[str] | None = None, testid: str = "") -> str:
    t = f'<table class="grid" data-testid="{testid}">' if testid else '<table class="grid">'
    if head:
        t += "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
    for r in rows:
        t += "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
    return t + "</table>"


def _nan(values: list) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def _positive(values: list) -> bool:
    vals = [v for v in values if v is not None and v == v]
    return bool(vals) and all(v > 0 for v in vals)


# ---------------------------------------------------------------- charts
def _figure(name: str, title: str, x_label: str, y_label: str, log_y: bool = False, **kw: Any) -> Any:
    from bokeh.plotting import figure

    fig = figure(name=name, title=title, width=WIDTH, height=HEIGHT, y_axis_type="log" if log_y else "linear",
                 tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above", **kw)
    fig.xaxis.axis_label, fig.yaxis.axis_label = x_label, y_label
    return fig


def _lines(fig: Any, series: list[tuple[str, str, list, list, dict]], tooltips: list[tuple[str, str]]) -> Any:
    """One line per (name, label, x, y, style); hover on each; click a legend entry to hide it."""
    from bokeh.models import ColumnDataSource, HoverTool

    for i, (name, label, x, y, style) in enumerate(series):
        source = ColumnDataSource({"x": list(x), "y": _nan(y)}, name=f"{name}_source")
        fig.line("x", "y", source=source, name=name, legend_label=label,
                 **({"color": COLORS[i % len(COLORS)], "line_width": 1.8} | style))
    fig.add_tools(HoverTool(tooltips=tooltips, mode="mouse", line_policy="nearest",
                            renderers=[r for r in fig.renderers if r.name != "step_loss"] or "auto"))
    fig.legend.click_policy = "hide"
    fig.legend.name = f"{fig.name}_legend"
    fig.legend.location = "top_right"
    return fig


def history_figures(history: dict) -> list[Any]:
    """Loss (per epoch and per step), accuracy and per-layer gradient-norm charts from history.json."""
    pe, ps = history["per_epoch"], history.get("per_step") or {}
    epochs, figs = pe["epoch"], []
    steps = history.get("steps_per_epoch") or 1
    series = []
    if ps.get("loss"):
        series.append(("step_loss", "train loss (per step)", [s / steps for s in ps["step"]], ps["loss"],
                       {"color": "#9ecae1", "line_width": 0.8, "alpha": 0.7}))
    series.append(("train_loss", "train loss (epoch mean)", epochs, pe["train_loss"], {"color": COLORS[0]}))
    if any(v is not None for v in pe.get("val_loss", [])):
        series.append(("val_loss", "validation loss", epochs, pe["val_loss"], {"color": COLORS[1]}))
    log_y = _positive([v for s in series for v in s[3]])
    figs.append(_lines(_figure("loss", "loss (incl. L2 penalty)", "epoch", "loss", log_y), series,
                       [("epoch", "@x{0.[00]}"), ("loss", "@y{0.0000}")]))
    acc = [(k, lab, epochs, pe[k], {"color": c}) for k, lab, c in
           (("train_accuracy", "train accuracy (dropout on)", COLORS[0]), ("val_accuracy", "validation accuracy", COLORS[1]))
           if any(v is not None for v in pe.get(k, []))]
    if acc:
        figs.append(_lines(_figure("accuracy", "accuracy", "epoch", "accuracy"), acc,
                           [("epoch", "@x"), ("accuracy", "@y{0.0000}")]))
    norms = pe.get("grad_norms")
    if norms:
        cols = list(zip(*norms))
        series = [(f"grad_norm_{i}", f"Dense layer {i}", epochs, list(c), {}) for i, c in enumerate(cols)]
        figs.append(_lines(_figure("grad_norms", "‖dL/dW‖ per Dense layer (last step of each epoch)", "epoch",
                                   "gradient norm", _positive([v for c in cols for v in c])), series,
                           [("layer", "$name"), ("epoch", "@x"), ("norm", "@y{0.000e}")]))
    return figs


def boundary_figure(run: RunModel, prep: Prepared, grid: int = 120) -> Any:
    """Predicted probability (binary) or class (multiclass) over the input plane, test points (training points
    without a test split) on top."""
    from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper

    X = prep.data.X
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.08 * (hi - lo) + 1e-9
    gx, gy = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid), np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid)
    mesh = np.column_stack([np.tile(gx, grid), np.repeat(gy, grid)])
    k = len(run.classes)
    names = prep.data.feature_names
    if k == 2:
        values, label = run.predict_proba(mesh)[:, 1], f"P(class {plain(run.classes[1])})"
        mapper = LinearColorMapper(palette="RdBu11", low=0.0, high=1.0)
    else:
        values, label = run.predict_index(mesh).astype(float), "predicted class"
        mapper = LinearColorMapper(palette=list(COLORS[:k]), low=-0.5, high=k - 0.5)
    split = prep.eval_split
    fig = _figure("decision_boundary", f"{label} on a {grid}×{grid} grid (xpnet); {split} points, ▲ misclassified",
                  names[0], names[1], x_range=(gx[0], gx[-1]), y_range=(gy[0], gy[-1]))
    fig.width = fig.height = 560
    fig.image(image=[values.reshape(grid, grid)], x=gx[0], y=gy[0], dw=gx[-1] - gx[0], dh=gy[-1] - gy[0],
              color_mapper=mapper, alpha=0.75, name="boundary_image")
    test = prep.idx[split]
    pred = run.predict_index(X[test])
    lookup = {c: i for i, c in enumerate(run.classes.tolist())}
    yi = np.array([lookup[plain(v)] for v in prep.data.y[test].tolist()])
    src = ColumnDataSource({"x": X[test, 0], "y": X[test, 1], "label": [str(plain(v)) for v in prep.data.y[test]],
                            "pred": [str(plain(run.classes[p])) for p in pred],
                            "color": [COLORS[i % len(COLORS)] for i in yi],
                            "marker": ["triangle" if p != t else "circle" for p, t in zip(pred, yi)]})
    pts = fig.scatter("x", "y", source=src, size=8, fill_color="color", line_color="#000000", line_width=1.0,
                      marker="marker", name="test_points")
    fig.add_tools(HoverTool(renderers=[pts], tooltips=[(names[0], "@x{0.000}"), (names[1], "@y{0.000}"),
                                                       ("class", "@label"), ("predicted", "@pred")]))
    return fig


def parity_figure(report: dict) -> Any:
    """Each backend's relative step-loss deviation from the reference (log scale), and the tolerance."""
    floor = float(np.finfo(report.get("dtype", "float32")).eps) / 100
    series = [(f"parity_{i}", spec, list(range(1, len(rel) + 1)), [max(v, floor) for v in rel], {})
              for i, (spec, rel) in enumerate(report["rel_loss_deviation"].items())]
    n = max([len(s[2]) for s in series] + [1])
    tol = report["tolerance"]
    series.append(("tolerance", f"tolerance {tol:g}", [1, n], [tol, tol],
                   {"color": "red", "line_dash": "dashed", "line_width": 1.2}))
    fig = _lines(_figure("parity", f"relative step-loss deviation from {report['reference']} (exact 0 drawn at {floor:.1e})",
                         "training step", "|loss - loss_ref| / |loss_ref|", log_y=True), series,
                 [("backend", "$name"), ("step", "@x"), ("deviation", "@y{0.00e}")])
    return fig


# ---------------------------------------------------------------- tables
def summary_rows(config: dict, metrics: dict | None, history: dict | None) -> list[list[str]]:
    """(what, value) rows: data, model, training, final epoch, test metrics."""
    s, data, model = config.get("settings", {}), config.get("data", {}), config.get("model", {})
    rows = [["created", config.get("created", "-")], ["backend", f"{config.get('backend')} ({config.get('device')})"],
            ["data", f"{data.get('dataset')}: {data.get('n_samples')} samples x {data.get('n_features')} features, "
                     f"{data.get('task')}; splits {data.get('splits')}"],
            ["model", f"{len(model.get('layers', []))} layers, {model.get('n_params', '-')} parameters, "
                      f"{model.get('dtype')}, seed {config.get('seed')}"],
            ["training", f"{s.get('optimizer')} lr {s.get('lr')} ({s.get('schedule')}), {s.get('loss')} loss, batch "
                         f"{s.get('batch_size')}, L2 {s.get('l2')}, {s.get('epochs')} epochs"]]
    if history:
        pe = history["per_epoch"]
        last = {k: pe[k][-1] if pe.get(k) else None for k in ("train_loss", "val_loss", "val_accuracy")}
        rows.append(["final", f"epoch {history.get('epochs_run')}: train loss {fmt(last['train_loss'])}, val loss "
                              f"{fmt(last['val_loss'])}, val accuracy {fmt(last['val_accuracy'])}"
                     + (f" (stopped early, best epoch {history.get('best_epoch')})" if history.get("stopped_early") else "")
                     + (" (interrupted)" if history.get("interrupted") else "")])
    if metrics:
        keys = [k for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mse", "rmse", "mae", "r2")
                if k in metrics]
        rows.append([f"{metrics.get('split', 'test')} ({metrics.get('n')} samples)",
                     "  ".join(f"{k} {fmt(metrics[k])}" for k in keys)])
        if metrics.get("train_seconds") is not None:
            rows.append(["time", f"{metrics['train_seconds']:.2f} s training"])
    return rows


def confusion_html(metrics: dict) -> str:
    """The confusion matrix (rows: true class, columns: predicted), shaded by share of the row."""
    cm, classes = np.asarray(metrics["confusion_matrix"]), [str(c) for c in metrics["classes"]]
    t = '<table class="cm" data-testid="confusion-matrix"><tr><th>true \\ predicted</th>'
    t += "".join(f"<th>{esc(c)}</th>" for c in classes) + "</tr>"
    for i, c in enumerate(classes):
        total = max(int(cm[i].sum()), 1)
        t += f"<tr><th>{esc(c)}</th>"
        for j in range(len(classes)):
            share = cm[i, j] / total
            color = f"rgba(31,119,180,{0.08 + 0.8 * share:.2f})" if i == j else f"rgba(214,39,40,{0.05 + 0.8 * share:.2f})"
            t += f'<td style="background:{color}">{int(cm[i, j])}</td>'
        t += "</tr>"
    return t + "</table>"


def diagnostics_html(stats: list[dict], note: str) -> str:
    """xpnet.diagnostics statistics per Dense layer, with the one problem each shows (if any)."""
    from xpnet.diagnostics import diagnose

    rows = [row + [found[1] if (found := diagnose(s)) else "ok"] for row, s in zip(diagnostics_rows(stats), stats)]
    return f'<p class="note">{esc(note)}</p>' + _table(rows, [*DIAGNOSTICS_COLUMNS, "diagnosis"], "diagnostics")


def _dev(v: float) -> str:
    return "0" if v == 0 else f"{v:.2e}"


def parity_table(report: dict) -> str:
    """The backends' comparison, as parity.py prints it."""
    yes = lambda v: "n/a" if v is None else ("identical" if v else "DIFFERENT")  # noqa: E731
    rows = []
    for i, b in enumerate(report["backends"]):
        ref = i == 0
        rows.append([b["spec"] + (" (ref)" if ref else ""), "-" if ref else yes(b["init_bit_identical"]),
                     "-" if ref else yes(b["dropout_masks_bit_identical"]),
                     "-" if ref else _dev(b["max_rel_loss_deviation"]) + (f" (step {b['max_rel_loss_step']})"
                                                                         if b["max_rel_loss_deviation"] else ""),
                     "-" if ref else _dev(b["max_abs_loss_deviation"]), "-" if ref else _dev(b["max_rel_param_diff"]),
                     fmt(b["final_train_loss"]), f"{b['seconds']:.2f}s", "" if ref else ("ok" if b["pass"] else "FAIL")])
    head = ["backend", "init weights", "dropout masks", "max rel dloss (step)", "max abs dloss", "max rel dparam",
            "final loss", "time", "status"]
    verdict = "PASS: every backend within tolerance" if report.get("passed") else "FAIL: see the status column"
    return (_table(rows, head, "parity-table") +
            f'<p class="note">tolerance {report["tolerance"]:g}; {esc(verdict)}; {report.get("dtype")}, reference '
            f'{esc(report["reference"])}, {report.get("steps_per_epoch")} steps per epoch</p>')


# ---------------------------------------------------------------- the page
def _section(title: str, body: str, testid: str) -> str:
    return f'<section data-testid="{testid}"><h2>{esc(title)}</h2>{body}</section>'


def build_report(run_dir: str, run: RunModel | None = None, prep: Prepared | None = None) -> str:
    """The report page of a run folder. ``run``/``prep``: the model and data when the caller has them
    (train.py); otherwise they are reloaded from the folder when possible."""
    from bokeh.embed import components
    from bokeh.resources import Resources

    config = read_json(os.path.join(run_dir, "config.json"))
    parity = read_json(os.path.join(run_dir, "parity.json"))
    history = read_json(os.path.join(run_dir, "history.json"))
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    sections, figs = [], {}
    name = os.path.basename(os.path.abspath(run_dir))
    if parity is not None and parity.get("script") == "parity.py":
        title = f"xpnet parity report: {name}"
        s = parity.get("settings", {})
        sections.append(_section("summary", _table([
            ["created", parity.get("created", "-")], ["backends", ", ".join(b["spec"] for b in parity["backends"])],
            ["data", s.get("dataset")], ["training", f"{s.get('optimizer')} lr {s.get('lr')}, batch {s.get('batch_size')}, "
                                                      f"{s.get('epochs')} epochs, {parity.get('dtype')}, seed {s.get('seed')}"],
            ["verdict", "PASS" if parity.get("passed") else "FAIL"]], testid="summary-table"), "summary"))
        sections.append(_section("parity", parity_table(parity) + "%%parity%%", "parity"))
        figs["parity"] = parity_figure(parity)
    elif config is not None:
        title = f"xpnet run report: {name}"
        sections.append(_section("summary", _table(summary_rows(config, metrics, history), testid="summary-table"), "summary"))
        if history and history.get("per_epoch", {}).get("epoch"):
            for fig in history_figures(history):
                figs[fig.name] = fig
                sections.append(_section(fig.name.replace("_", " "), f"%%{fig.name}%%", fig.name))
        if run is None and os.path.isfile(os.path.join(run_dir, "model.json")):
            try:
                run = load_run_model(run_dir)
            except (OSError, ValueError, KeyError):
                run = None
        if prep is None and run is not None:
            prep = run_data(run_dir, run, config)
        diag = _diagnostics(history, run, prep, config)
        if diag:
            sections.append(_section("diagnostics", diag, "diagnostics-section"))
        if run is not None and prep is not None and run.task != "regression" and prep.data.X.shape[1] == 2:
            figs["decision_boundary"] = boundary_figure(run, prep)
            sections.append(_section("decision boundary", "%%decision_boundary%%", "decision-boundary"))
        if metrics and metrics.get("confusion_matrix") is not None:
            split = metrics.get("split", "test")
            sections.append(_section(f"confusion matrix ({split} split)", confusion_html(metrics), "confusion"))
        sections.append(_section("config.json", f'<details><summary>every setting of the run</summary><pre>'
                                 f'{esc(json.dumps(config, indent=2))}</pre></details>', "config"))
    else:
        raise CLIError(f"{run_dir}: holds neither config.json (scripts/train.py) nor parity.json (scripts/parity.py)")
    files = sorted(f for f in os.listdir(run_dir) if not f.endswith(".tmp"))
    sections.append(_section("files", " ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files), "files"))
    script, divs = components(figs) if figs else ("", {})
    body = "\n".join(sections)
    for key, div in divs.items():
        body = body.replace(f"%%{key}%%", div)
    series = {fig_name: [r.name for r in fig.renderers] for fig_name, fig in figs.items()}
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    return render("report.html", title, {"figures": series, "written": stamp},
                  bokeh=Resources(mode="inline", components=["bokeh"]).render_js(), body=body, bokeh_script=script)


def _diagnostics(history: dict | None, run: RunModel | None, prep: Prepared | None, config: dict) -> str:
    """The diagnostics table: the last recorded in history.json, else xpnet's for the final model."""
    pe = (history or {}).get("per_epoch", {})
    recorded = [(e, d) for e, d in zip(pe.get("epoch") or [], pe.get("diagnostics") or []) if d]
    if recorded:
        epoch, stats = recorded[-1]
        return diagnostics_html(stats, f"recorded during training, epoch {epoch}")
    if run is None or prep is None:
        return ""
    from xpnet.diagnostics import layer_stats

    s = config.get("settings", {})
    stats = layer_stats(run.model, prep.X["train"], prep.y["train"], loss=s.get("loss"), l2=float(s.get("l2") or 0.0))
    return diagnostics_html(stats, "the final model: one forward/backward on the training split (dropout on, L2 "
                                   "included), computed by xpnet.diagnostics when this report was written")


def write_report(run_dir: str, run: RunModel | None = None, prep: Prepared | None = None) -> str:
    """Write ``run_dir/report.html``; returns its path."""
    require_folder(run_dir, "report:")
    path = os.path.join(run_dir, "report.html")
    write_page(path, build_report(run_dir, run, prep))
    return path
