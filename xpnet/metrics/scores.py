"""Score metrics: exact rank-based ROC AUC, and log loss of probabilities."""
from __future__ import annotations

import math
import warnings
from typing import Any

import backends as _backends

from .._xp import Array, fetch
from ._inputs import (
    UndefinedMetricWarning,
    _Checks,
    _classes,
    _encode,
    _floats,
    _int_list,
    _labels,
    _mean,
    _n_samples,
    _target,
    _wide_float,
)

__all__ = ["roc_auc_score", "log_loss"]


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


