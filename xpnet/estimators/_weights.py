"""``coefs_`` and ``intercepts_``: the Dense layers' W and b as NumPy arrays that write through.

The arrays are slices of one host image of the flat parameters, placed by the network's Layout.
On CPU backends (NumPy, PyTorch on CPU, array-api-strict) that image *is* the parameters' memory,
so an in-place edit (``est.coefs_[0][...] = 0``) edits the network; on GPU backends it is a copy,
written back to the device before the network is next used (predict, or fit with ``warm_start``,
or ``partial_fit``). Assigning an item (``est.coefs_[0] = W``) or the whole list
(``est.coefs_ = [W0, W1]``) copies the values into place; shapes must match. Before any fit the
assigned lists are kept as given and become the starting weights of the first ``partial_fit`` or
warm-started ``fit``, as in scikit-learn.
"""
from __future__ import annotations

import numbers
from typing import Any

from sklearn.utils.validation import check_is_fitted

import backends as _backends

__all__ = ["DenseArrays", "HostWeights", "WeightsMixin"]

_ATTRS = {"coefs": "W", "intercepts": "b"}


class DenseArrays(list):
    """One NumPy array per Dense layer (depth-first); assigning an item copies into that array."""

    def __init__(self, arrays: list, what: str):
        super().__init__(arrays)
        self.what = what

    def __setitem__(self, i: Any, value: Any) -> None:
        if not isinstance(i, numbers.Integral):
            raise TypeError(f"{self.what} items are set one layer at a time (an int index), got {i!r}")
        target = list.__getitem__(self, i)
        host = _backends.to_numpy(value)
        if tuple(host.shape) != tuple(target.shape):
            raise ValueError(f"{self.what}[{i}] must have shape {tuple(target.shape)} (the network's layer), "
                             f"got {tuple(host.shape)}")
        target[...] = host

    def assign(self, values: Any) -> None:
        """Copy a whole list of arrays into place."""
        values = list(values)
        if len(values) != len(self):
            raise ValueError(f"{self.what} needs {len(self)} arrays (one per Dense layer), got {len(values)}")
        for i, v in enumerate(values):
            self[i] = v


class HostWeights:
    """The host image of ``model``'s parameters and the ``coefs`` / ``intercepts`` lists over it."""

    def __init__(self, model: Any):
        be = model.backend
        self.model, self.copied = model, be.on_gpu  # CPU backends hand out views of their memory
        self.image = image = be.to_numpy(model.params)
        for which, attr in _ATTRS.items():
            views = [image[e.offset:e.stop].reshape(e.shape) for e in model.layout.params if e.attr == attr]
            setattr(self, which, DenseArrays(views, f"{which}_"))

    def push(self) -> None:
        """Write a copied image back to the device."""
        if self.copied:
            self.model.params[...] = self.model.backend.asarray(self.image)


class WeightsMixin:
    """``coefs_`` / ``intercepts_`` of an estimator whose network is ``model_`` (module docstring)."""

    @property
    def coefs_(self) -> list:
        """Weight matrices (fan_in, fan_out) of the Dense layers, as NumPy arrays that write through."""
        return self._dense("coefs")

    @coefs_.setter
    def coefs_(self, value: Any) -> None:
        self._assign_dense("coefs", value)

    @property
    def intercepts_(self) -> list:
        """Bias vectors of the Dense layers, as NumPy arrays that write through."""
        return self._dense("intercepts")

    @intercepts_.setter
    def intercepts_(self, value: Any) -> None:
        self._assign_dense("intercepts", value)

    def _dense(self, which: str) -> list:
        if "model_" not in self.__dict__:
            pending = self.__dict__.get(f"_pending_{which}")
            if pending is None:
                check_is_fitted(self, "model_")
            return pending
        return getattr(self._host_weights(), which)

    def _assign_dense(self, which: str, value: Any) -> None:
        if "model_" not in self.__dict__:
            self.__dict__[f"_pending_{which}"] = value if isinstance(value, list) else list(value)
        else:
            getattr(self._host_weights(), which).assign(value)

    def _host_weights(self) -> HostWeights:
        hw = self.__dict__.get("_weights")
        if hw is None or hw.model is not self.model_:
            hw = self.__dict__["_weights"] = HostWeights(self.model_)
        return hw

    def _take_pending(self) -> None:
        """Copy ``coefs_`` / ``intercepts_`` assigned before the network existed into it."""
        for which in _ATTRS:
            pending = self.__dict__.pop(f"_pending_{which}", None)
            if pending is not None:
                getattr(self._host_weights(), which).assign(pending)
        self._push_weights()

    def _push_weights(self) -> None:
        """Before the network is used: a copied image's edits go to the device."""
        hw = self.__dict__.get("_weights")
        if hw is not None and hw.model is self.model_:
            hw.push()

    def _release_weights(self) -> None:
        """After training: a copied image is stale (views of CPU memory stay valid)."""
        hw = self.__dict__.get("_weights")
        if hw is not None and hw.copied:
            del self.__dict__["_weights"]
