"""Inputs that used to be silently wrong or end in a library traceback (docs/bad_inputs.md, issue 12): each
gets one ValueError line (or the documented behaviour), before anything is changed, on every backend."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import xpnet
from tests.helpers import all_backends, assert_equal, to_numpy

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

try:
    import pandas as pd
except ImportError:  # pragma: no cover - pandas is a test extra
    pd = None

SPECS = [b.spec for b in all_backends()]
RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 3))
Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)  # labels 0..2


def clf(backend="numpy", **kw):
    return xpnet.MLP([3, 4, 3], backend=backend, **kw)


def one_line(call, fragment, exc=ValueError):
    """``call()`` raises ``exc`` with one line holding ``fragment`` and no chained traceback."""
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg and len(msg) < 500, msg
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return msg


def unchanged(model):
    """A check that ``model``'s parameters and counters are what they are now."""
    params, counters = to_numpy(model.params).copy(), model.counters

    def check():
        assert_equal(to_numpy(model.params), params)
        assert model.counters == counters
    return check


class Hooked:
    on_epoch_end = 5  # a hook that cannot be called


class Nothing:
    pass


X_NAN_VAL = X.copy()
X_NAN_VAL[3, 1] = math.nan
X_INF_VAL = X.copy()
X_INF_VAL[0, 0] = math.inf

# (id, call(backend, model), fragment): refused with one line, the model untouched.
FIT_REJECTED = [
    ("nan-in-X-validation", lambda m: xpnet.fit(m, X, Y, validation_data=(X_NAN_VAL, Y)),
     "X_val contains NaN or infinity"),
    ("inf-in-X-validation", lambda m: xpnet.fit(m, X, Y, validation_data=(X_INF_VAL, Y)),
     "X_val contains NaN or infinity"),
    ("validation-split-and-data", lambda m: xpnet.fit(m, X, Y, validation_split=0.2, validation_data=(X, Y)),
     "validation_split and validation_data cannot both apply"),
    ("validation-data-not-a-pair", lambda m: xpnet.fit(m, X, Y, validation_data=X), "validation_data must be a pair"),
    ("schedule-negative-lr", lambda m: xpnet.fit(m, X, Y, epochs=2, schedule=lambda t: -0.1),
     "the learning-rate schedule"),
    ("schedule-nan-lr", lambda m: xpnet.fit(m, X, Y, epochs=2, schedule=lambda t: math.nan), "gave nan at step 0"),
    ("schedule-not-a-number", lambda m: xpnet.fit(m, X, Y, schedule=lambda t: "fast"), "gave 'fast' at step 0"),
    ("callback-class", lambda m: xpnet.fit(m, X, Y, callbacks=[xpnet.Callback]),
     "callback Callback is a class: pass an instance"),
    ("callback-object", lambda m: xpnet.fit(m, X, Y, callbacks=[Nothing()]), "is neither callable nor has any"),
    ("callback-hook-not-callable", lambda m: xpnet.fit(m, X, Y, callbacks=[Hooked()]),
     "has on_epoch_end that cannot be called"),
    ("callbacks-not-a-list", lambda m: xpnet.fit(m, X, Y, callbacks=xpnet.Callback()),
     "callbacks must be a list of callbacks"),
]


@pytest.mark.parametrize("call,fragment", [pytest.param(c, f, id=i) for i, c, f in FIT_REJECTED])
def test_fit_refuses_before_changing_anything(backend, call, fragment):
    model = clf(backend)
    untouched = unchanged(model)
    one_line(lambda: call(model), fragment)
    untouched()


def test_a_bad_rate_later_in_the_run_names_the_step():
    model = clf()
    h = []
    msg = one_line(lambda: xpnet.fit(model, X, Y, epochs=5, batch_size=10, callbacks=[lambda e, logs: h.append(e)],
                                     schedule=lambda t: 0.01 if t < 4 else math.inf), "gave inf at step 4")
    assert "<lambda>" in msg and h == [1, 2]  # epochs 1 and 2 (two steps each) ran; the update of step 4 never did


def test_a_schedule_may_end_at_zero():
    h = xpnet.fit(clf(), X, Y, epochs=3, batch_size=10, schedule=xpnet.Cosine(0.1, total=4))
    assert h["lr"][-1] == 0.0


@pytest.mark.parametrize("where", ["empty-folder", "under-a-file", "a-directory"])
def test_checkpoint_path_is_tried_before_training(tmp_path, where):
    (tmp_path / "file").write_text("x")
    path = {"under-a-file": tmp_path / "file" / "c.npz", "a-directory": tmp_path}.get(where, tmp_path / "new" / "c.npz")
    model = clf()
    untouched = unchanged(model)
    if where == "empty-folder":  # created and writable: fine
        xpnet.fit(model, X, Y, epochs=1, checkpoint=path)
        assert path.is_file() and not list(path.parent.glob(".*.tmp"))
        return
    one_line(lambda: xpnet.fit(model, X, Y, epochs=1, checkpoint=path),
             "is a directory: give a file name" if where == "a-directory" else "is a file, not a folder")
    untouched()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_checkpoint_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line(lambda: xpnet.fit(clf(), X, Y, epochs=1, checkpoint=locked / "c.npz"), "cannot be written")


def test_keep_last_needs_epoch_in_the_path(tmp_path):
    one_line(lambda: xpnet.fit(clf(), X, Y, epochs=2, checkpoint=tmp_path / "c.npz", keep_last=2),
             "keep_last needs {epoch} in the checkpoint path")
    assert not list(tmp_path.iterdir())


def test_resume_with_no_epochs_left_says_so(backend, tmp_path):
    path = tmp_path / "c.npz"
    xpnet.fit(clf(backend), X, Y, epochs=3, batch_size=10, checkpoint=path)
    for total in (3, 2):
        model = clf(backend, seed=5)
        untouched = unchanged(model)
        msg = one_line(lambda: xpnet.fit(model, X, Y, epochs=total, batch_size=10, resume=path),
                       f"epochs={total} but {path} has completed 3 epochs")
        assert "give epochs > 3" in msg
        untouched()
    assert len(xpnet.fit(clf(backend), X, Y, epochs=4, batch_size=10, resume=path)["loss"]) == 4


def test_a_run_that_stopped_early_is_finished(tmp_path):
    path = tmp_path / "c.npz"
    h = xpnet.fit(clf(), X, Y, epochs=200, batch_size=10, validation_split=0.2, early_stopping=True, patience=1,
                  optimizer=xpnet.SGD(lr=1e-9), checkpoint=path)
    assert h["stopped_early"]
    again = xpnet.fit(clf(), X, Y, epochs=2, batch_size=10, validation_split=0.2, early_stopping=True, patience=1,
                      resume=path)  # fewer than done: no error, nothing trained
    assert again["loss"] == h["loss"]


def test_oversized_network_is_refused_with_the_number(backend):
    msg = one_line(lambda: xpnet.MLP([10**6, 10**6, 1], backend=backend), "a network of 1,000,002,000,001 parameters")
    assert "TiB" in msg and "use fewer or narrower layers" in msg
    from xpnet.nn import Dense
    one_line(lambda: xpnet.Network([Dense(2, 10**7), Dense(10**7, 10**6)], backend=backend), "parameters")


def test_memory_limit_setting(monkeypatch):
    monkeypatch.setenv("XPNET_MEMORY_LIMIT", "1M")
    one_line(lambda: xpnet.MLP([100, 1000, 1]), "more than the 1.0 MiB of $XPNET_MEMORY_LIMIT")
    xpnet.MLP([10, 10, 1])
    monkeypatch.setenv("XPNET_MEMORY_LIMIT", "lots")
    one_line(lambda: xpnet.MLP([10, 10, 1]), "$XPNET_MEMORY_LIMIT must be a number of bytes")


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("spec", [s for s in ("numpy", "torch:cpu") if s in SPECS])
def test_tensors_that_require_grad_are_refused(spec):
    model = clf(spec)
    grad_X = torch.tensor(X, requires_grad=True)
    one_line(lambda: xpnet.fit(model, grad_X, torch.tensor(Y)),
             "X is a torch tensor that requires grad: pass X.detach()")
    one_line(lambda: model.predict(grad_X), "requires grad")
    one_line(lambda: xpnet.fit(model, torch.tensor(X), torch.tensor(Y, dtype=torch.float64, requires_grad=True)),
             "y is a torch tensor that requires grad")
    xpnet.fit(model, grad_X.detach(), torch.tensor(Y), epochs=1)  # detached: fine


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_estimators_refuse_tensors_that_require_grad():
    one_line(lambda: xpnet.XPNetClassifier(max_iter=1).fit(torch.tensor(X, requires_grad=True), Y),
             "X is a torch tensor that requires grad")


@pytest.mark.skipif(pd is None, reason="needs pandas")
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
def test_dataframes_with_text_columns_are_refused(backend):
    df = pd.DataFrame(X, columns=["a", "b", "c"]).assign(city=["x", "y"] * 10)
    one_line(lambda: xpnet.fit(xpnet.MLP([4, 3], backend=backend), df, Y),
             "X (a pandas DataFrame) has non-numeric columns 'city'")
    one_line(lambda: xpnet.XPNetClassifier(max_iter=1).fit(df, Y), "non-numeric columns 'city'")
    model = xpnet.MLP([3, 3], backend=backend)
    xpnet.fit(model, df.drop(columns="city"), Y, epochs=1)  # numeric columns: converted


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_optimizer_state_overflow_stops_training(backend):
    """Huge unstandardized inputs: Adam's second moment overflows (float32) while the parameters could stay
    finite; the guard checks the optimizer state too, so the run stops naming it."""
    big = np.random.default_rng(1).normal(size=(40, 3)) * 1e25
    model = xpnet.MLP([3, 4, 1], backend=backend)
    with pytest.raises(xpnet.TrainingStopped) as info:
        xpnet.fit(model, big, (big[:, 0] > 0).astype(np.int64), epochs=3, batch_size=40)
    assert "non-finite" in str(info.value) and "v[W]" in str(info.value)
    assert np.all(np.isfinite(to_numpy(model.params)))  # put back to the last finite values


def test_every_row_of_the_table_names_a_test_that_exists():
    """docs/bad_inputs.md: each row's last column names tests (functions or parameter ids) found in tests/."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (root / "tests").glob("test_*.py"))
    rows = [line for line in (root / "docs" / "bad_inputs.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith(("| Bad input", "|---"))]
    missing = []
    for row in rows:
        names = [n for n in row.rstrip(" |").rsplit(" | ", 1)[-1].split("`")[1::2] if not n.startswith("tests/")]
        assert names, row
        missing += [n for n in names if f"def {n}(" not in source and f'"{n}"' not in source]
    assert not missing, missing
    assert len(rows) >= 95
