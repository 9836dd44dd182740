"""train.py's start-up: bundled datasets without importing scikit-learn, splits from xpnet's generator,
figures drawn in the background by default."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from _cli.bundled import load_bundled  # noqa: E402
from _cli.prepare import split  # noqa: E402


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_bundled_datasets_equal_scikit_learns(name):
    from sklearn import datasets

    X, y, names = load_bundled(name)
    ref = getattr(datasets, f"load_{name}")()
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)
    assert names == [str(f) for f in ref.feature_names]


def test_an_iris_run_imports_no_scikit_learn_scipy_matplotlib_or_bokeh(tmp_path):
    code = ("import sys, runpy; sys.argv = ['train.py', '--dataset', 'iris', '--epochs', '1', '--quiet', "
            f"'--figures', 'none', '--out', {str(tmp_path / 'run')!r}]\n"
            "try:\n    runpy.run_path('scripts/train.py', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "heavy = sorted(m for m in ('sklearn', 'scipy', 'matplotlib', 'bokeh') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


@pytest.mark.parametrize("n,frac", [(150, 0.2), (1000, 0.1), (7, 0.5), (33, 0.25)])
def test_split_sizes_strata_and_determinism(n, frac):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 3, size=n)
    labels[:6] = [0, 0, 1, 1, 2, 2]  # every class has two members
    ids = np.arange(n)
    kept, held = split(ids, frac, 5, 1, labels, "test")
    assert len(held) == int(np.ceil(frac * n)) and len(kept) + len(held) == n
    assert np.array_equal(np.sort(np.concatenate([kept, held])), ids)
    for c in range(3):  # each class gives its share, within one row
        assert abs(np.sum(labels[held] == c) - np.sum(labels == c) * len(held) / n) < 1.0 + 1e-9
    again = split(ids, frac, 5, 1, labels, "test")
    assert np.array_equal(again[1], held)  # the same key, the same split
    other = split(ids, frac, 6, 1, labels, "test")
    assert not np.array_equal(other[1], held) or n < 10
    plain_kept, plain_held = split(ids, frac, 5, 1, None, "test")
    assert len(plain_held) == len(held)


def test_a_singleton_class_falls_back_to_a_random_split():
    labels = np.array([0] * 9 + [1])
    kept, held = split(np.arange(10), 0.3, 0, 1, labels, "test")
    assert len(held) == 3 and len(kept) == 7


def test_figures_are_drawn_in_the_background_by_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XPNET_FIGURES"}
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "scripts/train.py", "--dataset", "iris", "--epochs", "2", "--quiet",
                          "--out", str(run)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    pid = int(re.search(r"drawn in the background by process (\d+)", out.stdout).group(1))
    for _ in range(600):  # the writer is detached: wait for it to finish (it removes figures.log on success)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
        if (run / "report.html").exists() and not (run / "figures.log").exists():
            break
    time.sleep(0.2)
    for name in ("loss.png", "accuracy.png", "grad_norms.png", "report.html"):
        assert (run / name).stat().st_size > 1000, name
    assert not (run / "figures.log").exists()  # nothing went wrong, so no log is left


def test_figures_none_and_report_py_figures_later(tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "scripts/train.py", "--dataset", "xor4", "--test-split", "0", "--val-split", "0",
            "--epochs", "3", "--quiet", "--out", str(run), "--figures", "none"]
    assert subprocess.run(base, cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    assert not (run / "loss.png").exists() and not (run / "report.html").exists()
    later = subprocess.run([sys.executable, "scripts/report.py", str(run), "--figures"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert later.returncode == 0, later.stderr
    assert "loss.png" in later.stdout and "decision_boundary.png" in later.stdout
    assert (run / "decision_boundary.png").exists() and (run / "report.html").exists()
