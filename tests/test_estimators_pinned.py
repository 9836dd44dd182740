"""The estimators' numbers on NumPy are pinned: parameters (SHA-256 of coefs_ / intercepts_) and loss
curves (float.hex) must stay bit-identical to tests/data/estimators_pinned.json, recorded from the
estimators before they moved onto xpnet's one training loop."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from threadpoolctl import threadpool_limits

from xpnet import XPNetClassifier, XPNetRegressor

PINNED = json.loads((Path(__file__).parent / "data" / "estimators_pinned.json").read_text())

CASES = {  # name: (estimator, data)
    "clf_adam": (lambda: XPNetClassifier(hidden_layer_sizes=(10, 6), max_iter=20, random_state=3, batch_size=32),
                 "iris"),
    "clf_sgd_es": (lambda: XPNetClassifier(hidden_layer_sizes=(7,), activation="logistic", solver="sgd", max_iter=15,
                                           random_state=1, early_stopping=True, alpha=1e-3), "iris"),
    "reg_adam": (lambda: XPNetRegressor(hidden_layer_sizes=(9,), max_iter=10, random_state=2, alpha=0.01),
                 "regression"),
}


def _data(name):
    if name == "iris":
        return load_iris(return_X_y=True)
    X, y = make_regression(150, 4, noise=0.1, random_state=0)
    return X, y / 100


def _sha256(arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_numbers_are_pinned(name):
    assert set(CASES) == set(PINNED)
    make, data = CASES[name]
    with threadpool_limits(limits=1):
        est = make().fit(*_data(data))
    assert est.model_.backend.spec == "numpy"
    expected = PINNED[name]
    assert [float.hex(v) for v in est.loss_curve_] == expected["loss_curve"]
    assert _sha256(est.coefs_) == expected["coefs"]
    assert _sha256(est.intercepts_) == expected["intercepts"]
