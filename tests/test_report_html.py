# ruff: noqa: F811
"""report.html (train.py and parity.py run folders, scripts/report.py) in a real browser.

Uses the Chromium fixtures of tests/test_visualizer.py (skipped outside CI without a browser,
failing in CI). XPNET_UPDATE_DOCS=1 also writes docs/report.png for the README.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np

# browser and page: the shared Chromium fixtures (imported, so the tests below take them as parameters)
from tests.test_visualizer import ROOT, browser, load_script, page, save_screenshot  # noqa: F401

EPOCHS, SAMPLES = 20, 200  # moons: train 144 rows -> 5 steps of 32 per epoch; test 40 rows


def _ready(page, path) -> dict:
    page.goto(path.as_uri())
    page.wait_for_function("window.xpnetReport && window.xpnetReport.ready()", timeout=15000)
    return page.evaluate("window.xpnetReport.series()")


def test_train_run_report_in_the_browser(page, tmp_path, capsys, tmp_path_factory):
    out = tmp_path / "run"
    assert load_script("train").main(["--epochs", str(EPOCHS), "--samples", str(SAMPLES), "--hidden", "16,8",
                                      "--quiet", "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out  # listed with the run's outputs
    html = (out / "report.html").read_text(encoding="utf-8")
    # Bokeh inlined: no external script or stylesheet (and the page fixture blocks and records any request)
    assert not re.search(r"<script[^>]*\bsrc=", html) and not re.search(r"<link[^>]*\bhref=", html)
    series = _ready(page, out / "report.html")
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    steps = history["steps_per_epoch"] * EPOCHS
    assert series["loss"] == {"step_loss": steps, "train_loss": EPOCHS, "val_loss": EPOCHS}
    assert series["accuracy"] == {"train_accuracy": EPOCHS, "val_accuracy": EPOCHS}
    assert series["grad_norms"] == {f"grad_norm_{i}": EPOCHS for i in range(3)}
    assert series["decision_boundary"] == {"boundary_image": 1, "test_points": metrics["n"]}
    for fig in ("loss", "accuracy", "grad_norms"):  # hover for values, click the legend to hide a series
        assert "HoverTool" in page.evaluate(f"window.xpnetReport.tools('{fig}')")
        assert page.evaluate(f"window.xpnetReport.legendPolicy('{fig}')") == "hide"
    assert page.evaluate("window.xpnetReport.visible('val_loss')") is True
    assert page.locator("canvas").count() >= 4  # Bokeh drew the charts
    # the confusion matrix is metrics.json's; the diagnostics have one row per Dense layer
    cells = page.locator("[data-testid=confusion-matrix] td").all_text_contents()
    assert [int(c) for c in cells] == list(np.ravel(metrics["confusion_matrix"]))
    assert page.locator("[data-testid=diagnostics] tr").count() == 1 + 3
    summary = page.locator("[data-testid=summary]").text_content()
    assert f"accuracy {metrics['accuracy']:.4f}" in summary and "adam lr 0.001" in summary
    save_screenshot(page, "report.png", tmp_path_factory)
    assert page.problems == []


def test_report_py_rewrites_an_older_run(page, tmp_path, capsys):
    out = tmp_path / "run"
    assert load_script("train").main(["--epochs", "2", "--dataset", "iris", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "report.html").unlink()  # as a run folder of before the report
    assert load_script("report").main([str(out)]) == 0
    assert "report.html" in capsys.readouterr().out
    series = _ready(page, out / "report.html")
    assert series["loss"]["train_loss"] == 2 and "decision_boundary" not in series  # 4 features: no boundary
    assert page.locator("[data-testid=confusion-matrix] tr").count() == 1 + 3  # three classes
    assert page.problems == []


def test_parity_run_report_shows_the_parity_table(page, tmp_path, capsys):
    out = tmp_path / "parity"
    assert load_script("parity").main(["--backends", "numpy,strict", "--epochs", "2", "--samples", str(SAMPLES),
                                       "--hidden", "8", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    report = json.loads((out / "parity.json").read_text())
    series = _ready(page, out / "report.html")
    assert series["parity"] == {"parity_0": report["backends"][1]["steps"], "tolerance": 2}
    rows = page.locator("[data-testid=parity-table] tr")
    assert rows.count() == 3 and "numpy (ref)" in rows.nth(1).text_content()
    assert "identical" in rows.nth(2).text_content() and rows.nth(2).text_content().endswith("ok")
    assert page.problems == []


def test_report_bad_input_is_one_line_exit_2(tmp_path, capsys):
    report = load_script("report")
    for argv, words in (([str(tmp_path / "missing")], "no such run folder"), ([str(tmp_path)], "not a run folder")):
        assert report.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err


def test_a_failing_report_does_not_lose_the_run(tmp_path, capsys, monkeypatch):
    from _cli import html_report

    def boom(*args, **kwargs):
        raise RuntimeError("no\nbokeh today")

    monkeypatch.setattr(html_report, "write_report", boom)
    out = tmp_path / "run"
    assert load_script("train").main(["--epochs", "1", "--samples", "120", "--quiet", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    notes = [ln for ln in captured.err.splitlines() if "report.html" in ln]
    assert notes == [f"note: not written: report.html (RuntimeError: no bokeh today); the run is saved; draw the "
                     f"figures later with: python scripts/report.py {out} --figures"]
    assert (out / "metrics.json").is_file() and (out / "model.npz").is_file() and not (out / "report.html").exists()
    assert (out / "loss.png").is_file()  # the other figures are drawn all the same
    assert "report.html" not in captured.out


def test_train_startup_does_not_import_bokeh():
    code = ("import sys; sys.path[:0] = ['scripts', '.']; import train; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bokeh', 'playwright')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
