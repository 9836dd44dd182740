"""xpnet.diagnostics: layer statistics, training warnings, fit(diagnostics=...) and the non-finite guard."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import xpnet
from tests.helpers import assert_equal, to_numpy
from xpnet import diagnostics as D
from xpnet.train.guard import nonfinite_report

RNG = np.random.default_rng(4)
X = RNG.normal(size=(64, 4))
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
Y_REG = X @ np.array([1.0, 2.0, -1.0, 0.5])


def test_layer_stats_values(backend) -> None:
    model = xpnet.MLP([4, 16, 8, 1], dropout=0.2, seed=2, backend=backend)
    model.biases[0][:8] = -100.0  # units 0..7 of layer 0 never fire: 50% dead
    grads_before, counters = to_numpy(model.grads).copy(), [d.counter for d in model.dropout_layers]
    stats = D.layer_stats(model, X, Y_BIN, l2=0.01)
    # side-effect free: gradients and dropout counters as before
    assert_equal(model.grads, grads_before, backend=backend)
    assert [d.counter for d in model.dropout_layers] == counters
    assert [s["name"] for s in stats] == ["Dense 4->16", "Dense 16->8", "Dense 8->1"]
    assert [s["activation"] for s in stats] == ["relu", "relu", "sigmoid"]
    assert stats[0]["dead_fraction"] == 0.5 and stats[2]["dead_fraction"] is None
    assert 0.0 <= stats[1]["dead_fraction"] < 0.5
    # gradients: the same forward/backward as loss_and_grads (same dropout masks)
    _, wg, bg = model.loss_and_grads(X, Y_BIN, l2=0.01)
    for s, g, b, W in zip(stats, wg, bg, model.weights):
        g, b, W = to_numpy(g).astype(np.float64), to_numpy(b).astype(np.float64), to_numpy(W).astype(np.float64)
        expected = [np.abs(g).mean(), g.std(), np.abs(g).max(), np.abs(b).mean(), np.abs(W).mean()]
        got = [s[k] for k in ("grad_mean_abs", "grad_std", "grad_max_abs", "bias_grad_mean_abs", "weight_mean_abs")]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        assert all(type(v) is float for v in got)
    proba = to_numpy(model.forward(X)).astype(np.float64)  # no dropout here, so only loosely comparable
    assert 0.0 < stats[2]["act_mean"] < 1.0 and abs(stats[2]["act_mean"] - proba.mean()) < 0.2


def test_deep_sigmoid_network_warns_vanishing_gradients(backend) -> None:
    model = xpnet.MLP([4] + [16] * 12 + [1], activation="sigmoid", seed=0, backend=backend)
    stats = D.layer_stats(model, X, Y_BIN)
    assert stats[0]["grad_mean_abs"] < 1e-7 < stats[-1]["grad_mean_abs"]
    pattern = (r"^epoch 1: layer 0 \(Dense 4->16, sigmoid\): mean \|grad\| \d\.?\d*e-\d+ < 1e-07 \(vanishing "
               r"gradients\): add batch normalization \(MLP\(\.\.\., batchnorm=True\), --batchnorm\)$")
    with pytest.warns(D.TrainingWarning) as rec:
        history = xpnet.fit(model, X, Y_BIN, epochs=3, batch_size=32, diagnostics=True)
    messages = [str(w.message) for w in rec if issubclass(w.category, D.TrainingWarning)]
    assert any(re.match(pattern, m) for m in messages), messages
    assert not any("layer 12 " in m for m in messages)  # the output layer's gradient is fine
    assert sum("layer 0 " in m for m in messages) == 1  # once per layer and kind, not every epoch
    assert len(history["diagnostics"]) == 3 and all(len(d) == 13 for d in history["diagnostics"])


def test_exploding_gradients_and_dead_units_warn(backend) -> None:
    model = xpnet.MLP([4, 16, 16, 1], output="identity", seed=0, backend=backend)
    model.params[...] = model.params * 8.0
    with pytest.warns(D.TrainingWarning) as rec:
        D.check(D.layer_stats(model, X, Y_REG * 100.0))
    pattern = (r"layer 2 \(Dense 16->1, identity\): mean \|grad\| \d.*e\+\d+ > 100 \(exploding gradients\): "
               r"clip gradients \(fit\(\.\.\., clip_norm=1\.0\), --clip-norm 1\)$")
    assert any(re.match(pattern, str(w.message)) for w in rec), [str(w.message) for w in rec]
    relu = xpnet.MLP([4, 16, 1], seed=0, backend=backend)
    relu.biases[0][:12] = -100.0
    with pytest.warns(D.TrainingWarning, match=r"layer 0 \(Dense 4->16, relu\): 75% of units are dead .* "
                                               r"> 10% \(dying ReLUs\): use activation='leaky_relu'$"):
        messages = D.check(D.layer_stats(relu, X, Y_BIN))
    assert len(messages) == 1
    healthy = xpnet.MLP([4, 16, 1], seed=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error", D.TrainingWarning)
        assert D.check(D.layer_stats(healthy, X, Y_BIN)) == []


def test_diagnostics_do_not_change_training(backend) -> None:
    def run(**kw):
        model = xpnet.MLP([4, 8, 1], dropout=0.25, seed=5, backend=backend)
        return model, xpnet.fit(model, X, Y_BIN, epochs=4, batch_size=16, **kw)

    m0, h0 = run()
    m1, h1 = run(diagnostics_every=2)
    assert h0["diagnostics"] == [] and h1["step_loss"] == h0["step_loss"]
    assert_equal(m1.params, m0.params, backend=backend)
    assert [d is None for d in h1["diagnostics"]] == [True, False, True, False]
    assert h1["diagnostics"][1][0]["name"] == "Dense 4->8"
    with pytest.raises(ValueError, match="diagnostics_every must be a positive integer"):
        run(diagnostics_every=-1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy reports the overflow too
def test_too_high_learning_rate_stops_with_the_step_epoch_and_layer(backend) -> None:
    def model():
        return xpnet.MLP([4, 16, 16, 1], activation="identity", output="identity", seed=0, backend=backend)

    m = model()
    with pytest.raises(xpnet.TrainingStopped) as info:
        xpnet.fit(m, X, Y_REG, optimizer=xpnet.SGD(lr=0.3), epochs=50, batch_size=16)
    text, history = str(info.value), info.value.history
    assert re.match(r"the training loss became (nan|inf) at step (\d) of epoch 2 \(global step (\d+)\); "
                    r"non-finite values in layer 0 \(Dense\(4, 16\)\): W, b, dW, db; layer 1", text), text
    step, global_step = map(int, re.match(r".* at step (\d) .*global step (\d+)", text).groups())
    assert global_step == 4 + step  # 4 steps per epoch; epochs and steps are numbered from 1
    assert "The parameters were restored to their values at the start of epoch 2 (the last finite ones" in text
    assert "Lower the learning rate" in text
    assert history["epoch"] == [1, 2] and math.isfinite(history["loss"][0]) and len(history["step_loss"]) == 8
    assert not math.isfinite(history["step_loss"][4 + step - 1])
    # restored: exactly the parameters after the one finite epoch
    ref = model()
    xpnet.fit(ref, X, Y_REG, optimizer=xpnet.SGD(lr=0.3), epochs=1, batch_size=16)
    assert_equal(m.params, to_numpy(ref.params), backend=backend)


def test_nonfinite_parameters_with_finite_losses_are_caught(backend) -> None:
    model = xpnet.MLP([4, 6, 3, 1], seed=0, backend=backend)
    snapshot, opt = model.copy_params(), xpnet.Adam()
    assert nonfinite_report(model, opt, [0.5, 0.4, 0.3], 2, snapshot) is None
    model.weights[1][0, 0] = float("inf")
    text = nonfinite_report(model, opt, [0.5, 0.4, 0.3], 2, snapshot)
    assert text.startswith("the parameters, gradients or optimizer state became non-finite in the update of step 3 "
                           "of epoch 2 (global step 6); non-finite values in layer 1 (Dense(6, 3, 'relu')): W. "
                           "The parameters were restored"), text
    assert_equal(model.params, to_numpy(snapshot), backend=backend)


def test_optimizer_state_overflow_stops_training(backend) -> None:
    """Huge unstandardized inputs: Adam's g² overflows to inf in float32, which would freeze the
    parameters (m / (√v + ε) = 0) with finite losses; the guard names the optimizer state."""
    model = xpnet.MLP([4, 3, 1], activation="identity", seed=0, backend=backend)
    with pytest.raises(xpnet.TrainingStopped) as info:
        xpnet.fit(model, X * 1e20, Y_BIN, optimizer=xpnet.Adam(lr=1e-3), epochs=3, batch_size=64)
    text = str(info.value)
    assert text.startswith("the parameters, gradients or optimizer state became non-finite in the update of "
                           "step 1 of epoch 1 (global step 1)"), text
    assert "non-finite values in layer 0 (Dense(4, 3)): v[W]" in text, text


def test_one_problem_and_one_fix_per_layer() -> None:
    """Dead units, vanishing and exploding gradients in one layer: only the first applies (no advice that
    contradicts another), and each message has one fix."""
    base = {"layer": 0, "name": "Dense 4->16", "activation": "relu", "grad_mean_abs": 1e-9, "dead_fraction": 1.0}
    assert D.diagnose(base)[0] == "dead"
    assert D.diagnose(dict(base, dead_fraction=0.0))[0] == "vanishing"
    assert D.diagnose(dict(base, dead_fraction=None, grad_mean_abs=float("nan")))[0] == "exploding"
    assert D.diagnose(dict(base, dead_fraction=0.05, grad_mean_abs=1e-3)) is None
    with pytest.warns(D.TrainingWarning) as rec:
        messages = D.check([base, dict(base, layer=1, dead_fraction=0.0), dict(base, layer=2, grad_mean_abs=1e3,
                                                                                dead_fraction=None)])
    kinds = ["(dying ReLUs)", "(vanishing gradients)", "(exploding gradients)"]
    assert [[k in m for k in kinds] for m in messages] == [[True, False, False], [False, True, False],
                                                            [False, False, True]]
    assert len(rec) == 3 and all(m.count("): ") == 2 for m in messages)  # "layer (…): problem (kind): one fix"
