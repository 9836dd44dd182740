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
from ._inputs import UndefinedMetricWarning
from .classification import (
                             accuracy_score,
                             confusion_matrix,
                             f1_score,
                             fbeta_score,
                             precision_recall_fscore_support,
                             precision_score,
                             recall_score,
)
from .regression import (
                             mean_absolute_error,
                             mean_squared_error,
                             r2_score,
                             root_mean_squared_error,
)
from .scores import log_loss, roc_auc_score

__all__ = [
    "UndefinedMetricWarning", "accuracy_score", "precision_recall_fscore_support", "precision_score",
    "recall_score", "f1_score", "fbeta_score", "confusion_matrix", "roc_auc_score", "log_loss",
    "mean_squared_error", "root_mean_squared_error", "mean_absolute_error", "r2_score",
]

