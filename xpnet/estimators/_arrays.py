"""Where the estimators' arrays live: backends, devices, input validation and outputs.

NumPy arrays, pandas objects, lists and SciPy sparse matrices (CSR/CSC; other formats are
converted to CSR) are validated with scikit-learn's ``validate_data`` and outputs are NumPy.
Arrays of another array-API library (PyTorch, CuPy, array-api-strict) are not moved off their
device: with the default ``backend="numpy"`` the estimator trains with that
library on that device, and outputs (predictions, probabilities) come back in the input's
namespace and device; naming another ``backend`` (``"numpy:cpu"`` to force NumPy) trains there
and still returns outputs in the input's namespace and device. Class labels make one round trip
to the host to be encoded (``classes_`` is a NumPy array, as in scikit-learn; string labels
work). With ``sklearn.set_config(array_api_dispatch=True)``, predicting with arrays of a
namespace or device other than the one used in ``fit`` raises a ``ValueError`` (as
scikit-learn's array-API estimators do); without dispatch such inputs are converted.
"""
from __future__ import annotations

import numbers
from typing import Any

import array_api_compat
from sklearn import get_config
from sklearn.utils.validation import validate_data

import backends as _backends

from ..nn.inputs import check_source, to_device

__all__ = ["FLOAT_DTYPES", "get_backend", "input_backend", "host", "float_dtype_of", "validate_X",
           "sample_weights", "check_namespace", "to_output"]

FLOAT_DTYPES = ("float64", "float32")  # validate_data keeps these and converts anything else to the first
_BACKEND_CACHE: dict[tuple[str, str], Any] = {}


def get_backend(name: Any, device: Any = None) -> Any:
    """``backends.get(name, device)``, created once per (spec, device)."""
    if isinstance(name, _backends.Backend) and device is None:
        return name
    key = (str(getattr(name, "spec", name)), repr(device))
    be = _BACKEND_CACHE.get(key)
    if be is None:
        be = _BACKEND_CACHE[key] = _backends.get(name, device)
    return be


def _library(a: Any) -> str | None:
    """The backend name of an array xpnet computes on where it lives (None: NumPy and array-likes)."""
    if array_api_compat.is_torch_array(a):
        return "torch"
    if array_api_compat.is_cupy_array(a):
        return "cupy"
    return "strict" if type(a).__module__.startswith("array_api_strict") else None


def input_backend(a: Any) -> Any:
    """The backend an array lives on (None for NumPy, lists, pandas and other array-likes)."""
    library = _library(a)
    if library == "torch":
        return get_backend("torch", str(a.device))
    if library == "cupy":
        return get_backend("cupy", str(a.device.id))
    return None if library is None else get_backend("strict", a.device)


def host(a: Any) -> Any:
    """Device arrays to NumPy; anything else unchanged."""
    return _backends.to_numpy(a) if _library(a) is not None else a


def float_dtype_of(be: Any, a: Any) -> str:
    """float32 for float32 (or smaller float) device data, else float64 where supported."""
    xp = be.xp
    if a.dtype == xp.float32 or getattr(xp, "float16", None) is not None and a.dtype == xp.float16:
        return "float32"
    try:
        be.dtype("float64")
    except ValueError:
        return "float32"
    return "float64"


def validate_X(est: Any, X: Any, reset: bool) -> tuple[Any, Any]:
    """(validated X, its backend or None for NumPy-like input); device arrays stay where they are."""
    check_source(X, "X")  # a torch tensor that requires grad, a DataFrame with text columns: one line
    in_be = input_backend(X)
    if in_be is None:
        return validate_data(est, X, reset=reset, dtype=FLOAT_DTYPES, accept_sparse=["csr", "csc"]), None
    xp = in_be.xp
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead (shape {tuple(X.shape)}). "
                         "Reshape your data either using array.reshape(-1, 1) if your data has a "
                         "single feature or array.reshape(1, -1) if it contains a single sample.")
    for axis, what in ((0, "sample(s)"), (1, "feature(s)")):
        if X.shape[axis] < 1:
            raise ValueError(f"Found array with 0 {what} (shape={tuple(X.shape)}) while a minimum of 1 "
                             "is required.")
    validate_data(est, X, reset=reset, skip_check_array=True)
    if xp.isdtype(X.dtype, "complex floating"):
        raise ValueError("Complex data not supported")
    if not xp.isdtype(X.dtype, "real floating"):
        X = xp.astype(X, in_be.dtype(float_dtype_of(in_be, X)))
    if not bool(in_be.to_numpy(xp.all(xp.isfinite(X)))):
        raise ValueError("Input X contains NaN or infinity.")
    return X, in_be


def sample_weights(sample_weight: Any, n: int, be: Any, dtype: Any) -> Any:
    """Validated sample weights as a (n,) array of ``dtype`` on ``be``, or None."""
    if sample_weight is None:
        return None
    xp = be.xp
    if isinstance(sample_weight, numbers.Real):
        sw = xp.full((n,), float(sample_weight), dtype=dtype, device=be.device)
    else:
        sw = to_device(be, sample_weight, "sample_weight")
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {tuple(sw.shape)}, expected {(n,)}!")
    if not xp.isdtype(sw.dtype, ("real floating", "integral", "bool")):
        raise ValueError(f"sample_weight must hold real numbers, got dtype {sw.dtype}")
    sw = xp.astype(sw, dtype)
    finite, negative, all_zero = be.to_numpy(xp.stack([xp.all(xp.isfinite(sw)), xp.any(sw < 0.0),
                                                       xp.all(sw == 0.0)]))
    if not finite:
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if negative:
        raise ValueError("Negative values in data passed to sample_weight")
    if all_zero:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sw


def check_namespace(est: Any, in_be: Any, method: str) -> None:
    """With array_api_dispatch on, refuse inputs from another namespace/device than fit's."""
    if not get_config().get("array_api_dispatch", False):
        return
    spec = "numpy" if in_be is None else in_be.spec
    if spec != est._input_spec:
        raise ValueError(
            f"Inputs passed to {type(est).__name__}.{method}() must use the same namespace and the "
            f"same device as those passed to fit(). fit used {est._input_spec}, {method} got {spec}. "
            f"Convert X, or refit, or disable array_api_dispatch to let the estimator convert inputs.")


def to_output(be: Any, a: Any, in_be: Any) -> Any:
    """An array on ``be``, moved to the caller's namespace and device (NumPy for host input)."""
    if in_be is None:
        return be.to_numpy(a)
    if in_be == be:
        return a
    return in_be.asarray(be.to_numpy(a))
