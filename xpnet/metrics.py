"""Classification and regression metrics computed on the device, matching scikit-learn.

Every function takes arrays of any backend (NumPy, CuPy, PyTorch, array-api-strict on any
device; also lists) and works on the namespace and device of the prediction argument
(``y_pred`` / ``y_score`` / ``y_prob``); ``y_true`` is moved there if it lives elsewhere.
The sample-sized work (comparisons, sorting, counting, sums) runs on the device; the
results cross to the host in ONE transfer at the end, together with the validity checks,
and come back as Python floats (lists for per-class results and the confusion matrix).
Finding the label set (``unique_values``) has a data-dependent shape, so on a GPU that
step waits for the device once as well.

Signatures and degenerate cases follow ``sklearn.metrics`` (tested against it):

- precision / recall / F: a zero denominator (a label never predicted, never present)
  gives ``zero_division`` (default "warn": 0.0 and an :class:`UndefinedMetricWarning`).
- roc_auc_score: a class with no positive or no negative sample gives NaN with an
  :class:`UndefinedMetricWarning` (averages containing it are NaN too).
- log_loss: probabilities clipped to ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of
  ``y_prob``'s dtype; rows that do not sum to one give a ``UserWarning`` (not renormalized).
- r2_score: fewer than two samples gives NaN with an :class:`UndefinedMetricWarning`;
  with ``force_finite=True`` a constant ``y_true`` gives 1.0 for a perfect prediction and
  0.0 otherwise (the documented scikit-learn values, instead of NaN / -inf).
- confusion_matrix: a 1x1 result warns (pass ``labels`` to get the full shape).

ROC AUC is exact: the Mann-Whitney statistic from average ranks (ties share the mean of
their ranks: for each score, ``searchsorted`` left/right in the sorted scores gives the
tie group), in integer arithmetic, divided once on the host.
The functions used (``sort``, ``searchsorted``, ``unique_values``, ``count_nonzero``,
``clip``, ``concat``) are all in array-api-strict 2.x and array_api_compat.torch.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import array_api_compat

import backends as _backends

from ._xp import Array, device, fetch, namespace

__all__ = [
    "UndefinedMetricWarning", "accuracy_score", "precision_recall_fscore_support", "precision_score",
    "recall_score", "f1_score", "fbeta_score", "confusion_matrix", "roc_auc_score", "log_loss",
    "mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
]

_AVERAGES = (None, "binary", "micro", "macro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A metric is ill-defined for the data (e.g. no predicted samples); the value used is named."""


# ---------------------------------------------------------------- inputs and transfer
def _target(*objs: Any) -> tuple[Any, Any]:
    """(namespace, device) of the first array-API array among ``objs`` (NumPy if none)."""
    for obj in objs:
        if array_api_compat.is_array_api_obj(obj):
            return namespace(obj), device(obj)
    be = _backends.get("numpy")
    return be.xp, be.device


def _on(xp: Any, dev: Any, obj: Any, name: str) -> Array:
    """``obj`` as an array of ``xp`` on ``dev`` (copied through the host if it lives elsewhere)."""
    if array_api_compat.is_array_api_obj(obj):
        try:
            if namespace(obj) is xp and device(obj) == dev:
                return obj
        except TypeError:
            pass
    try:
        return xp.asarray(_backends.to_numpy(obj), device=dev)
    except Exception as exc:  # noqa: BLE001 - one clear line
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None


def _wide_float(xp: Any, dev: Any, dtype: Any = None) -> Any:
    """float64 where the device supports it (exact counts, accurate sums), else ``dtype``/float32."""
    if "float64" in xp.__array_namespace_info__().dtypes(device=dev, kind="real floating"):
        return xp.float64
    return dtype if dtype is not None else xp.float32


class _Checks:
    """Validity conditions evaluated on the device and read back with the results."""

    def __init__(self, xp: Any) -> None:
        self.xp, self.flags, self.errors = xp, [], []

    def add(self, ok: Array, error: Exception) -> None:
        """``ok``: 0-d bool that must be True, else ``error`` is raised after the transfer."""
        self.flags.append(self.xp.astype(ok, self.xp.int64))
        self.errors.append(error)

    def parts(self) -> list[Array]:
        return [self.xp.stack(self.flags)] if self.flags else []

    def settle(self) -> None:
        """Raise a failed check now (before reporting a later error it may have caused)."""
        if self.flags:
            self.raise_failed(fetch(self.xp, self.parts(), self.xp.int64))

    def raise_failed(self, fetched: list[list[Any]]) -> None:
        if self.flags:
            for ok, err in zip(fetched[-1], self.errors):
                if not ok:
                    raise err


def _n_samples(*arrays: Array) -> int:
    lengths = [int(a.shape[0]) for a in arrays]
    if len(set(lengths)) > 1:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: {lengths}")
    if lengths[0] == 0:
        raise ValueError("Found empty input (0 samples): metrics need at least one sample")
    return lengths[0]


def _labels(xp: Any, dev: Any, y: Any, name: str, checks: _Checks, allow_2d: bool = False) -> Array:
    """Class labels as int64 (bool and integral floats accepted; others fail the checks)."""
    a = _on(xp, dev, y, name)
    if a.ndim == 2 and a.shape[1] == 1:
        a = xp.reshape(a, (-1,))
    if a.ndim != 1 and not (allow_2d and a.ndim == 2):
        raise ValueError(f"{name} must be a 1-D array of class labels, got shape {tuple(a.shape)}")
    if xp.isdtype(a.dtype, "bool") or xp.isdtype(a.dtype, "integral"):
        return xp.astype(a, xp.int64)
    if not xp.isdtype(a.dtype, "real floating"):
        raise ValueError(f"{name} must hold integer class labels, got dtype {a.dtype}")
    checks.add(xp.all(xp.isfinite(a)) & xp.all(a == xp.round(a)),
               ValueError(f"{name} must hold integer class labels (got non-integer or non-finite "
                          f"floats); threshold scores or take the argmax first"))
    return xp.astype(xp.where(xp.isfinite(a), a, 0.0), xp.int64)


def _floats(xp: Any, dev: Any, y: Any, name: str) -> Array:
    """A real floating array (integers and bools become float64 where supported)."""
    a = _on(xp, dev, y, name)
    if not xp.isdtype(a.dtype, "real floating"):
        if not (xp.isdtype(a.dtype, "integral") or xp.isdtype(a.dtype, "bool")):
            raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
        a = xp.astype(a, _wide_float(xp, dev))
    return a


def _int_list(xp: Any, dev: Any, labels: Any, name: str = "labels") -> Array:
    values = _backends.to_numpy(labels).reshape(-1).tolist()
    if not values:
        raise ValueError(f"'{name}' should contain at least one label.")
    try:
        ints = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be integer class labels, got {values!r}") from None
    if ints != values:
        raise ValueError(f"{name} must be integer class labels, got {values!r}")
    return xp.asarray(ints, dtype=xp.int64, device=dev)


def _classes(xp: Any, *ys: Array) -> Array:
    """Sorted distinct labels of ``ys``."""
    return xp.sort(xp.unique_values(xp.concat(ys) if len(ys) > 1 else ys[0]))


def _encode(xp: Any, y: Array, labels: Array) -> Array:
    """Index of each y in ``labels`` (any order, distinct), or len(labels) if absent."""
    k = labels.shape[0]
    order = xp.argsort(labels)
    srt = xp.take(labels, order)
    pos = xp.clip(xp.searchsorted(srt, y), 0, k - 1)
    found = xp.take(srt, pos) == y
    return xp.where(found, xp.take(order, pos), k)


def _bincount(xp: Any, idx: Array, m: int) -> Array:
    """Counts of the values 0..m-1 in the int64 array ``idx`` (others ignored), via sort + searchsorted."""
    s = xp.sort(idx)
    r = xp.arange(m, dtype=s.dtype, device=device(s))
    return xp.searchsorted(s, r, side="right") - xp.searchsorted(s, r, side="left")


def _mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    if weights is None:
        return math.fsum(values) / len(values)
    return math.fsum(v * w for v, w in zip(values, weights)) / math.fsum(weights)


# ---------------------------------------------------------------- classification
def accuracy_score(y_true: Any, y_pred: Any, *, normalize: bool = True) -> float:
    """Fraction (or, with ``normalize=False``, number) of correct predictions.

    1-D label arrays, or 2-D label-indicator arrays (a row counts when all its labels match).
    """
    xp, dev = _target(y_pred, y_true)
    checks = _Checks(xp)
    t = _labels(xp, dev, y_true, "y_true", checks, allow_2d=True)
    p = _labels(xp, dev, y_pred, "y_pred", checks, allow_2d=True)
    n = _n_samples(t, p)
    if tuple(t.shape) != tuple(p.shape):
        raise ValueError(f"y_true and y_pred have different shapes: {tuple(t.shape)} vs {tuple(p.shape)}")
    eq = t == p if t.ndim == 1 else xp.all(t == p, axis=1)
    got = fetch(xp, [xp.count_nonzero(eq)] + checks.parts(), xp.int64)
    checks.raise_failed(got)
    correct = got[0][0]
    return correct / n if normalize else float(correct)


def _check_zero_division(zero_division: Any) -> float:
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if isinstance(zero_division, (int, float)) and not isinstance(zero_division, bool) and (
            zero_division in (0, 1) or math.isnan(zero_division)):
        return float(zero_division)
    raise ValueError(f"zero_division must be 'warn', 0, 1 or nan, got {zero_division!r}")


def _prf_divide(num: list[float], den: list[float], metric: str, modifier: str, average: Any,
                warn_for: Sequence[str], zero_division: Any) -> list[float]:
    """num / den elementwise; zero denominators give ``zero_division`` (and warn if "warn")."""
    value = _check_zero_division(zero_division)
    out = [a / b if b != 0 else value for a, b in zip(num, den)]
    if any(b == 0 for b in den) and zero_division == "warn" and metric in warn_for:
        where = "due to" if len(den) == 1 else "in labels with"
        warnings.warn(f"{metric.capitalize()} is ill-defined and being set to 0.0 {where} no {modifier} "
                      f"samples. Use `zero_division` parameter to control this behavior.",
                      UndefinedMetricWarning, stacklevel=4)
    return out


def _nanaverage(values: list[float], weights: list[float] | None) -> float:
    """Average ignoring NaN entries (they only arise from ``zero_division=nan``)."""
    keep = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not keep:
        return math.nan
    vals = [values[i] for i in keep]
    if weights is None:
        return _mean(vals)
    w = [weights[i] for i in keep]
    return _mean(vals, w) if math.fsum(w) != 0 else _mean(vals)  # all weights zero: plain mean


def precision_recall_fscore_support(y_true: Any, y_pred: Any, *, beta: float = 1.0, labels: Any = None,
                                    pos_label: int = 1, average: str | None = None,
                                    warn_for: Sequence[str] = ("precision", "recall", "f-score"),
                                    zero_division: Any = "warn") -> tuple[Any, Any, Any, Any]:
    """Precision, recall, F-beta and support, as ``sklearn.metrics.precision_recall_fscore_support``.

    average: None (per-label lists, in the order of ``labels`` or of the sorted labels
    present in y_true and y_pred), "binary" (the ``pos_label`` class; the targets must
    have at most two labels), "micro" (global counts), "macro" (unweighted mean over
    labels) or "weighted" (mean weighted by support). With an average, support is None.
    zero_division: value for 0/0 ("warn": 0.0 plus an UndefinedMetricWarning; 0; 1; nan,
    which averages then skip).
    """
    if average not in _AVERAGES:
        raise ValueError(f"average has to be one of {_AVERAGES}, got {average!r}")
    _check_zero_division(zero_division)
    if beta < 0:
        raise ValueError("beta should be >=0 in the F-beta score")
    xp, dev = _target(y_pred, y_true)
    checks = _Checks(xp)
    t, p = _labels(xp, dev, y_true, "y_true", checks), _labels(xp, dev, y_pred, "y_pred", checks)
    _n_samples(t, p)
    present = _classes(xp, t, p)
    if average == "binary":
        if present.shape[0] > 2:
            checks.settle()
            raise ValueError("Target is multiclass but average='binary'. Please choose another average "
                             "setting, one of [None, 'micro', 'macro', 'weighted'].")
        lab = _int_list(xp, dev, [pos_label], "pos_label")
    else:
        if pos_label not in (None, 1):
            warnings.warn(f"Note that pos_label (set to {pos_label!r}) is ignored when average != 'binary' "
                          f"(got {average!r}). You may use labels=[pos_label] to specify a single positive "
                          f"class.", UserWarning, stacklevel=3)
        lab = present if labels is None else _int_list(xp, dev, labels)
    k = lab.shape[0]
    ti, pi = _encode(xp, t, lab), _encode(xp, p, lab)
    tp = _bincount(xp, xp.where(ti == pi, ti, k), k)
    got = fetch(xp, [present, tp, _bincount(xp, pi, k), _bincount(xp, ti, k)] + checks.parts(), xp.int64)
    checks.raise_failed(got)
    present_h, tp_h, pred_h, true_h = got[:4]
    if average == "binary" and len(present_h) == 2 and pos_label not in present_h:
        raise ValueError(f"pos_label={pos_label} is not a valid label. It should be one of {present_h}")
    if average == "micro":
        tp_h, pred_h, true_h = [sum(tp_h)], [sum(pred_h)], [sum(true_h)]
    tp_f, pred_f, true_f = ([float(v) for v in a] for a in (tp_h, pred_h, true_h))
    precision = _prf_divide(tp_f, pred_f, "precision", "predicted", average, warn_for, zero_division)
    recall = _prf_divide(tp_f, true_f, "recall", "true", average, warn_for, zero_division)
    if math.isinf(beta):
        fscore = recall
    elif beta == 0:
        fscore = precision
    else:
        b2 = beta * beta
        fscore = _prf_divide([(1 + b2) * v for v in tp_f], [b2 * a + b for a, b in zip(true_f, pred_f)],
                             "f-score", "true nor predicted", average, warn_for, zero_division)
    if average is None:
        return precision, recall, fscore, true_h
    weights = true_f if average == "weighted" else None
    return (_nanaverage(precision, weights), _nanaverage(recall, weights), _nanaverage(fscore, weights), None)


def precision_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: int = 1,
                    average: str | None = "binary", zero_division: Any = "warn") -> Any:
    """tp / (tp + fp); see :func:`precision_recall_fscore_support` for ``average`` and ``zero_division``."""
    return precision_recall_fscore_support(y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                                           warn_for=("precision",), zero_division=zero_division)[0]


def recall_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: int = 1,
                 average: str | None = "binary", zero_division: Any = "warn") -> Any:
    """tp / (tp + fn); see :func:`precision_recall_fscore_support` for ``average`` and ``zero_division``."""
    return precision_recall_fscore_support(y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
                                           warn_for=("recall",), zero_division=zero_division)[1]


def fbeta_score(y_true: Any, y_pred: Any, *, beta: float, labels: Any = None, pos_label: int = 1,
                average: str | None = "binary", zero_division: Any = "warn") -> Any:
    """(1 + β²) tp / ((1 + β²) tp + β² fn + fp); see :func:`precision_recall_fscore_support`."""
    return precision_recall_fscore_support(y_true, y_pred, beta=beta, labels=labels, pos_label=pos_label,
                                           average=average, warn_for=("f-score",),
                                           zero_division=zero_division)[2]


def f1_score(y_true: Any, y_pred: Any, *, labels: Any = None, pos_label: int = 1,
             average: str | None = "binary", zero_division: Any = "warn") -> Any:
    """F1 = 2 tp / (2 tp + fp + fn); see :func:`precision_recall_fscore_support`."""
    return fbeta_score(y_true, y_pred, beta=1.0, labels=labels, pos_label=pos_label, average=average,
                       zero_division=zero_division)


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Any = None,
                     normalize: str | None = None) -> list[list[Any]]:
    """C[i][j] = number of samples of true label i predicted as j (nested lists of ints).

    Rows and columns follow ``labels`` (default: sorted labels of y_true and y_pred);
    samples whose labels are not in ``labels`` are left out. ``normalize``: "true"
    (rows sum to 1), "pred" (columns), "all"; empty rows/columns give 0.0.
    """
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError("normalize must be one of {'true', 'pred', 'all', None}")
    xp, dev = _target(y_pred, y_true)
    checks = _Checks(xp)
    t, p = _labels(xp, dev, y_true, "y_true", checks), _labels(xp, dev, y_pred, "y_pred", checks)
    _n_samples(t, p)
    lab = _classes(xp, t, p) if labels is None else _int_list(xp, dev, labels)
    k = lab.shape[0]
    ti, pi = _encode(xp, t, lab), _encode(xp, p, lab)
    if labels is not None:
        checks.add(xp.any(ti < k), ValueError("At least one label specified must be in y_true"))
    code = xp.where((ti < k) & (pi < k), ti * k + pi, k * k)
    got = fetch(xp, [_bincount(xp, code, k * k)] + checks.parts(), xp.int64)
    checks.raise_failed(got)
    cm = [got[0][i * k:(i + 1) * k] for i in range(k)]
    if normalize == "true":
        cm = [[v / s if (s := sum(row)) else 0.0 for v in row] for row in cm]
    elif normalize == "pred":
        cols = [sum(row[j] for row in cm) for j in range(k)]
        cm = [[v / c if c else 0.0 for v, c in zip(row, cols)] for row in cm]
    elif normalize == "all":
        total = sum(map(sum, cm))
        cm = [[v / total if total else 0.0 for v in row] for row in cm]
    if k == 1:
        warnings.warn("A single label was found in 'y_true' and 'y_pred'. For the confusion matrix to have "
                      "the correct shape, use the 'labels' parameter to pass all known labels.",
                      UserWarning, stacklevel=2)
    return cm


def _rank_sum2(xp: Any, s: Array, pos: Array) -> tuple[Array, Array]:
    """(2 × sum of the average ranks of the positives, number of positives), both int64.

    For a score s_i, its tie group occupies sorted positions [lo, hi), so its average
    1-based rank is (lo + hi + 1) / 2.
    """
    srt = xp.sort(s)
    r2 = xp.searchsorted(srt, s, side="left") + xp.searchsorted(srt, s, side="right") + 1
    return xp.sum(xp.where(pos, r2, 0)), xp.count_nonzero(pos)


def _auc_from_ranks(r2: int, n_pos: int, n: int) -> float:
    """Mann-Whitney AUC = (R - P(P+1)/2) / (P N) with R the positives' rank sum; NaN (warned) if P or N is 0."""
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        warnings.warn("Only one class is present in y_true. ROC AUC score is not defined in that case.",
                      UndefinedMetricWarning, stacklevel=3)
        return math.nan
    return (r2 - n_pos * (n_pos + 1)) / (2 * n_pos * n_neg)  # exact integers, one rounding


def roc_auc_score(y_true: Any, y_score: Any, *, average: str | None = "macro", multi_class: str = "ovr",
                  labels: Any = None) -> Any:
    """Area under the ROC curve, exact (rank statistic with tied scores sharing their mean rank).

    Binary: y_true with two labels (the larger one is positive), y_score of shape (n,)
    (score of the positive class). Multiclass: y_score of shape (n, k) with rows summing
    to 1 (probabilities), columns in the order of the sorted labels (or ``labels``); one
    class against the rest (``multi_class="ovr"``, the default here; scikit-learn's default
    is "raise"), averaged by ``average``: "macro", "weighted" (by class prevalence),
    "micro" (all (sample, class) pairs pooled) or None (a list, one AUC per class).
    A class without positive or negative samples gives NaN with an UndefinedMetricWarning.
    """
    xp, dev = _target(y_score, y_true)
    checks = _Checks(xp)
    t = _labels(xp, dev, y_true, "y_true", checks)
    s = _floats(xp, dev, y_score, "y_score")
    if s.ndim == 2 and s.shape[1] == 1:
        s = xp.reshape(s, (-1,))
    if s.ndim not in (1, 2):
        raise ValueError(f"y_score must have shape (n,) or (n, n_classes), got {tuple(s.shape)}")
    n = _n_samples(t, s)
    checks.add(xp.all(xp.isfinite(s)), ValueError("y_score contains NaN or infinity"))
    classes = _classes(xp, t)
    if s.ndim == 1:
        if classes.shape[0] > 2:
            checks.settle()
            raise ValueError(f"y_true has {classes.shape[0]} classes: pass y_score of shape (n, n_classes) "
                             f"(probabilities) for a multiclass ROC AUC")
        r2, n_pos = _rank_sum2(xp, s, t == classes[-1])
        got = fetch(xp, [r2, n_pos] + checks.parts(), xp.int64)
        checks.raise_failed(got)
        return _auc_from_ranks(got[0][0], got[1][0], n)

    k = s.shape[1]
    if classes.shape[0] <= 2 and labels is None and k == 2:
        raise ValueError("y_true is binary: pass the positive class's scores, e.g. y_score[:, 1] "
                         "(scikit-learn raises 'y should be a 1d array' here)")
    if multi_class != "ovr":
        raise ValueError(f"multi_class={multi_class!r} is not supported: use multi_class='ovr' "
                         f"(one-vs-rest; 'ovo' is not implemented)")
    if average not in ("micro", "macro", "weighted", None):
        raise ValueError(f"average must be one of ('micro', 'macro', 'weighted', None) for multiclass "
                         f"problems, got {average!r}")
    if labels is not None:
        lab_host = _backends.to_numpy(labels).reshape(-1).tolist()
        if len(set(lab_host)) != len(lab_host):
            raise ValueError("Parameter 'labels' must be unique")
        if lab_host != sorted(lab_host):
            raise ValueError("Parameter 'labels' must be ordered")
        if len(lab_host) != k:
            raise ValueError(f"Number of given labels, {len(lab_host)}, not equal to the number of columns "
                             f"in 'y_score', {k}")
        classes = _int_list(xp, dev, lab_host)
        checks.add(xp.all(_encode(xp, t, classes) < k),
                   ValueError("'y_true' contains labels not in parameter 'labels'"))
    elif classes.shape[0] != k:
        checks.settle()
        raise ValueError("Number of classes in y_true not equal to the number of columns in 'y_score'")
    sums = xp.sum(s, axis=1)
    checks.add(xp.all(xp.abs(sums - 1.0) <= 1e-8 + 1e-5 * xp.abs(sums)),
               ValueError("Target scores need to be probabilities for multiclass roc_auc, i.e. they should "
                          "sum up to 1.0 over classes"))
    if average == "micro":
        r2, n_pos = _rank_sum2(xp, xp.reshape(s, (-1,)), xp.reshape(t[:, None] == classes[None, :], (-1,)))
        got = fetch(xp, [r2, n_pos] + checks.parts(), xp.int64)
        checks.raise_failed(got)
        return _auc_from_ranks(got[0][0], got[1][0], n * k)
    cols = xp.reshape(xp.permute_dims(s, (1, 0)), (-1,))  # column-major copy: contiguous columns
    pairs = [_rank_sum2(xp, cols[c * n:(c + 1) * n], t == classes[c]) for c in range(k)]
    got = fetch(xp, [xp.stack([r for r, _ in pairs]), xp.stack([c for _, c in pairs])] + checks.parts(),
                 xp.int64)
    checks.raise_failed(got)
    scores = [_auc_from_ranks(r2, n_pos, n) for r2, n_pos in zip(got[0], got[1])]
    if average is None:
        return scores
    if average == "weighted":
        w = [float(v) for v in got[1]]
        if sum(w) == 0:
            return 0.0
        return _mean([v if wi else 0.0 for v, wi in zip(scores, w)], w)
    return _mean(scores)


def log_loss(y_true: Any, y_prob: Any, *, normalize: bool = True, labels: Any = None) -> float:
    """Cross-entropy -mean_i log p[i, y_i] of predicted probabilities (natural log).

    y_prob: (n, k) probabilities with columns in the order of the sorted labels (of
    ``labels``, or of y_true), or (n,) / (n, 1) probabilities of the positive class.
    Values are clipped to [eps, 1 - eps], eps the machine epsilon of y_prob's dtype (as
    scikit-learn); values outside [0, 1] are an error; rows not summing to one warn.
    ``normalize=False`` returns the sum instead of the mean.
    """
    xp, dev = _target(y_prob, y_true)
    checks = _Checks(xp)
    t = _labels(xp, dev, y_true, "y_true", checks)
    P = _floats(xp, dev, y_prob, "y_prob")
    if P.ndim == 1:
        P = P[:, None]
    if P.ndim != 2:
        raise ValueError(f"y_prob must have shape (n,) or (n, n_classes), got {tuple(P.shape)}")
    n = _n_samples(t, P)
    if P.shape[1] == 1:
        P = xp.concat([1.0 - P, P], axis=1)
    if labels is not None:
        given = _backends.to_numpy(labels).reshape(-1).tolist()
        if given != sorted(set(given)):
            warnings.warn(f"Labels passed were {given}. But this function assumes labels are ordered "
                          f"lexicographically. Pass the ordered labels={sorted(set(given))} and ensure that "
                          f"the columns of y_prob correspond to this ordering.", UserWarning, stacklevel=2)
        classes = _int_list(xp, dev, sorted(set(given)))
        checks.add(xp.all(_encode(xp, t, classes) < classes.shape[0]),
                   ValueError(f"y_true contains values not belonging to the passed labels {given}."))
    else:
        classes = _classes(xp, t)
    nc = classes.shape[0]
    if nc == 1 or nc != P.shape[1]:
        checks.settle()
    if nc == 1:
        one = _backends.to_numpy(classes).tolist()
        raise ValueError(f"y_true contains only one label ({one[0]}). Please provide the list of all expected "
                         f"class labels explicitly through the labels argument." if labels is None else
                         f"The labels array needs to contain at least two labels, got {one}.")
    if nc != P.shape[1]:
        raise ValueError(f"y_true and y_prob contain different number of classes: {nc} vs {P.shape[1]}. "
                         f"Please provide the true labels explicitly through the labels argument.")
    checks.add(xp.all(xp.isfinite(P)), ValueError("y_prob contains NaN or infinity"))
    checks.add(xp.max(P) <= 1.0, ValueError("y_prob contains values greater than 1"))
    checks.add(xp.min(P) >= 0.0, ValueError("y_prob contains values lower than 0"))
    eps = float(xp.finfo(P.dtype).eps)
    wide = _wide_float(xp, dev, P.dtype)
    sums = xp.sum(P, axis=1)
    rows_ok = xp.all(xp.abs(sums - 1.0) <= 1e-8 + math.sqrt(eps))  # isclose(sums, 1, rtol=sqrt(eps))
    onehot = _encode(xp, t, classes)[:, None] == xp.arange(nc, dtype=xp.int64, device=dev)[None, :]
    logp = xp.log(xp.astype(xp.clip(P, eps, 1.0 - eps), wide))
    total = -xp.sum(xp.where(onehot, logp, 0.0))
    got = fetch(xp, [total, xp.astype(rows_ok, wide)] + [xp.astype(f, wide) for f in checks.parts()], wide)
    checks.raise_failed(got)
    if not got[1][0]:
        warnings.warn("The y_prob values do not sum to one. Make sure to pass probabilities.", UserWarning,
                      stacklevel=2)
    return got[0][0] / n if normalize else got[0][0]


# ---------------------------------------------------------------- regression
def _regression(y_true: Any, y_pred: Any) -> tuple[Any, Array, Array]:
    """(xp, T, P) as 2-D float arrays (float64 where the device has it) of equal shape."""
    xp, dev = _target(y_pred, y_true)
    P = _floats(xp, dev, y_pred, "y_pred")
    T = _floats(xp, dev, y_true, "y_true")
    wide = _wide_float(xp, dev, xp.result_type(T.dtype, P.dtype))
    T, P = (xp.astype(a if a.ndim == 2 else xp.reshape(a, (-1, 1)), wide) for a in (T, P))
    if T.ndim != 2 or P.ndim != 2 or T.shape[1] != P.shape[1]:
        raise ValueError(f"y_true and y_pred have different number of output ({T.shape[1]}!={P.shape[1]})")
    _n_samples(T, P)
    return xp, T, P


def _multioutput(values: list[float], multioutput: Any, weights: list[float] | None = None) -> Any:
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return values
        if multioutput == "uniform_average":
            return _mean(values)
        if multioutput == "variance_weighted" and weights is not None:
            return _mean(values, weights) if any(w != 0 for w in weights) else _mean(values)
        raise ValueError(f"unknown multioutput {multioutput!r}: use 'raw_values', 'uniform_average'"
                         + (" or 'variance_weighted'" if weights is not None else "") + " or output weights")
    w = [float(v) for v in _backends.to_numpy(multioutput).reshape(-1).tolist()]
    if len(w) != len(values):
        raise ValueError(f"There must be equally many custom weights ({len(w)}) as outputs ({len(values)}).")
    return _mean(values, w)


def _per_output(xp: Any, T: Array, P: Array, what: str) -> list[float]:
    d = T - P
    err = xp.mean(d * d if what == "mse" else xp.abs(d), axis=0)
    got = fetch(xp, [err, xp.astype(xp.all(xp.isfinite(d)), err.dtype)], err.dtype)
    if not got[1][0]:
        raise ValueError("y_true or y_pred contains NaN or infinity")
    return got[0]


def mean_squared_error(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average") -> Any:
    """mean((y_true - y_pred)²) per output, then averaged (``multioutput``: "uniform_average",
    "raw_values" (a list) or output weights)."""
    xp, T, P = _regression(y_true, y_pred)
    return _multioutput(_per_output(xp, T, P, "mse"), multioutput)


def root_mean_squared_error(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average") -> Any:
    """sqrt(MSE) per output, then averaged like :func:`mean_squared_error`."""
    xp, T, P = _regression(y_true, y_pred)
    return _multioutput([math.sqrt(v) for v in _per_output(xp, T, P, "mse")], multioutput)


def mean_absolute_error(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average") -> Any:
    """mean(|y_true - y_pred|) per output, then averaged like :func:`mean_squared_error`."""
    xp, T, P = _regression(y_true, y_pred)
    return _multioutput(_per_output(xp, T, P, "mae"), multioutput)


def r2_score(y_true: Any, y_pred: Any, *, multioutput: Any = "uniform_average", force_finite: bool = True) -> Any:
    """Coefficient of determination 1 - Σ(y - ŷ)² / Σ(y - ȳ)² per output, then averaged
    ("uniform_average", "variance_weighted", "raw_values" or output weights).

    Fewer than two samples: NaN with an UndefinedMetricWarning. Constant y_true: 1.0 if
    predicted exactly, else 0.0 with ``force_finite=True`` (NaN / -inf without).
    """
    xp, T, P = _regression(y_true, y_pred)
    if T.shape[0] < 2:
        warnings.warn("R^2 score is not well-defined with less than two samples.", UndefinedMetricWarning,
                      stacklevel=2)
        return math.nan
    c = T - T[:1, :]  # shifted by the first sample: a constant y_true gives exactly zero variance
    d, c = T - P, c - xp.mean(c, axis=0)
    num, den = xp.sum(d * d, axis=0), xp.sum(c * c, axis=0)
    finite = xp.astype(xp.all(xp.isfinite(d)), num.dtype)
    got = fetch(xp, [num, den, finite], num.dtype)
    if not got[2][0]:
        raise ValueError("y_true or y_pred contains NaN or infinity")
    scores = []
    for a, b in zip(got[0], got[1]):
        if not force_finite:
            scores.append(1.0 - a / b if b != 0 else (math.nan if a == 0 else -math.inf))
        elif a == 0:
            scores.append(1.0)
        else:
            scores.append(1.0 - a / b if b != 0 else 0.0)
    return _multioutput(scores, multioutput, weights=got[1])
