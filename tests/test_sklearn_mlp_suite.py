"""scikit-learn's own MLP tests, run against XPNetClassifier / XPNetRegressor on every backend.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is copied with one line
changed: the import of MLPClassifier and MLPRegressor, which then names XPNetClassifier and
XPNetRegressor (for a backend other than NumPy, the same classes with ``backend=`` bound by
``functools.partial``). The copies run in one subprocess, with the ``global_random_seed`` fixture
of scikit-learn's conftest (its default, 42) and one BLAS thread. Every test must pass except
``EXPECTED_FAILURES``, which call scikit-learn's private methods.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import all_backends

sklearn = pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor\n"
EXPECTED_FAILURES = {
    "test_gradient": "calls MLPClassifier._loss_grad_lbfgs, a private method of scikit-learn's implementation",
}
CONFTEST = """import pytest


@pytest.fixture
def global_random_seed():
    return 42
"""


def _import_line(spec: str) -> str:
    if spec == "numpy":
        return "from xpnet import XPNetClassifier as MLPClassifier, XPNetRegressor as MLPRegressor\n"
    return ("import functools\nfrom xpnet import XPNetClassifier, XPNetRegressor\n"
            f"MLPClassifier = functools.partial(XPNetClassifier, backend={spec!r})\n"
            f"MLPRegressor = functools.partial(XPNetRegressor, backend={spec!r})\n")


def _module(spec: str) -> str:
    return "test_mlp_" + re.sub(r"\W", "_", spec) + ".py"


@pytest.mark.skipif(not SOURCE.is_file(), reason="this scikit-learn ships without its tests")
def test_sklearns_mlp_tests_pass(tmp_path):
    source = SOURCE.read_text(encoding="utf-8")
    assert source.count(IMPORT) == 1, "scikit-learn's test file no longer imports the estimators in one line"
    specs = [b.spec for b in all_backends()]
    for spec in specs:
        (tmp_path / _module(spec)).write_text(source.replace(IMPORT, _import_line(spec)), encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    report = tmp_path / "report.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                          f"--junit-xml={report}", *[_module(s) for s in specs]],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert report.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    failed, passed = {}, {}
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "").split("[")[0]
        problems = case.findall("failure") + case.findall("error")
        target = failed if problems else passed
        target.setdefault(module, set()).add(name)
        assert not case.findall("skipped"), f"{module}::{case.get('name')} was skipped"
    for spec in specs:
        module = _module(spec)[:-3]
        assert failed.get(module, set()) == set(EXPECTED_FAILURES), (spec, run.stdout[-5000:])
        assert len(passed.get(module, ())) >= 40, spec  # the file really ran
