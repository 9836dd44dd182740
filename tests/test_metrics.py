"""xpnet.metrics against sklearn.metrics on hundreds of random cases, on every backend.

Cases (numpy Generator, fixed seeds) cover imbalanced classes, classes missing from y_true
or y_pred, tied scores, probabilities at 0 and 1, constant targets, float32 and float64.
The scikit-learn references are computed once per case and shared by all backends.
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from sklearn.exceptions import UndefinedMetricWarning as SkUndefined

import backends
from xpnet import metrics as M

N_CLASSIFICATION = 60  # cases per test (x several metrics each)
N_SCORES = 40
N_REGRESSION = 30


def _rtol(dtype: str) -> float:
    return 1e-12 if dtype == "float64" else 1e-6


def _same(actual, expected, rtol: float, atol: float = 0.0, what: str = "") -> None:
    """Python float / list vs sklearn float / array; NaN equals NaN; exact type checks."""
    if isinstance(expected, (np.ndarray, list, tuple)):
        assert isinstance(actual, list), f"{what}: expected a list, got {type(actual).__name__}"
        assert len(actual) == len(expected), what
        for a, e in zip(actual, expected):
            _same(a, e, rtol, atol, what)
        return
    assert isinstance(actual, (float, int)) and not isinstance(actual, bool), \
        f"{what}: expected a Python number, got {type(actual).__name__}"
    e = float(expected)
    if math.isnan(e):
        assert math.isnan(actual), f"{what}: got {actual}, expected nan"
    elif math.isinf(e):
        assert actual == e, f"{what}: got {actual}, expected {e}"
    else:
        assert abs(actual - e) <= atol + rtol * abs(e), f"{what}: got {actual!r}, expected {e!r}"


def _run(fn, *args, **kw):
    """(result or exception, set of warning categories)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            out = fn(*args, **kw)
        except (ValueError, NotImplementedError) as exc:
            out = exc
    return out, {w.category for w in rec}


def _warned_alike(ours: set, theirs: set) -> None:
    assert (M.UndefinedMetricWarning in ours) == (SkUndefined in theirs), (ours, theirs)


# ---------------------------------------------------------------- case generators
def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Labels from an imbalanced distribution over a random subset of range(k) (classes may be missing)."""
    present = rng.choice(k, size=rng.integers(1, k + 1), replace=False)
    probs = rng.dirichlet(np.full(present.size, rng.choice([0.3, 1.0, 5.0])))
    return rng.choice(present, size=n, p=probs)


@functools.cache
def classification_case(i: int) -> dict:
    rng = np.random.default_rng(1000 + i)
    n, k = int(rng.integers(1, 40)), int(rng.integers(2, 6))
    if i % 3 == 0:
        k = 2
    yt = _labels(rng, n, k)
    yp = np.where(rng.random(n) < rng.random(), yt, _labels(rng, n, k))  # partly correct
    offset = int(rng.choice([0, 0, -1, 3]))  # non-zero-based labels sometimes
    yt, yp = yt + offset, yp + offset
    case = {"yt": yt, "yp": yp, "as_float": bool(rng.random() < 0.2)}
    union = np.union1d(yt, yp)
    case["labels"] = None
    if rng.random() < 0.3:  # explicit labels: a permuted subset plus an absent label
        pick = rng.permutation(union)[:max(1, union.size - 1)].tolist()
        case["labels"] = pick + [int(union.max()) + 7] if rng.random() < 0.5 else pick
    zd = ["warn", 0, 1, np.nan][i % 4]
    ref = {"accuracy": skm.accuracy_score(yt, yp), "acc_count": skm.accuracy_score(yt, yp, normalize=False)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref["cm"] = skm.confusion_matrix(yt, yp).tolist()
        if case["labels"] is not None and np.isin(yt, case["labels"]).any():
            ref["cm_labels"] = skm.confusion_matrix(yt, yp, labels=case["labels"]).tolist()
            ref["cm_norm"] = skm.confusion_matrix(yt, yp, labels=case["labels"], normalize="true").tolist()
    prf = {}
    averages = [None, "micro", "macro", "weighted"] + (["binary"] if union.size <= 2 else [])
    for avg in averages:
        pos = int(union.max()) if avg == "binary" else 1
        labels = None if avg == "binary" else case["labels"]
        for name, fn in (("p", skm.precision_score), ("r", skm.recall_score), ("f", skm.f1_score)):
            prf[(name, avg)] = _run(fn, yt, yp, average=avg, labels=labels, pos_label=pos, zero_division=zd) \
                + (pos, labels)
    prf[("f2", "macro")] = _run(skm.fbeta_score, yt, yp, beta=2.0, average="macro", zero_division=zd) + (1, None)
    case.update(ref=ref, prf=prf, zd=zd)
    return case


@functools.cache
def score_case(i: int, dtype: str) -> dict:
    rng = np.random.default_rng(5000 + i)
    n = int(rng.integers(2, 50))
    if i % 2 == 0:  # binary, ties from coarse rounding, imbalanced
        yt = (rng.random(n) < rng.choice([0.05, 0.3, 0.5])).astype(np.int64) + int(rng.choice([0, 3]))
        s = rng.normal(size=n) + (yt - yt.min()) * rng.random()
        s = np.round(s, int(rng.integers(0, 3))).astype(dtype)
        ref = {"auc": _run(skm.roc_auc_score, yt, s)}
        p1 = np.clip(rng.random(n).astype(dtype), 0, 1)
        p1[rng.random(n) < 0.1] = rng.choice([0.0, 1.0])  # clipping at eps
        if np.unique(yt).size == 2:
            ref["ll"] = _run(skm.log_loss, yt, y_proba=p1)
        return {"yt": yt, "s": s, "p": p1, "ref": ref, "k": 2}
    k = int(rng.integers(3, 6))
    yt = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.7)))
    yt[:k] = np.arange(k)  # every class present (sklearn's ovr requirement without labels)
    P = rng.dirichlet(np.full(k, rng.choice([0.2, 1.0])), size=n)
    P = np.round(P, int(rng.integers(1, 4)))  # ties
    P = (P / P.sum(axis=1, keepdims=True)).astype(dtype)
    ref = {avg: _run(skm.roc_auc_score, yt, P, multi_class="ovr", average=avg)
           for avg in ("macro", "weighted", "micro", None)}
    ref["ll"] = _run(skm.log_loss, yt, y_proba=P)
    ref["ll_sum"] = _run(skm.log_loss, yt, y_proba=P, normalize=False)
    # labels with a class absent from y_true
    keep = yt != k - 1
    ref["ll_labels"] = _run(skm.log_loss, yt[keep], y_proba=P[keep], labels=list(range(k)))
    return {"yt": yt, "s": P, "p": P, "keep": keep, "ref": ref, "k": k}


@functools.cache
def regression_case(i: int, dtype: str) -> dict:
    rng = np.random.default_rng(9000 + i)
    n, d = int(rng.integers(1, 40)), int(rng.choice([0, 1, 3]))
    shape = (n,) if d == 0 else (n, d)
    yt = (rng.normal(size=shape) * rng.choice([1e-3, 1.0, 1e3])).astype(dtype)
    yp = (yt + rng.normal(size=shape) * rng.choice([0.0, 0.1, 3.0])).astype(dtype)
    if rng.random() < 0.2:
        yt[...] = 0.375  # constant target (dyadic: its mean is exact in any summation order)
    if rng.random() < 0.2 and d:
        yp[:, 0] = yt[:, 0]  # one output predicted exactly
    ref = {}
    t64, p64 = yt.astype(np.float64), yp.astype(np.float64)  # float32 data are summed in float64 here
    multi = ["uniform_average", "raw_values"] + ([[0.2, 0.3, 0.5][:d]] if d > 1 else [])
    for mo in multi:
        key = mo if isinstance(mo, str) else "weights"
        ref[("mse", key)] = _run(skm.mean_squared_error, t64, p64, multioutput=mo)
        ref[("rmse", key)] = _run(skm.root_mean_squared_error, t64, p64, multioutput=mo)
        ref[("mae", key)] = _run(skm.mean_absolute_error, t64, p64, multioutput=mo)
        ref[("r2", key)] = _run(skm.r2_score, t64, p64, multioutput=mo)
    ref[("r2", "variance_weighted")] = _run(skm.r2_score, t64, p64, multioutput="variance_weighted")
    ref[("r2_nf", "raw_values")] = _run(skm.r2_score, t64, p64, multioutput="raw_values", force_finite=False)
    return {"yt": yt, "yp": yp, "multi": multi, "ref": ref}


# ---------------------------------------------------------------- comparisons
def test_classification_metrics_match_sklearn(backend) -> None:
    for i in range(N_CLASSIFICATION):
        c = classification_case(i)
        conv = (lambda a: backend.asarray(a, dtype="float64")) if c["as_float"] else backend.asarray
        yt, yp = conv(c["yt"]), conv(c["yp"])
        ref = c["ref"]
        _same(M.accuracy_score(yt, yp), ref["accuracy"], 1e-12, what=f"case {i} accuracy")
        _same(M.accuracy_score(yt, yp, normalize=False), ref["acc_count"], 0, what=f"case {i} count")
        cm, _ = _run(M.confusion_matrix, yt, yp)
        assert cm == ref["cm"], f"case {i}: {cm} != {ref['cm']}"
        if "cm_labels" in ref:
            assert _run(M.confusion_matrix, yt, yp, labels=c["labels"])[0] == ref["cm_labels"], f"case {i}"
            _same(_run(M.confusion_matrix, yt, yp, labels=c["labels"], normalize="true")[0], ref["cm_norm"], 1e-12)
        fns = {"p": M.precision_score, "r": M.recall_score, "f": M.f1_score}
        for (name, avg), (expected, sk_warn, pos, labels) in c["prf"].items():
            if name == "f2":
                got, our_warn = _run(M.fbeta_score, yt, yp, beta=2.0, average=avg, zero_division=c["zd"])
            else:
                got, our_warn = _run(fns[name], yt, yp, average=avg, labels=labels, pos_label=pos,
                                     zero_division=c["zd"])
            what = f"case {i} {name} average={avg} zero_division={c['zd']}"
            if isinstance(expected, Exception):
                assert isinstance(got, ValueError), f"{what}: sklearn raised {expected!r}, we returned {got!r}"
                continue
            assert not isinstance(got, Exception), f"{what}: {got!r}"
            _same(got, expected, 1e-12, what=what)
            _warned_alike(our_warn, sk_warn)


def test_precision_recall_fscore_support_per_label(backend) -> None:
    for i in range(0, N_CLASSIFICATION, 3):
        c = classification_case(i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = skm.precision_recall_fscore_support(c["yt"], c["yp"], labels=c["labels"], beta=0.5,
                                                           zero_division=c["zd"])
            got = M.precision_recall_fscore_support(backend.asarray(c["yt"]), backend.asarray(c["yp"]),
                                                    labels=c["labels"], beta=0.5, zero_division=c["zd"])
        for a, e in zip(got, expected):
            _same(a, e, 1e-12, what=f"case {i}")
        assert all(type(v) is int for v in got[3])


def test_roc_auc_and_log_loss_match_sklearn(backend, dtype) -> None:
    rtol = _rtol(dtype)
    for i in range(N_SCORES):
        c = score_case(i, dtype)
        yt, s, p, ref = backend.asarray(c["yt"]), backend.asarray(c["s"]), backend.asarray(c["p"]), c["ref"]
        if c["k"] == 2:
            checks = [("auc", M.roc_auc_score, (yt, s), {})]
            if "ll" in ref:
                checks.append(("ll", M.log_loss, (yt, p), {}))
        else:
            checks = [(avg, M.roc_auc_score, (yt, s), {"average": avg}) for avg in ("macro", "weighted", "micro",
                                                                                     None)]
            keep = backend.asarray(np.flatnonzero(c["keep"]))
            checks += [("ll", M.log_loss, (yt, p), {}), ("ll_sum", M.log_loss, (yt, p), {"normalize": False}),
                       ("ll_labels", M.log_loss, (backend.xp.take(yt, keep), backend.xp.take(p, keep, axis=0)),
                        {"labels": list(range(c["k"]))})]
        for key, fn, args, kw in checks:
            expected, sk_warn = ref[key]
            got, our_warn = _run(fn, *args, **kw)
            what = f"case {i} {fn.__name__} {key} {dtype}"
            assert not isinstance(expected, Exception), what
            assert not isinstance(got, Exception), f"{what}: {got!r}"
            # AUC is exact (integer rank sums): float32 scores give float64-exact results too.
            _same(got, expected, 1e-12 if fn is M.roc_auc_score else rtol, what=what)
            _warned_alike(our_warn, sk_warn)


def test_regression_metrics_match_sklearn(backend, dtype) -> None:
    fns = {"mse": M.mean_squared_error, "rmse": M.root_mean_squared_error, "mae": M.mean_absolute_error,
           "r2": M.r2_score}
    for i in range(N_REGRESSION):
        c = regression_case(i, dtype)
        yt, yp = backend.asarray(c["yt"]), backend.asarray(c["yp"])
        for (name, key), (expected, sk_warn) in c["ref"].items():
            kw = {"multioutput": key if key != "weights" else [0.2, 0.3, 0.5][:c["yt"].shape[1]]}
            if name == "r2_nf":
                name, kw["force_finite"] = "r2", False
            got, our_warn = _run(fns[name], yt, yp, **kw)
            what = f"case {i} {name} {key} {dtype}"
            assert not isinstance(got, Exception), f"{what}: {got!r}"
            # float32 inputs are summed in float64 (exactly what sklearn does with the float64 copy)
            _same(got, expected, 1e-12, what=what)
            _warned_alike(our_warn, sk_warn)


# ---------------------------------------------------------------- conventions and errors
def test_degenerate_cases_warn_and_use_sklearn_values(backend) -> None:
    a = backend.asarray
    y0, y1 = a(np.array([0, 0, 1, 1])), a(np.array([0, 0, 0, 0]))
    with pytest.warns(M.UndefinedMetricWarning, match="Precision is ill-defined.*no predicted samples"):
        assert M.precision_score(y0, y1) == 0.0
    assert M.precision_score(y0, y1, zero_division=1) == 1.0
    assert math.isnan(M.precision_score(y0, y1, zero_division=np.nan))
    with pytest.warns(M.UndefinedMetricWarning, match="Recall is ill-defined"):
        assert M.recall_score(y1, y1) == 0.0  # no positive samples at all
    with pytest.warns(M.UndefinedMetricWarning, match="Only one class is present in y_true"):
        assert math.isnan(M.roc_auc_score(y1, a(np.array([0.1, 0.4, 0.35, 0.8]))))
    with pytest.warns(M.UndefinedMetricWarning, match="less than two samples"):
        assert math.isnan(M.r2_score(a(np.array([1.0])), a(np.array([2.0]))))
    const = a(np.array([2.0, 2.0, 2.0]))
    assert M.r2_score(const, const) == 1.0 and M.r2_score(const, a(np.array([2.0, 2.0, 3.0]))) == 0.0
    assert M.r2_score(const, a(np.array([2.0, 2.0, 3.0])), force_finite=False) == -math.inf
    with pytest.warns(UserWarning, match="single label"):
        assert M.confusion_matrix(y1, y1) == [[4]]
    with pytest.warns(UserWarning, match="do not sum to one"):
        M.log_loss(y0, a(np.array([[0.5, 0.6]] * 4)))


def test_invalid_inputs_raise(backend) -> None:
    a = backend.asarray
    multi, two = a(np.array([0, 1, 2, 1])), a(np.array([0, 1, 1, 0]))
    with pytest.raises(ValueError, match="average='binary'"):
        M.f1_score(multi, multi)
    with pytest.raises(ValueError, match="pos_label=5 is not a valid label"):
        M.precision_score(two, two, pos_label=5)
    with pytest.raises(ValueError, match="NaN or infinity"):
        M.roc_auc_score(two, a(np.array([0.1, np.nan, 0.2, 0.3])))
    with pytest.raises(ValueError, match="sum up to 1.0"):
        M.roc_auc_score(multi, a(np.full((4, 3), 0.5)))
    with pytest.raises(ValueError, match="greater than 1"):
        M.log_loss(two, a(np.array([0.1, 1.5, 0.2, 0.3])))
    with pytest.raises(ValueError, match="only one label"):
        M.log_loss(a(np.array([1, 1])), a(np.array([0.1, 0.3])))
    with pytest.raises(ValueError, match="integer class labels"):
        M.accuracy_score(two, a(np.array([0.5, 1.0, 1.0, 0.0])))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        M.accuracy_score(two, multi[:3])
    with pytest.raises(ValueError, match="At least one label specified must be in y_true"):
        M.confusion_matrix(two, two, labels=[7, 8])


def test_results_cross_to_the_host_once(backend, monkeypatch) -> None:
    """Device inputs: every metric ends with exactly one transfer (values and checks together)."""
    calls = []
    real = backends.to_numpy
    monkeypatch.setattr(backends, "to_numpy", lambda x: calls.append(1) or real(x))
    rng = np.random.default_rng(3)
    yt, yp = backend.asarray(rng.integers(0, 3, 30)), backend.asarray(rng.integers(0, 3, 30))
    P = backend.asarray(rng.dirichlet(np.ones(3), 30))
    r = backend.asarray(rng.normal(size=30))
    for fn, args in ((M.accuracy_score, (yt, yp)), (M.f1_score, (yt, yp)), (M.confusion_matrix, (yt, yp)),
                     (M.roc_auc_score, (yt, P)), (M.log_loss, (yt, P)), (M.r2_score, (r, r * 0.5)),
                     (M.mean_absolute_error, (r, r))):
        calls.clear()
        kw = {"average": "macro"} if fn is M.f1_score else {}
        out = fn(*args, **kw)
        assert len(calls) == 1, f"{fn.__name__}: {len(calls)} transfers"
        assert isinstance(out, (float, int, list))


def test_inputs_from_another_library_are_moved_to_the_prediction_device(backend) -> None:
    yt = [0, 1, 1, 0, 1]  # a list and a NumPy array, with y_score on the backend
    s = backend.asarray(np.array([0.2, 0.9, 0.4, 0.4, 0.7]))
    assert M.roc_auc_score(yt, s) == skm.roc_auc_score(yt, [0.2, 0.9, 0.4, 0.4, 0.7])
    assert M.accuracy_score(np.array(yt), backend.asarray(np.array([0, 1, 0, 0, 1]))) == 0.8
