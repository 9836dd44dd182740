"""Label metrics: accuracy, precision/recall/F-scores, the confusion matrix."""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

from .._xp import fetch
from ._inputs import (
    _AVERAGES,
    UndefinedMetricWarning,
    _bincount,
    _Checks,
    _classes,
    _encode,
    _int_list,
    _labels,
    _mean,
    _n_samples,
    _target,
)

__all__ = ["accuracy_score", "precision_recall_fscore_support", "precision_score", "recall_score", "f1_score",
           "fbeta_score", "confusion_matrix"]


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


