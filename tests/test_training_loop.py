"""The one training loop's own behaviour: early stopping with buffers, the per-step hook, lr_find."""
from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from tests.helpers import assert_equal, to_numpy
from xpnet import nn

RNG = np.random.default_rng(8)
X = RNG.normal(size=(120, 3))
Y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def _bn_net(backend, seed=0):
    return xpnet.Network([nn.Dense(3, 8, "relu"), nn.BatchNorm1d(8), nn.Dropout(0.2), nn.Dense(8, 1)],
                         seed=seed, backend=backend)


def test_early_stopping_restores_parameters_and_batchnorm_statistics(backend) -> None:
    seen = {}

    def remember(epoch, logs):  # the state at the end of each epoch
        seen[epoch] = (to_numpy(model.params).copy(), to_numpy(model.buffers).copy())

    model = _bn_net(backend)
    hist = xpnet.fit(model, X, Y, optimizer=xpnet.Adam(lr=0.05), epochs=40, batch_size=16, validation_split=0.25,
                     early_stopping=True, patience=3, callbacks=[remember])
    best = hist["best_epoch"]
    assert hist["stopped_early"] and best < hist["epoch"][-1]
    assert not np.array_equal(seen[best][1], seen[hist["epoch"][-1]][1])  # the statistics moved on after it
    assert_equal(model.params, seen[best][0], backend=backend)
    assert_equal(model.buffers, seen[best][1], backend=backend)


def test_on_step_ends_the_run(backend) -> None:
    model = xpnet.MLP([3, 4, 1], backend=backend)
    objective = nn.Objective(model)
    seen = []
    trainer = xpnet.Trainer(model, xpnet.SGD(lr=0.1), objective, batch_size=10, seed=0,
                            on_step=lambda v: seen.append(float(to_numpy(v))) or len(seen) == 5)
    hist = trainer.run(model.as_input(X), model.targets(Y), epochs=3)
    assert len(seen) == 5 and hist["epoch"] == []  # ended mid-epoch: no epoch recorded


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_lr_find_leaves_everything_as_it_was(backend, name) -> None:
    model = xpnet.MLP([3, 16, 1], dropout=0.2, seed=2, backend=backend)
    opt = xpnet.make_optimizer(name, lr=1e-3)
    xpnet.fit(model, X, Y, optimizer=opt, epochs=2, batch_size=16)  # optimizer with state and a step count
    before = (to_numpy(model.params).copy(), model.counters, opt.t, opt.lr,
              {k: to_numpy(v).copy() for k, v in opt.state.items()})
    result = xpnet.lr_find(model, X, Y, optimizer=opt, steps=30, batch_size=16)
    assert_equal(model.params, before[0], backend=backend)
    assert (model.counters, opt.t, opt.lr) == before[1:4]
    assert sorted(opt.state) == sorted(before[4])
    for k, v in before[4].items():
        assert_equal(opt.state[k], v, backend=backend)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 30
    assert result.lrs[0] == pytest.approx(1e-7) and all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    # training after lr_find equals training without it
    twin = xpnet.MLP([3, 16, 1], dropout=0.2, seed=2, backend=backend)
    opt2 = xpnet.make_optimizer(name, lr=1e-3)
    xpnet.fit(twin, X, Y, optimizer=opt2, epochs=2, batch_size=16)
    xpnet.fit(model, X, Y, optimizer=opt, epochs=1, batch_size=16)
    xpnet.fit(twin, X, Y, optimizer=opt2, epochs=1, batch_size=16)
    assert_equal(model.params, to_numpy(twin.params), backend=backend)


def test_lr_find_on_moons_suggests_a_usable_rate() -> None:
    """The documented range on make_moons: Adam's suggestion lies in [1e-3, 5e-2] (seeds 0-3 give 5e-3 to 2e-2),
    the sweep stops early when the loss explodes (to 100), and the suggestion trains well."""
    from sklearn.datasets import make_moons

    Xm, ym = make_moons(1000, noise=0.2, random_state=0)
    for seed in range(2):
        model = xpnet.MLP([2, 64, 32, 1], dropout=0.1, seed=seed)
        result = xpnet.lr_find(model, Xm, ym)
        assert 1e-3 <= result.suggestion <= 5e-2, result
        assert not result.stopped_early and "suggested learning rate" in str(result)
    exploded = xpnet.lr_find(xpnet.MLP([2, 64, 32, 1], seed=0), Xm, ym, end=100.0, optimizer=xpnet.SGD(lr=1.0))
    assert exploded.stopped_early and exploded.lrs[-1] < 100.0
    assert not math.isfinite(exploded.smoothed[-1]) or exploded.smoothed[-1] > 4 * min(exploded.smoothed)
    model = xpnet.MLP([2, 64, 32, 1], dropout=0.1, seed=0)
    hist = xpnet.fit(model, Xm, ym, optimizer=xpnet.Adam(lr=result.suggestion), epochs=20, validation_split=0.2)
    assert hist["val_accuracy"][-1] >= 0.95


def test_lr_find_bad_arguments() -> None:
    model = xpnet.MLP([3, 4, 1])
    with pytest.raises(ValueError, match="lr_find needs end > start"):
        xpnet.lr_find(model, X, Y, start=1.0, end=0.1)
    with pytest.raises(ValueError, match="steps must be an integer >= 3"):
        xpnet.lr_find(model, X, Y, steps=2)
