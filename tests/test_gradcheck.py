"""xpnet.gradcheck: passes on every built-in layer and network shape, fails loudly on wrong backwards."""
from __future__ import annotations

import numpy as np
import pytest

import xpnet
from tests.helpers import assert_equal, to_numpy
from xpnet import nn
from xpnet.gradcheck import FULL_CHECK_LIMIT, GradcheckReport, check_layer, gradcheck

RNG = np.random.default_rng(7)
X = RNG.normal(size=(8, 3))
Y_CLASS = np.array([0, 1, 2, 2, 1, 0, 2, 1])
Y_BIN = np.array([0, 1, 1, 0, 1, 0, 0, 1])
Y_REG = RNG.normal(size=(8, 2))

# (activation, output units, output, loss, dropout, l2): every activation, output and loss at least once
NETS = [
    ("relu", 3, "softmax", None, 0.0, 0.0),
    ("leaky_relu", 1, "sigmoid", None, 0.25, 0.01),
    ("sigmoid", 3, "softmax", "cross_entropy", 0.5, 0.0),
    ("tanh", 2, "identity", "mse", 0.0, 0.1),
    ("gelu", 3, "softmax", None, 0.2, 0.01),
    ("identity", 1, "sigmoid", "bce", 0.0, 0.0),
    ("tanh", 2, "softmax", "mse", 0.0, 0.0),  # softmax output + MSE: the unfused output backward
]


def _targets(units: int, output: str):
    return {"softmax": Y_CLASS if units == 3 else Y_BIN, "sigmoid": Y_BIN, "identity": Y_REG}[output]


@pytest.mark.parametrize("act,units,output,loss,dropout,l2", NETS)
def test_gradcheck_passes_on_networks(backend, act, units, output, loss, dropout, l2) -> None:
    model = xpnet.MLP([3, 4, 3, units], activation=act, output=output, dropout=dropout, seed=3, backend=backend)
    # non-zero biases: with zero biases a sample whose hidden ReLUs are all off sits exactly on a kink
    bias = np.random.default_rng(11).normal(size=model.n_params - model.n_weights) * 0.3
    model.params[model.n_weights:] = backend.asarray(bias, dtype="float32")
    before = to_numpy(model.params).copy()
    counters = [d.counter for d in model.dropout_layers]
    report = gradcheck(model, X, _targets(units, output), loss=loss, l2=l2)
    assert isinstance(report, GradcheckReport)
    assert report.passed, str(report)
    assert len(report.rows) == 2 * 3 + 1  # W, b per Dense + the directional derivative
    assert [r.name for r in report.rows[:-1]] == [e.name for e in model.layout.params]
    assert all(r.checked == r.total for r in report.rows[:-1])  # small network: every coordinate
    assert report.max_rel_err < 1e-6
    # the float32 model was checked through a float64 copy: itself untouched
    assert_equal(model.params, before, backend=backend)
    assert [d.counter for d in model.dropout_layers] == counters


def test_gradcheck_large_network_checks_a_subset(backend) -> None:
    model = xpnet.MLP([20, 64, 16, 3], activation="tanh", backend=backend, dtype="float64")
    assert model.n_params > FULL_CHECK_LIMIT
    X20 = np.random.default_rng(1).normal(size=(6, 20))
    report = gradcheck(model, X20, Y_CLASS[:6])
    assert report.passed, str(report)
    checked = {r.name: (r.checked, r.total) for r in report.rows}
    assert checked["0.W"] == (34, 20 * 64) and checked["2.b"] == (3, 3)  # 200 split over 6 arrays
    assert "random subset" in str(report)
    small = gradcheck(model, X20, Y_CLASS[:6], n_coords=12)
    assert small.passed and small["1.W"].checked == 2


def test_report_is_a_readable_table(backend) -> None:
    model = xpnet.MLP([3, 4, 3], backend=backend)
    text = str(gradcheck(model, X, Y_CLASS))
    lines = text.splitlines()
    assert lines[0].startswith("gradcheck MLP[3, 4, 3]") and "PASSED" in lines[0]
    assert lines[1].split()[:3] == ["array", "shape", "checked"]
    assert lines[2].split()[:3] == ["0.W", "3x4", "12/12"]
    assert lines[-1].lstrip().startswith("directional derivative")


# ---------------------------------------------------------------- single layers
def _x(backend, shape=(5, 4), seed=0):
    return backend.asarray(np.random.default_rng(seed).normal(size=shape))


def _builtin_layers():
    return [nn.Dense(4, 6, "tanh"), nn.ReLU(), nn.LeakyReLU(0.1), nn.Sigmoid(), nn.Tanh(), nn.GELU(), nn.Identity(),
            nn.Softmax(), nn.Dropout(0.3), nn.BatchNorm1d(4), nn.Sequential([nn.Dense(4, 3), nn.Tanh()]),
            nn.Residual([nn.Dense(4, 4, "sigmoid")]), nn.Residual(nn.Dense(4, 2))]


def test_check_layer_passes_on_every_builtin_layer(backend) -> None:
    layers = _builtin_layers()
    builtin = {getattr(nn, n) for n in nn.__all__ if isinstance(getattr(nn, n), type)
               and issubclass(getattr(nn, n), nn.Layer) and getattr(nn, n) not in (nn.Layer, nn.Activation)}
    assert {type(la) for la in layers} >= builtin - {nn.Network, nn.MLP}
    for layer in layers:
        report = check_layer(layer, _x(backend))
        assert report.passed, str(report)
        names = [r.name for r in report.rows]
        assert names[0] == "dx" and names[-1] == "directional derivative"
        expected = nn.standalone(nn.layer_from_config(layer.config()), 4).layout.params
        assert names[1:-1] == [e.name for e in expected], names
        assert layer.ctx is None  # checked on a copy: the layer itself stays unbound


def test_check_layer_of_a_bound_layer_uses_its_values(backend) -> None:
    model = xpnet.MLP([4, 6, 2], backend=backend)  # float32: checked through a float64 copy
    dense = model.layers[0]
    W_before = to_numpy(dense.W).copy()
    report = check_layer(dense, _x(backend))
    assert report.passed, str(report)
    assert [r.name for r in report.rows] == ["dx", "W", "b", "directional derivative"]  # dx too, on the copy
    assert_equal(dense.W, W_before, backend=backend)
    assert check_layer(model.root, _x(backend)).passed
    bn = xpnet.Network([nn.BatchNorm1d(4), nn.Dense(4, 1)], backend=backend)
    bn.params[bn.layout["0.gamma"].offset] = 3.0
    eval_report = check_layer(bn.layers[0], _x(backend), training=False)
    assert eval_report.passed and "(eval)" in eval_report.subject


class BadSigmoid(nn.Sigmoid):
    """Forgets the (1 - y) factor: dx = dy · y."""

    def backward(self, dy, y):
        return dy * y


class Scale(nn.Layer):
    """y = x ⊙ s with a parameter s (width,); ``bug`` breaks ds."""

    def __init__(self, bug=False):
        super().__init__()
        self.bug, self.n = bug, None

    def build(self, n_in):
        self.n = n_in
        return n_in

    def params(self):
        return [nn.Param("s", (self.n,), "ones", decay=False)]

    def forward(self, x, training=False):
        return x * self.s, x

    def backward(self, dy, x):
        self.grad_s[...] = self.xp.sum(dy * x, axis=0) * (2.0 if self.bug else 1.0)
        return dy * self.s


class OneWrongEntry(nn.Tanh):
    """Correct except for one entry of dx: only the directional derivative sees it in a 1-coordinate check."""

    def backward(self, dy, y):
        dx = dy * (1.0 - y * y)
        dx[3, 2] = dx[3, 2] + 0.5
        return dx


def test_wrong_backward_fails_with_a_clear_report(backend) -> None:
    report = check_layer(BadSigmoid(), _x(backend))
    assert not report.passed and not bool(report)
    text = str(report)
    assert "gradcheck BadSigmoid" in text and "FAILED" in text
    assert "dx" in text and "FAIL" in report.__str__().splitlines()[2]
    assert "BadSigmoid.backward disagrees with finite differences for dx" in text
    assert report["dx"].rel_err > 0.1

    good = check_layer(Scale(), _x(backend))
    assert good.passed and [r.name for r in good.rows] == ["dx", "s", "directional derivative"]
    bad = check_layer(Scale(bug=True), _x(backend))
    assert [r.name for r in bad.failures] == ["s", "directional derivative"], str(bad)
    assert "Scale.backward disagrees with finite differences for s" in str(bad)


def test_directional_derivative_catches_what_a_subset_misses(backend) -> None:
    full = check_layer(OneWrongEntry(), _x(backend))
    assert not full.passed and full["dx"].max_abs_err > 0.4
    one = check_layer(OneWrongEntry(), _x(backend), n_coords=1)
    assert one["dx"].checked == 1 and one["dx"].passed  # the random coordinate misses entry (3, 2)
    assert [r.name for r in one.failures] == ["directional derivative"]


def test_gradcheck_locates_a_wrong_custom_layer_in_a_network(backend) -> None:
    layers = [nn.Dense(3, 4, "sigmoid"), nn.Dense(4, 4), BadSigmoid(), nn.Dense(4, 3)]
    model = xpnet.Network(layers, seed=1, backend=backend, dtype="float64")
    report = gradcheck(model, X, Y_CLASS)
    assert not report.passed
    failed = {r.name.split(" ")[0] for r in report.failures}
    assert failed == {"0.W", "0.b", "1.W", "1.b", "directional"}, str(report)  # below the bug only
    text = str(report)
    assert "suspect layer 1 (Dense(4, 4))" in text and "the layers after it" in text
    with pytest.raises(ValueError, match="register custom layers"):
        gradcheck(xpnet.Network([nn.Dense(3, 4), Scale(), nn.Dense(4, 3)], backend=backend), X, Y_CLASS)
