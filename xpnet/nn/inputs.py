"""Data on its way into a network: features and targets checked and placed on the network's device."""
from __future__ import annotations

from typing import Any

import backends as _backends

from .._xp import Array, device, namespace
from .losses import one_hot

__all__ = ["check_source", "to_device", "as_input", "targets", "is_continuous"]

_NON_NUMERIC = ("U", "S", "O", "c", "V", "M", "m")  # NumPy dtype kinds xpnet refuses (strings, objects, ...)


def check_source(A: Any, name: str) -> None:
    """Refuse, in one line, data xpnet cannot take as it is: a torch tensor that requires grad (xpnet derives
    its own gradients; copying it would silently cut it from its graph) and a pandas DataFrame with
    non-numeric columns (named)."""
    if getattr(A, "requires_grad", False) is True:
        raise ValueError(f"{name} is a torch tensor that requires grad: pass {name}.detach() (xpnet computes its "
                         f"own gradients and records no autograd graph)")
    dtypes = getattr(A, "dtypes", None)
    if dtypes is not None and hasattr(A, "columns") and hasattr(dtypes, "items"):
        bad = [f"{c!r} ({d})" for c, d in dtypes.items() if getattr(d, "kind", "O") not in "biuf"]
        if bad:
            raise ValueError(f"{name} (a pandas DataFrame) has non-numeric columns {', '.join(bad[:5])}"
                             f"{' ...' if len(bad) > 5 else ''}: xpnet needs real numbers (encode categories first, "
                             f"e.g. with pandas.get_dummies)")


def to_device(backend: Any, A: Any, name: str) -> Array:
    """``A`` as an array of ``backend`` on its device: arrays already there as they are, anything else
    (NumPy, lists, other libraries' arrays) copied once. Non-numeric data is refused in one line."""
    check_source(A, name)
    try:
        host = _backends.to_numpy(A) if isinstance(A, (list, tuple)) else A
        kind = getattr(getattr(host, "dtype", None), "kind", None)  # NumPy-style dtypes (host data)
        if kind not in _NON_NUMERIC:
            try:
                if namespace(host) is backend.xp and device(host) == backend.device:
                    return host
            except TypeError:  # not an array-API array
                pass
            return backend.asarray(host)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a library traceback
        raise ValueError(f"{name} could not be converted to a {backend.spec} array: {exc}") from None
    if kind in ("U", "S") and name.startswith("y"):
        raise ValueError(f"{name} holds strings (dtype {host.dtype}): encode the labels as integers 0..k-1 "
                         f"(e.g. sklearn.preprocessing.LabelEncoder) or use xpnet.XPNetClassifier, "
                         f"which encodes them")
    what = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers"}.get(kind, "non-numbers")
    raise ValueError(f"{name} holds {what} (dtype {host.dtype}): xpnet needs real numbers "
                     f"(convert it, e.g. with .astype(float), after encoding any categories)")


def as_input(net: Any, X: Any, name: str = "X") -> Array:
    """X as an (n, n_inputs) array of the network's dtype on its device (a network whose input
    width is still open takes X's). Integer and boolean inputs are converted to floats. A sparse X
    (SciPy) stays sparse: a ``backends.SparseRows`` of the network's dtype on its device."""
    if _backends.is_sparse(X):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (samples, features), got shape {tuple(X.shape)}")
        if net.n_inputs is None:
            net.build(int(X.shape[1]))
        if X.shape[1] != net.n_inputs:
            raise ValueError(f"{name} has {X.shape[1]} features but the model expects {net.n_inputs}")
        return _backends.sparse_rows(net.backend, X, net.dtype)
    X = to_device(net.backend, X, name)
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {tuple(X.shape)}{hint}")
    if net.n_inputs is None:
        net.build(int(X.shape[1]))
    if X.shape[1] != net.n_inputs:
        raise ValueError(f"{name} has {X.shape[1]} features but the model expects {net.n_inputs}")
    return X if X.dtype == net.dtype else net.xp.astype(X, net.dtype)


def targets(net: Any, y: Any, name: str = "y") -> Array:
    """y as the objective expects it, on the device: (n, k) floats.

    sigmoid output: 0/1 labels, shape (n,) or (n, k) for k units; softmax output: integer
    labels in [0, k) of shape (n,) (one-hot encoded here) or (n, k) one-hot; identity output:
    values of shape (n,) or (n, k).
    """
    xp, k, output = net.xp, net.n_outputs, net.output
    Y = to_device(net.backend, y, name)
    if xp.isdtype(Y.dtype, "real floating") and not bool(xp.all(xp.isfinite(Y))):
        raise ValueError(f"{name} contains NaN or infinity")
    given = tuple(Y.shape)
    if Y.ndim == 1 and output != "softmax":
        Y = xp.reshape(Y, (-1, 1))
    if output == "softmax" and Y.ndim == 1:
        if xp.isdtype(Y.dtype, "real floating"):
            if not bool(xp.all(Y == xp.round(Y))):
                raise ValueError(f"{name} must hold integer class labels for a softmax output")
        elif not xp.isdtype(Y.dtype, "integral"):
            raise ValueError(f"{name} must hold integer class labels 0..{k - 1}, got dtype {Y.dtype}")
        labels = xp.astype(Y, xp.int64)
        if Y.shape[0] and (int(xp.min(labels)) < 0 or int(xp.max(labels)) >= k):
            raise ValueError(f"{name} has labels outside [0, {k - 1}] (the model has {k} output units)")
        return one_hot(xp, labels, k, net.dtype)
    if Y.ndim != 2 or Y.shape[1] != k:
        hint = (f" (regression targets need one column per output unit; class labels must be integers "
                f"0..{k - 1})" if output == "identity" and len(given) == 1 else "")
        raise ValueError(f"{name} has shape {given} but the model has {k} output unit(s): expected "
                         f"{'(n,) or (n, 1)' if k == 1 else f'(n, {k})'}{hint}")
    Y = Y if Y.dtype == net.dtype else xp.astype(Y, net.dtype)
    if output == "sigmoid" and Y.shape[0] and not bool(xp.all((Y == 0.0) | (Y == 1.0))):
        raise ValueError(f"{name} must hold 0/1 labels for a sigmoid output (for regression use output='identity')")
    return Y


def is_continuous(net: Any, y: Any) -> bool:
    """Whether y holds non-integer floats (a regression target)."""
    xp = net.xp
    Y = to_device(net.backend, y, "y")
    return (bool(xp.isdtype(Y.dtype, "real floating")) and Y.shape[0] > 0 and bool(xp.all(xp.isfinite(Y)))
            and not bool(xp.all(Y == xp.round(Y))))
