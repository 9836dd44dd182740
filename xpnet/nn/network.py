"""A network: a tree of layers over one flat parameter buffer, with an output head.

    net = xpnet.Network([Dense(64, 128, "relu"), BatchNorm1d(128), Dropout(0.1),
                         Residual([Dense(128, 128, "relu"), Dense(128, 128)]), Dense(128, 10, "softmax")])

Building (at construction, or at the first data when the input width is left open) gives
every layer its width, numbers the random layers (the k-th Dense initializes from stream
``init + k``, the k-th Dropout draws from ``dropout + k``: see :mod:`xpnet.random`), lays
every parameter out in ``params`` (see :class:`~xpnet.nn.layout.Layout`), draws the initial
values and binds each layer to its views. A trailing sigmoid/softmax (a last ``Dense(...,
"softmax")`` or a final ``Softmax()``) becomes the output head, fused with the loss in
training; otherwise ``output="auto"`` picks sigmoid for one unit and softmax for several.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import backends as _backends

from .. import _validate as check
from .._xp import Array
from . import inputs
from ._context import Context
from .activations import HEADS, Activation, make_activation
from .binding import bind_tree, bind_views
from .containers import Sequential
from .dense import Dense
from .dropout import Dropout
from .layer import Layer, layer_from_config
from .losses import l2_penalty
from .precision import Precision, as_precision, supported
from .state import load_state_dict, state_dict
from .tree import input_width, walk

__all__ = ["Network", "OUTPUTS", "DTYPES"]

OUTPUTS = ("sigmoid", "softmax", "identity")
DTYPES = ("float32", "float64")


class Network:
    """A tree of layers trained as one: ``params``, ``grads`` and ``buffers`` are flat arrays.

    Args:
        layers: a list of layers (nesting allowed) or one layer (e.g. a Sequential).
        output: "sigmoid", "softmax", "identity" or "auto" (see the module docstring;
            :func:`xpnet.fit` switches "auto" to identity for continuous targets).
        seed: key of every random draw (init, dropout, shuffles): same seed, same bits on every backend.
        backend: a backend spec ("numpy", "cupy", "torch:cuda", "strict:device1", ...) or a Backend.
        dtype: "float32" (default) or "float64": the parameters' (master) dtype.
        precision: "float32" (compute in ``dtype``), "float16" or "bfloat16" (compute in that dtype
            over float32 master parameters; see :mod:`xpnet.nn.precision`), or a ``Precision``.
    """

    def __init__(self, layers: Sequence[Any] | Layer, output: str = "auto", seed: int = 0,
                 backend: Any = "numpy", dtype: str = "float32", precision: Any = "float32"):
        self.seed = check.seed(seed)
        self.dtype_name = check.choice("dtype", str(dtype), DTYPES)
        self._requested_output = check.choice("output", output, OUTPUTS + ("auto",))
        root = layers if isinstance(layers, Sequential) else Sequential(
            [layers] if isinstance(layers, Layer) else layers)
        if not isinstance(layers, (list, tuple, Layer)):
            raise ValueError(f"layers must be a list of xpnet layers, got {layers!r:.80}")
        self.root = root
        self.backend = _backends.get(backend)
        self.xp = self.backend.xp
        self.dtype = self.backend.dtype(self.dtype_name)
        self.ctx = Context(self.xp, self.backend.device, self.dtype, self.seed)
        self.precision = self._check_precision(precision)
        self.n_inputs: int | None = None
        self._take_head()
        width = input_width(self.root)
        if isinstance(width, int):
            self.build(width)

    # ------------------------------------------------------------------ building
    def _take_head(self) -> None:
        """Find the output head among the last layers (see the module docstring)."""
        container, last = self.root, self.root.layers[-1]
        while isinstance(last, Sequential):
            container, last = last, last.layers[-1]
        found = None
        if isinstance(last, Activation) and last.name in HEADS and len(container.layers) > 1:
            found = last.name
            container.layers.pop()
        elif isinstance(last, Dense) and last.activation in HEADS:
            found = last.activation
            last.head = True
        requested = self._requested_output
        if found is not None and requested not in ("auto", found):
            raise ValueError(f"the last layer applies {found} but output={requested!r}: drop one of them")
        self.output = found or requested
        self.output_auto = self.output == "auto"

    def build(self, n_inputs: int) -> "Network":
        """Fix the input width (done by the first data when the first layer leaves it open)."""
        if self.n_inputs is not None:
            if n_inputs != self.n_inputs:
                raise ValueError(f"the network is built for {self.n_inputs} inputs, got {n_inputs}")
            return self
        n_in = check.integer("input width", n_inputs, low=1)
        n_out = self.root.build(n_in)
        if n_out is None:
            raise ValueError("the network's output width is unknown: give the last Dense its n_out")
        self.n_inputs, self.n_outputs = n_in, n_out
        if self.output_auto:
            self.output = "sigmoid" if n_out == 1 else "softmax"
        self.output_layer = make_activation(self.output)
        self.output_layer.bind(self.ctx, {}, {}, {})
        bound = bind_tree(self.root, self.ctx)
        self.layout, self.params, self.grads, self.buffers = bound.layout, bound.params, bound.grads, bound.buffers
        self.streams = bound.streams
        self._bind_compute()
        n = self.layout.n_decay
        self._decay_params, self._decay_grads = self.params[:n], self.grads[:n]
        self.dropout_layers = [layer for _, layer in walk(self.root) if isinstance(layer, Dropout)]
        self._dense = [layer for _, layer in walk(self.root) if isinstance(layer, Dense)]
        return self

    def _check_precision(self, precision: Any) -> Precision:
        return supported(as_precision(precision), self.backend, self.dtype_name)

    def _bind_compute(self) -> None:
        """Bind the layers to float16/bfloat16 copies of the parameters and gradients (``cparams``,
        ``cgrads``) under a low precision, else to the master arrays themselves."""
        if self.precision.low:
            cdtype = self.backend.dtype(self.precision.compute)
            self.cparams = self.xp.astype(self.params, cdtype)
            self.cgrads = self.xp.zeros_like(self.cparams)
        else:
            self.cparams = self.cgrads = None
        bind_views(self.root, self.layout, self.ctx, self.params if self.cparams is None else self.cparams,
                   self.grads if self.cgrads is None else self.cgrads, self.buffers)

    def set_precision(self, precision: Any) -> None:
        """Switch the compute precision ("float32", "float16", "bfloat16"); the parameters are kept."""
        self.precision = self._check_precision(precision)
        if self.n_inputs is not None:
            self._bind_compute()

    def _compute_input(self, X: Array) -> Array:
        """Refresh the compute copy of the parameters (one cast) and cast X, under a low precision."""
        if self.cparams is None:
            return X
        self.cparams[...] = self.xp.astype(self.params, self.cparams.dtype)
        return self.xp.astype(X, self.cparams.dtype)

    def __getattr__(self, name: str) -> Any:  # only reached for attributes that do not exist yet
        if name in ("params", "grads", "buffers", "layout", "n_outputs", "output_layer", "dropout_layers"):
            raise AttributeError(f"the network is not built yet ({name} does not exist): its first layer leaves "
                                 f"the input width open; call network.build(n_features) or give it data")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The top-level layers (the output head excluded)."""
        return self.root.layers

    @property
    def n_params(self) -> int:
        return self.layout.n_params

    @property
    def n_weights(self) -> int:
        """Number of parameters that take L2 (the leading block of ``params``)."""
        return self.layout.n_decay

    def _dense_views(self, attr: str, flat: Array) -> list[Array]:
        """Every Dense layer's ``attr`` as a view of the master buffer ``flat``, from the layout (the layers
        themselves are bound to the compute copies under a low precision)."""
        paths = [p for p, layer in walk(self.root) if isinstance(layer, Dense)]
        return [self.layout.of_layer(p)[attr].view(flat, self.xp) for p in paths]

    @property
    def weights(self) -> list[Array]:
        """Every Dense layer's W (views of ``params``), depth-first."""
        return self._dense_views("W", self.params)

    @property
    def biases(self) -> list[Array]:
        return self._dense_views("b", self.params)

    @property
    def weight_grads(self) -> list[Array]:
        """Every Dense layer's dL/dW (views of ``grads``, the float32 master gradients), depth-first."""
        return self._dense_views("W", self.grads)

    @property
    def bias_grads(self) -> list[Array]:
        return self._dense_views("b", self.grads)

    def named_params(self) -> Iterator[tuple[str, Array, Array]]:
        """(name, parameter view, gradient view) in ``params`` order."""
        for e in self.layout.params:
            yield e.name, e.view(self.params, self.xp), e.view(self.grads, self.xp)

    def set_output(self, output: str) -> None:
        """Change the output head (sigmoid, softmax or identity)."""
        self.output, self.output_auto = check.choice("output", output, OUTPUTS), False
        self.output_layer = make_activation(output)
        self.output_layer.bind(self.ctx, {}, {}, {})

    def reseed(self, seed: int) -> None:
        """Key later random draws (dropout masks) with ``seed``; the parameters are left as they are."""
        self.seed = check.seed(seed)
        self.ctx = Context(self.xp, self.backend.device, self.dtype, self.seed)
        for _, layer in walk(self.root):
            layer.ctx = self.ctx

    def summary(self) -> str:
        """A table of the layers (paths, output widths, parameters)."""
        rows = [("path", "layer", "parameters")]
        for path, layer in walk(self.root):
            if path and not layer.children():
                n = sum(e.size for e in self.layout.of_layer(path).values())
                rows.append((path, repr(layer), f"{n:,}" if n else ""))
        rows.append(("", f"output head: {self.output}", f"{self.n_params:,} in all"))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}".rstrip() for a, b, c in rows)

    def __repr__(self) -> str:
        extra = f", precision={self.precision.compute!r}" if self.precision.low else ""
        return (f"Network({self.root.layers!r}, output={self.output!r}, seed={self.seed}, "
                f"backend={self.backend.spec!r}, dtype={self.dtype_name!r}{extra})")

    # ------------------------------------------------------------------ data
    def as_input(self, X: Any, name: str = "X") -> Array:
        """X on the device in the network's dtype (see :func:`xpnet.nn.inputs.as_input`)."""
        return inputs.as_input(self, X, name)

    def targets(self, y: Any, name: str = "y") -> Array:
        """y as the objective expects it (see :func:`xpnet.nn.inputs.targets`)."""
        return inputs.targets(self, y, name)

    # ------------------------------------------------------------------ forward / backward
    def logits(self, X: Any, training: bool = False) -> Array:
        """The last layer's output z (before the output head), shape (n, n_outputs), in the network's dtype."""
        z = self.root.forward(self._compute_input(self.as_input(X)), training)[0]
        return z if z.dtype == self.dtype else self.xp.astype(z, self.dtype)

    def forward(self, X: Any, training: bool = False) -> Array:
        """Predictions: probabilities (sigmoid/softmax) or values (identity). Never modifies X;
        ``training=True`` applies dropout (advancing its counters) and batch statistics."""
        z = self.logits(X, training)  # first: it builds a network whose input width is still open
        return self.output_layer.forward(z)[0]

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

    def train_step(self, X: Array, Y: Array, objective: Any, l2: Any = 0.0,
                   scale: float | None = None) -> tuple[Array, Array]:
        """Forward (training mode) and backward on a prepared batch; fills ``grads``.

        Returns (loss, logits): the batch loss from ``objective(z, Y)`` plus λ/2·Σ W² over the
        parameters that take L2, λ = ``l2`` (or ``l2(batch rows)`` when callable). Under a low
        precision, forward and backward run on the compute copies; the loss and d_logits are float32;
        ``scale`` (loss scaling) multiplies d_logits and is divided out as the gradients land in
        the float32 ``grads``.
        """
        if self.cparams is None and scale is None:  # computing in the parameters' own dtype
            z, cache = self.root.forward(X, True)
            value, dz = objective(z, Y)
            self.root.backward(dz, cache)
        else:
            value, z = self._low_precision_step(X, Y, objective, scale)
        if callable(l2):
            value = self.add_l2(value, l2(z.shape[0]))
        elif l2:
            value = self.add_l2(value, l2)
        return value, z

    def _low_precision_step(self, X: Array, Y: Array, objective: Any, scale: float | None) -> tuple[Array, Array]:
        """Forward and backward on the compute copies; d_logits × ``scale`` (loss scaling) is divided out as
        the gradients land in the float32 ``grads``."""
        with self.backend.overflow_allowed():  # an overflow only skips the step (see LossScaler)
            z, cache = self.root.forward(self._compute_input(X), True)
            value, dz = objective(z, Y)
            self._backward(dz if scale is None else dz * scale, cache)
            if scale is not None:
                self.grads *= 1.0 / scale
        return value, z

    def add_l2(self, value: Array, lam: Any) -> Array:
        """``value`` + λ/2·Σ W² over the parameters that take L2; adds λW to their gradients."""
        penalty, grad = l2_penalty(self.xp, self._decay_params, lam)
        self._decay_grads += grad
        return value + penalty

    def hold_rows(self, rows: tuple[int, int] | None) -> None:
        """Training forwards see rows ``first ..`` of a batch of ``total`` rows (``rows = (first, total)``,
        a data-parallel rank's share): dropout draws those rows of the whole batch's masks. None: whole batches."""
        for layer in self.dropout_layers:
            layer.rows = rows

    def skip_forward(self) -> None:
        """Leave what a training forward leaves (dropout counters advanced) without data: a data-parallel rank
        with no rows in a batch."""
        for layer in self.dropout_layers:
            layer.skip()

    def _backward(self, dz: Array, cache: Any) -> None:
        """Backward from d_logits; under a low precision through the compute copies, landing in ``grads``."""
        if self.cgrads is None:
            self.root.backward(dz, cache)
            return
        self.root.backward(self.xp.astype(dz, self.cgrads.dtype), cache)
        self.grads[...] = self.xp.astype(self.cgrads, self.dtype)

    def loss_and_grads(self, X: Any, y: Any, loss: str | None = None,
                       l2: float = 0.0) -> tuple[Array, list[Array], list[Array]]:
        """Batch-mean loss (+ λ/2 ΣW²) in training mode, and its gradients.

        Returns ``(loss, weight_grads, bias_grads)`` (the Dense layers'; every gradient is in
        ``grads``, named by ``layout``). They are views, overwritten by the next call.
        """
        from .objective import Objective

        value, _ = self.train_step(self.as_input(X), self.targets(y), Objective(self, loss), float(l2))
        return value, self.weight_grads, self.bias_grads

    # ------------------------------------------------------------------ state
    def copy_params(self) -> Array:
        """A device copy of the flat parameters."""
        return self.params * 1.0

    def set_params(self, flat: Array) -> None:
        """Overwrite the flat parameters in place."""
        self.params[...] = flat

    @property
    def counters(self) -> list[int]:
        """The Dropout layers' counters (host ints, depth-first): the RNG state besides the seed."""
        return [layer.counter for layer in self.dropout_layers]

    @counters.setter
    def counters(self, values: Sequence[int]) -> None:
        values = list(values)
        if len(values) != len(self.dropout_layers):
            raise ValueError(f"{len(values)} dropout counters for {len(self.dropout_layers)} Dropout layers")
        for layer, c in zip(self.dropout_layers, values):
            layer.counter = check.integer("dropout counter", c, low=0)

    @contextlib.contextmanager
    def frozen_state(self, grads: bool = True) -> Iterator[None]:
        """Within: training forwards leave no trace: dropout counters, buffers (running statistics)
        and, with ``grads``, the gradients are put back on exit."""
        counters, buffers = self.counters, self.buffers * 1.0
        saved_grads = self.grads * 1.0 if grads else None
        try:
            yield
        finally:
            self.counters = counters
            self.buffers[...] = buffers
            if saved_grads is not None:
                self.grads[...] = saved_grads

    def config(self) -> dict:
        """What rebuilds this network (JSON): the layer list, output, seed, dtype, input width (and the
        compute precision when it is not float32)."""
        extra = {"precision": self.precision.compute} if self.precision.low else {}
        return {"layers": [layer.config() for layer in self.root.layers], "output": self.output,
                "seed": self.seed, "dtype": self.dtype_name, "n_inputs": self.n_inputs, **extra}

    def state_dict(self) -> dict:
        """Backend-neutral state: config, NumPy copies of every parameter and buffer (by name), counters."""
        return state_dict(self)

    def load_state_dict(self, state: dict) -> None:
        """Load a :meth:`state_dict` (from any backend); see :func:`xpnet.nn.state.load_state_dict`."""
        load_state_dict(self, state)

    @classmethod
    def recognizes(cls, cfg: dict) -> bool:
        """Whether ``cfg`` is a config of this class (subclasses with configs of their own say so)."""
        return isinstance(cfg.get("layers"), list)

    @classmethod
    def layers_from_config(cls, cfg: dict) -> list[Layer]:
        """The (unbuilt) layers a config of this class or a subclass describes; nothing is allocated."""
        for sub in cls.__subclasses__():
            if sub.recognizes(cfg):
                return sub.layers_from_config(cfg)
        layers = cfg.get("layers")
        if not isinstance(layers, list):
            raise ValueError("a network config needs a list 'layers'")
        return [layer_from_config(c) for c in layers]

    @classmethod
    def from_config(cls, cfg: Any, backend: Any = "numpy", dtype: str | None = None) -> "Network":
        """A network from ``config()`` output; ``Network.from_config`` hands a subclass's config (an
        MLP's, with ``sizes``) to that subclass. Never unpickles."""
        if not isinstance(cfg, dict):
            raise ValueError(f"a network config must be a JSON object, got {type(cfg).__name__}")
        for sub in cls.__subclasses__():
            if sub.recognizes(cfg):
                return sub.from_config(cfg, backend=backend, dtype=dtype)
        layers = cfg.get("layers")
        if not isinstance(layers, list):
            raise ValueError("a network config needs a list 'layers'")
        net = cls([layer_from_config(c) for c in layers], output=cfg.get("output", "auto"), seed=cfg.get("seed", 0),
                  backend=backend, dtype=dtype or cfg.get("dtype", "float32"),
                  precision=cfg.get("precision", "float32"))
        if net.n_inputs is None and cfg.get("n_inputs") is not None:
            net.build(cfg["n_inputs"])
        return net

    @classmethod
    def from_state_dict(cls, state: dict, backend: Any = "numpy", dtype: str | None = None) -> "Network":
        """A new network on ``backend`` with the parameters of ``state`` (of any network class)."""
        net = cls.from_config(state["config"], backend=backend, dtype=dtype)
        net.load_state_dict(state)
        return net
