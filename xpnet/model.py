"""The multilayer perceptron: a list of layers over one flat parameter buffer.

Parameters live in one 1-D array ``params`` laid out as
``[W₀, W₁, …, W_L, b₀, b₁, …, b_L]`` (each W row-major, shape (fan_in, fan_out)),
with gradients in ``grads`` of the same layout. ``weights[i]``, ``biases[i]`` and the
gradient views are reshaped slices of those buffers, so the optimizer updates every
parameter with a few whole-buffer operations, and L2 acts on the contiguous weight block.
"""
from __future__ import annotations

from typing import Any, Sequence

import backends as _backends

from . import layers as L
from . import random as xrandom
from ._xp import Array, device, fast_path, namespace
from .losses import OUTPUT_OF_LOSS, get_loss, l2_penalty, one_hot

__all__ = ["MLP", "OUTPUTS"]

OUTPUTS = ("sigmoid", "softmax", "identity")
_DTYPES = ("float32", "float64")
_NON_NUMERIC = ("U", "S", "O", "c", "V", "M", "m")  # NumPy dtype kinds xpnet refuses (strings, objects, ...)


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    try:
        out = [int(s) for s in sizes]
        ok = len(out) >= 2 and all(o == s and o >= 1 for o, s in zip(out, sizes))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"sizes must be a list of at least two positive integers "
                         f"(inputs, hidden..., outputs), e.g. [2, 64, 32, 1]; got {sizes!r}")
    return out


class MLP:
    """Fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Hidden layers: Dense, then ``activation``, then (if its rate > 0) Dropout.
    The last Dense produces logits z; ``output`` maps them to predictions:
    "sigmoid" (binary / multi-label), "softmax" (classes), "identity" (regression), or
    "auto": sigmoid for one output unit, softmax for several, switched to identity by
    :func:`xpnet.fit` when the targets are continuous.

    Args:
        sizes: layer widths, e.g. ``[2, 64, 32, 1]``.
        activation: hidden activation name (relu, leaky_relu, sigmoid, tanh, gelu, identity).
        output: output activation (see above).
        dropout: rate for every hidden layer, or one rate per hidden layer.
        init: he_normal, he_uniform, glorot_normal, glorot_uniform (default: he_normal for
            relu-like activations, glorot_normal otherwise). Biases start at zero.
        seed: key of every random draw (init, dropout, shuffles): same seed, same bits on
            every backend.
        backend: a backend spec ("numpy", "cupy", "torch", "torch:cuda", "strict:device1", ...)
            or a ``backends.Backend``.
        dtype: "float32" (default) or "float64".
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", output: str = "auto",
                 dropout: float | Sequence[float] = 0.0, init: str | None = None, seed: int = 0,
                 backend: Any = "numpy", dtype: str = "float32"):
        self.sizes = _check_sizes(sizes)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if str(dtype) not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if output not in OUTPUTS + ("auto",):
            raise ValueError(f"unknown output {output!r}: use one of {OUTPUTS + ('auto',)}")
        if activation not in L.ACTIVATIONS or activation == "softmax":
            names = sorted(set(L.ACTIVATIONS) - {"softmax"})
            raise ValueError(f"unknown activation {activation!r}: use one of {names}")
        n_hidden = len(self.sizes) - 2
        rates = [float(dropout)] * n_hidden if isinstance(dropout, (int, float)) else [float(r) for r in dropout]
        if len(rates) != n_hidden or not all(0.0 <= r < 1.0 and xrandom.dropout_threshold(r) < 65536
                                             for r in rates):
            raise ValueError(f"dropout must be a rate in [0, 1) or one rate per hidden layer "
                             f"({n_hidden}), got {dropout!r}")
        default_init = "he_normal" if activation in ("relu", "leaky_relu", "gelu") else "glorot_normal"
        init = init or default_init
        if init not in L.INITS:
            raise ValueError(f"unknown init {init!r}: use one of {sorted(L.INITS)}")

        self.backend = _backends.get(backend)
        self.xp = self.backend.xp
        self.activation, self.init, self.seed, self.dropout = activation, L.INITS[init], seed, rates
        self.dtype_name = str(dtype)
        self.dtype = getattr(self.xp, self.dtype_name)
        self.output_auto = output == "auto"
        self.output = ("sigmoid" if self.sizes[-1] == 1 else "softmax") if self.output_auto else output

        xp, dev = self.xp, self.backend.device
        shapes = list(zip(self.sizes[:-1], self.sizes[1:]))
        self.n_weights = sum(a * b for a, b in shapes)
        self.params = xp.zeros(self.n_weights + sum(self.sizes[1:]), dtype=self.dtype, device=dev)
        self.grads = xp.zeros_like(self.params)
        off = 0
        for i, (a, b) in enumerate(shapes):
            w = L.init_weights(xp, self.init, a, b, seed, xrandom.STREAMS["init"] + i, self.dtype, dev)
            self.params[off:off + a * b] = xp.reshape(w, (-1,))
            off += a * b
        self._build_layers()

    # ------------------------------------------------------------------ structure
    def _views(self, flat: Array) -> tuple[list[Array], list[Array]]:
        xp, ws, bs, off = self.xp, [], [], 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            ws.append(xp.reshape(flat[off:off + a * b], (a, b)))
            off += a * b
        for b in self.sizes[1:]:
            bs.append(flat[off:off + b])
            off += b
        return ws, bs

    def _build_layers(self) -> None:
        xp = self.xp
        self.weights, self.biases = self._views(self.params)
        self.weight_grads, self.bias_grads = self._views(self.grads)
        self._flat_weights, self._flat_weight_grads = self.params[:self.n_weights], self.grads[:self.n_weights]
        counters = [layer.counter for layer in getattr(self, "layers", []) if isinstance(layer, L.Dropout)]
        self.layers: list[Any] = []
        last = len(self.weights) - 1
        for i, (W, b, gW, gb) in enumerate(zip(self.weights, self.biases, self.weight_grads, self.bias_grads)):
            self.layers.append(L.Dense(xp, W, b, gW, gb, need_dx=i > 0))
            if i < last:
                self.layers.append(L.make_activation(self.activation, xp))
                if self.dropout[i] > 0.0:
                    self.layers.append(L.Dropout(xp, self.dropout[i], self.seed,
                                                 xrandom.STREAMS["dropout"] + i, self.backend.device))
        for layer, c in zip(self.dropout_layers, counters):
            layer.counter = c
        self.output_layer = L.make_activation(self.output, xp)

    @property
    def dropout_layers(self) -> list[L.Dropout]:
        return [layer for layer in self.layers if isinstance(layer, L.Dropout)]

    @property
    def n_params(self) -> int:
        return int(self.params.shape[0])

    def set_output(self, output: str) -> None:
        """Change the output activation (sigmoid, softmax or identity)."""
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}: use one of {OUTPUTS}")
        self.output, self.output_auto = output, False
        self.output_layer = L.make_activation(output, self.xp)

    def __repr__(self) -> str:
        return (f"MLP({self.sizes}, activation={self.activation!r}, output={self.output!r}, "
                f"dropout={self.dropout}, init={self.init!r}, seed={self.seed}, "
                f"backend={self.backend.spec!r}, dtype={self.dtype_name!r})")

    # ------------------------------------------------------------------ data
    def as_input(self, X: Any, name: str = "X") -> Array:
        """X as a (n, sizes[0]) array of the model's dtype on the model's device.

        NumPy arrays, lists and other DLPack arrays are copied to the device once;
        arrays already there are used as they are (cast if their dtype differs:
        integer and boolean inputs are converted to the model's float dtype).
        """
        X = self._on_device(X, name)
        if X.ndim != 2:
            hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
            raise ValueError(f"{name} must be 2-D (samples, features), got shape {tuple(X.shape)}{hint}")
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"{name} has {X.shape[1]} features but the model expects {self.sizes[0]} "
                             f"(sizes[0] = {self.sizes[0]})")
        return X if X.dtype == self.dtype else self.xp.astype(X, self.dtype)

    def _on_device(self, A: Any, name: str) -> Array:
        try:
            host = _backends.to_numpy(A) if isinstance(A, (list, tuple)) else A
            kind = getattr(getattr(host, "dtype", None), "kind", None)  # NumPy-style dtypes (host data)
            if kind not in _NON_NUMERIC:
                try:
                    if namespace(host) is self.xp and device(host) == self.backend.device:
                        return host
                except TypeError:  # not an array-API array
                    pass
                return self.backend.asarray(host)
        except Exception as exc:  # noqa: BLE001 - one clear line instead of a library traceback
            raise ValueError(f"{name} could not be converted to a {self.backend.spec} array: {exc}") from None
        if kind in ("U", "S") and name.startswith("y"):
            raise ValueError(f"{name} holds strings (dtype {host.dtype}): encode the labels as integers 0..k-1 "
                             f"(e.g. sklearn.preprocessing.LabelEncoder) or use xpnet.XPNetClassifier, "
                             f"which encodes them")
        what = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers"}.get(kind, "non-numbers")
        raise ValueError(f"{name} holds {what} (dtype {host.dtype}): xpnet needs real numbers "
                         f"(convert it, e.g. with .astype(float), after encoding any categories)")

    def targets(self, y: Any, name: str = "y") -> Array:
        """y as the loss expects it, on the device: (n, k) floats.

        sigmoid output: 0/1 labels, shape (n,) or (n, k) for k units; softmax output:
        integer labels in [0, k) of shape (n,) (one-hot encoded here) or (n, k) one-hot;
        identity output: values of shape (n,) or (n, k).
        """
        xp, k = self.xp, self.sizes[-1]
        Y = self._on_device(y, name)
        if xp.isdtype(Y.dtype, "real floating") and not bool(xp.all(xp.isfinite(Y))):
            raise ValueError(f"{name} contains NaN or infinity")
        given = tuple(Y.shape)
        if Y.ndim == 1 and not (self.output == "softmax"):
            Y = xp.reshape(Y, (-1, 1))
        if self.output == "softmax" and Y.ndim == 1:
            if xp.isdtype(Y.dtype, "real floating"):
                if not bool(xp.all(Y == xp.round(Y))):
                    raise ValueError(f"{name} must hold integer class labels for a softmax output")
            elif not xp.isdtype(Y.dtype, "integral"):
                raise ValueError(f"{name} must hold integer class labels 0..{k - 1}, got dtype {Y.dtype}")
            labels = xp.astype(Y, xp.int64)
            if Y.shape[0] and (int(xp.min(labels)) < 0 or int(xp.max(labels)) >= k):
                raise ValueError(f"{name} has labels outside [0, {k - 1}] "
                                 f"(the model has {k} output units)")
            return one_hot(xp, labels, k, self.dtype)
        if Y.ndim != 2 or Y.shape[1] != k:
            hint = (f" (regression targets need one column per output unit; class labels must be integers "
                    f"0..{k - 1})" if self.output == "identity" and len(given) == 1 else "")
            raise ValueError(f"{name} has shape {given} but the model has {k} output unit(s): expected "
                             f"{'(n,) or (n, 1)' if k == 1 else f'(n, {k})'}{hint}")
        Y = Y if Y.dtype == self.dtype else xp.astype(Y, self.dtype)
        if self.output == "sigmoid" and Y.shape[0] and not bool(xp.all((Y == 0.0) | (Y == 1.0))):
            raise ValueError(f"{name} must hold 0/1 labels for a sigmoid output "
                             f"(for regression use output='identity')")
        return Y

    # ------------------------------------------------------------------ forward / backward
    def logits(self, X: Any, training: bool = False) -> Array:
        """Pre-activation z of the output layer, shape (n, sizes[-1])."""
        a = self.as_input(X)
        for layer in self.layers:
            a, _ = layer.forward(a, training)
        return a

    def forward(self, X: Any, training: bool = False) -> Array:
        """Output activations: probabilities (sigmoid / softmax) or values (identity).

        Never modifies X. With ``training=True`` dropout is applied (and its counter advances).
        """
        return self.output_layer.forward(self.logits(X, training))[0]

    __call__ = forward

    def predict(self, X: Any) -> Array:
        """Class labels (threshold 0.5 for sigmoid, argmax for softmax) or regression values."""
        xp, z = self.xp, self.logits(X)
        if self.output == "softmax":
            return xp.argmax(z, axis=1)
        if self.output == "sigmoid":
            p = xp.astype(z > 0.0, xp.int64)
            return p[:, 0] if p.shape[1] == 1 else p
        return z

    def _forward_train(self, X: Array) -> tuple[Array, list[Any]]:
        caches = []
        for layer in self.layers:
            X, cache = layer.forward(X, True)
            caches.append(cache)
        return X, caches

    def _backward(self, dz: Array, caches: list[Any]) -> None:
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            dz = layer.backward(dz, cache)
            if dz is None:
                break

    def loss_fn(self, loss: str | None) -> tuple[Any, bool]:
        """(loss function, fused?) for a loss name, checked against the output activation."""
        name = loss or {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}[self.output]
        fn = get_loss(name)
        fused_with = OUTPUT_OF_LOSS[fn]
        if fused_with is not None and fused_with != self.output:
            raise ValueError(f"loss {name!r} works on {fused_with} outputs but the model's output is "
                             f"{self.output!r}: pass output={fused_with!r} to MLP or choose another loss")
        kernel = fast_path(self.xp, fn.__name__)
        if kernel is not None:
            fn = _FusedLoss(kernel)
        return fn, fused_with is not None

    def _step(self, X: Array, Y: Array, loss_fn: Any, fused: bool, l2: float) -> tuple[Array, Array]:
        """Forward + backward on a prepared batch: fills ``grads``, returns (loss, logits)."""
        xp = self.xp
        z, caches = self._forward_train(X)
        if fused:
            value, dz = loss_fn(xp, z, Y)
        else:
            out, out_cache = self.output_layer.forward(z)
            value, dout = loss_fn(xp, out, Y)
            dz = self.output_layer.backward(dout, out_cache)
        self._backward(dz, caches)
        if l2:
            penalty, grad = l2_penalty(xp, self._flat_weights, l2)
            value = value + penalty
            self._flat_weight_grads += grad
        return value, z

    def loss_and_grads(self, X: Any, y: Any, loss: str | None = None,
                       l2: float = 0.0) -> tuple[Array, list[Array], list[Array]]:
        """Batch-mean loss (+ λ/2 ΣW²) with dropout active, and its gradients.

        Returns ``(loss, weight_grads, bias_grads)``: a 0-d array and lists of arrays shaped
        like ``weights``/``biases``. The gradient arrays are views of ``model.grads`` and are
        overwritten by the next call: copy them to keep them.
        """
        fn, fused = self.loss_fn(loss)
        value, _ = self._step(self.as_input(X), self.targets(y), fn, fused, float(l2))
        return value, self.weight_grads, self.bias_grads

    # ------------------------------------------------------------------ state
    def config(self) -> dict:
        """The constructor arguments (JSON-serializable)."""
        return {"sizes": self.sizes, "activation": self.activation, "output": self.output,
                "dropout": self.dropout, "init": self.init, "seed": self.seed, "dtype": self.dtype_name}

    def state_dict(self) -> dict:
        """Backend-neutral state: config, NumPy copies of every weight and bias, dropout counters."""
        to_np = self.backend.to_numpy
        return {"config": self.config(),
                "weights": [to_np(w).copy() for w in self.weights],  # copies, not views of params
                "biases": [to_np(b).copy() for b in self.biases],
                "dropout_counters": [layer.counter for layer in self.dropout_layers]}

    def load_state_dict(self, state: dict) -> None:
        """Load a state from :meth:`state_dict` (made on any backend) into this model."""
        cfg = state.get("config", {})
        if cfg.get("sizes", self.sizes) != self.sizes:
            raise ValueError(f"state is for an MLP of sizes {cfg.get('sizes')}, this model has {self.sizes}")
        ws, bs = state["weights"], state["biases"]
        if len(ws) != len(self.weights) or len(bs) != len(self.biases):
            raise ValueError("state has the wrong number of weight/bias arrays for this model")
        for dst, src in list(zip(self.weights, ws)) + list(zip(self.biases, bs)):
            arr = self._on_device(src, "state array")
            if tuple(arr.shape) != tuple(dst.shape):
                raise ValueError(f"state array of shape {tuple(arr.shape)} does not fit parameter of shape "
                                 f"{tuple(dst.shape)}")
            dst[...] = self.xp.astype(arr, self.dtype)
        for layer, c in zip(self.dropout_layers, state.get("dropout_counters", [])):
            layer.counter = int(c)

    @classmethod
    def from_state_dict(cls, state: dict, backend: Any = "numpy", dtype: str | None = None) -> "MLP":
        """A new model on ``backend`` with the parameters of ``state``."""
        cfg = dict(state["config"])
        if dtype:
            cfg["dtype"] = dtype
        model = cls(**cfg, backend=backend)
        model.load_state_dict(state)
        return model

    def copy_params(self) -> Array:
        """A device copy of the flat parameters (e.g. to restore the best epoch)."""
        return self.params * 1.0

    def set_params(self, flat: Array) -> None:
        """Overwrite the flat parameters in place."""
        self.params[...] = flat



class _FusedLoss:
    """A backend fast-path loss kernel behind the portable ``loss(xp, z, y)`` signature."""

    def __init__(self, kernel: Any):
        self.kernel = kernel

    def __call__(self, xp: Any, z: Array, y: Array) -> tuple[Array, Array]:
        return self.kernel(z, y)
