"""The tutorials' story as a learning test: depth without help does not train; BatchNorm and
residual blocks make the same depth train.

Digits (8x8 images, 10 classes), standardized with the training split's statistics, 25% held out.
A plain stack of 20 sigmoid layers of width 64 stays at chance in a fixed budget (20 epochs of Adam,
lr 3e-3, batch 64) and ``xpnet.diagnostics`` flags its vanishing gradients; the same depth with
residual blocks (``MLP(..., residual=True)``) reaches >= 0.95 test accuracy, and with BatchNorm
(``batchnorm=True``) it learns far above chance, with gradients that do not vanish.

NumPy only: learning is not what differs between backends (test_parity and
test_composable_parity show every backend follows NumPy's training curve), and the three runs
take a few seconds on NumPy but several times that on the simulated or torch backends, which
the 2-core CI cannot spare.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import xpnet
from xpnet.diagnostics import TrainingWarning

SIZES = [64] + [64] * 20 + [10]  # 20 hidden layers
BUDGET = dict(epochs=20, batch_size=64)
LR = 3e-3


@functools.cache
def digits():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


@functools.cache
def trained(kind: str):
    """(model, history, warnings raised by fit's diagnostics, test accuracy, stats before training)."""
    X_tr, X_te, y_tr, y_te = digits()
    model = xpnet.MLP(SIZES, activation="sigmoid", seed=0, backend="numpy",
                      batchnorm=kind == "batchnorm", residual=kind == "residual")
    before = xpnet.diagnostics.layer_stats(model, X_tr[:256], y_tr[:256])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = xpnet.fit(model, X_tr, y_tr, optimizer=xpnet.Adam(lr=LR), diagnostics_every=10, **BUDGET)
    accuracy = float(np.mean(np.asarray(model.predict(X_te)) == y_te))
    messages = [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]
    return model, history, messages, accuracy, before


def test_deep_plain_network_barely_learns_and_is_diagnosed() -> None:
    model, history, messages, accuracy, before = trained("plain")
    assert len(model.weights) == 21
    assert accuracy < 0.3, f"the plain 20-layer sigmoid stack learned ({accuracy:.3f}): the story is gone"
    assert history["loss"][-1] > 0.8 * np.log(10)  # still about chance level
    # the gradients of the first layers vanish, the last layer's do not
    grads = [s["grad_mean_abs"] for s in before]
    assert grads[0] < xpnet.diagnostics.VANISHING and grads[-1] > 1e-4
    assert grads[0] < 1e-6 * grads[-1]
    with pytest.warns(TrainingWarning, match="vanishing"):
        warned = xpnet.diagnostics.check(before)
    assert any("layer 0 " in m and "vanishing" in m for m in warned)
    assert any("vanishing" in m for m in messages)  # fit(diagnostics=...) warns as well
    assert history["diagnostics"][9] is not None and history["diagnostics"][0] is None


@pytest.mark.parametrize("kind, floor", [("residual", 0.95), ("batchnorm", 0.70)])
def test_same_depth_with_residual_or_batchnorm_learns(kind: str, floor: float) -> None:
    model, history, messages, accuracy, before = trained(kind)
    plain_accuracy = trained("plain")[3]
    assert len(model.weights) == 21  # residual blocks keep the widths: no projection shortcuts
    assert accuracy >= floor, f"{kind}: test accuracy {accuracy:.3f} < {floor}"
    assert accuracy > plain_accuracy + 0.5
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert before[0]["grad_mean_abs"] > 1e-4  # the first layer gets a usable gradient
    assert not any("vanishing" in m for m in messages), messages
    if kind == "batchnorm":
        assert len(model.layout.buffers) == 2 * 20  # running mean and variance of each hidden layer
    else:
        assert sum(isinstance(layer, xpnet.nn.Residual) for layer in model.layers) == 20  # every 64 -> 64 layer
