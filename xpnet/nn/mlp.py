"""The multilayer perceptron: a short builder of a :class:`~xpnet.nn.network.Network`."""
from __future__ import annotations

import numbers
from typing import Any, Sequence

from .. import _validate as check
from .activations import ACTIVATIONS, make_activation
from .batchnorm import BatchNorm1d
from .containers import Residual
from .dense import Dense
from .dropout import Dropout
from .init import canonical
from .network import Network

__all__ = ["MLP", "mlp_layers", "dropout_rates"]


def _check_sizes(sizes: Any) -> list[int]:
    try:
        out = [int(s) for s in sizes]
        ok = len(out) >= 2 and all(o == s and o >= 1 and not isinstance(s, bool) for o, s in zip(out, sizes))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"sizes must be a list of at least two positive integers "
                         f"(inputs, hidden..., outputs), e.g. [2, 64, 32, 1]; got {sizes!r}")
    return out


def dropout_rates(dropout: Any, n_hidden: int) -> list[float]:
    """One dropout rate per hidden layer from a rate or a list of rates (ValueError if unusable)."""
    rates = [dropout] * n_hidden if isinstance(dropout, numbers.Real) else dropout
    try:
        rates = [check.dropout_rate("dropout", r) for r in rates]
    except (TypeError, ValueError):
        rates = None
    if rates is None or len(rates) != n_hidden:
        raise ValueError(f"dropout must be a rate in [0, 1) or one rate per hidden layer ({n_hidden}), "
                         f"got {dropout!r}")
    return rates


def _default_init(init: str | None, activation: str) -> str:
    return canonical(init or ("he_normal" if activation in ("relu", "leaky_relu", "gelu") else "glorot_normal"))


def mlp_layers(sizes: Sequence[int], activation: str = "relu", dropout: Any = 0.0, init: str | None = None,
               batchnorm: bool = False, residual: bool = False) -> list:
    """``[Dense(s0, s1, act), Dropout(p), …, Dense(s_{L-1}, s_L)]``: a Dropout after every hidden
    layer when any rate is > 0 (p = 0 is the identity), so the k-th Dropout follows hidden layer k.

    ``batchnorm``: each hidden layer is Dense, BatchNorm1d, activation. ``residual``: each hidden
    layer whose input and output widths match becomes a block y = x + layer(x)."""
    sizes = _check_sizes(sizes)
    if not isinstance(activation, str) or activation not in ACTIVATIONS or activation == "softmax":
        names = sorted(set(ACTIVATIONS) - {"softmax"})
        raise ValueError(f"unknown activation {activation!r}: use one of {names}")
    rates = dropout_rates(dropout, len(sizes) - 2)
    init = _default_init(init, activation)
    layers: list = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        if last:
            layers.append(Dense(a, b, init=init))
            break
        if batchnorm:
            block: Any = [Dense(a, b, init=init), BatchNorm1d(b), make_activation(activation)]
        else:
            block = Dense(a, b, activation, init=init)
        layers.append(Residual(block) if residual and a == b else block)
        if any(rates):
            layers.append(Dropout(rates[i]))
    return layers


class MLP(Network):
    """Fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Hidden layers: Dense with ``activation``, then Dropout when a rate is > 0; the last Dense
    gives the logits; ``output`` as in :class:`Network`. Same arguments, same numbers as before
    the layer redesign (initial weights, masks and training curves bit for bit on NumPy).

    Args:
        sizes: layer widths, e.g. ``[2, 64, 32, 1]``.
        activation: hidden activation (relu, leaky_relu, sigmoid, tanh, gelu, identity).
        output: "sigmoid", "softmax", "identity" or "auto".
        dropout: rate for every hidden layer, or one rate per hidden layer.
        init: he_normal, he_uniform, glorot_normal, glorot_uniform (default: he_normal for
            relu-like activations, glorot_normal otherwise). Biases start at zero.
        batchnorm: each hidden layer is Dense, BatchNorm1d, activation.
        residual: hidden layers whose input and output widths match become blocks y = x + layer(x).
        seed, backend, dtype, precision: as in :class:`Network`.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", output: str = "auto",
                 dropout: float | Sequence[float] = 0.0, init: str | None = None, seed: int = 0,
                 backend: Any = "numpy", dtype: str = "float32", batchnorm: bool = False, residual: bool = False,
                 precision: Any = "float32"):
        self.batchnorm, self.residual = check.boolean("batchnorm", batchnorm), check.boolean("residual", residual)
        layers = mlp_layers(sizes, activation, dropout, init, self.batchnorm, self.residual)
        self.sizes = _check_sizes(sizes)
        self.activation = activation
        self.dropout = dropout_rates(dropout, len(self.sizes) - 2)
        self.init = _default_init(init, activation)
        super().__init__(layers, output=output, seed=seed, backend=backend, dtype=dtype, precision=precision)

    @classmethod
    def recognizes(cls, cfg: dict) -> bool:
        return "sizes" in cfg

    @classmethod
    def layers_from_config(cls, cfg: dict) -> list:
        """The layers an MLP config describes (as the constructor builds them; nothing is allocated)."""
        return mlp_layers(cfg["sizes"], cfg.get("activation", "relu"), cfg.get("dropout", 0.0), cfg.get("init"),
                          check.boolean("batchnorm", cfg.get("batchnorm", False)),
                          check.boolean("residual", cfg.get("residual", False)))

    @classmethod
    def from_config(cls, cfg: dict, backend: Any = "numpy", dtype: str | None = None) -> "MLP":
        """An MLP from :meth:`config` output."""
        known = ("sizes", "activation", "output", "dropout", "init", "seed", "dtype", "batchnorm", "residual",
                 "precision")
        return cls(**{k: cfg[k] for k in known if k in cfg} | ({"dtype": dtype} if dtype else {}), backend=backend)

    def config(self) -> dict:
        """The constructor arguments (JSON-serializable)."""
        extra = {k: True for k in ("batchnorm", "residual") if getattr(self, k)}
        if self.precision.low:
            extra["precision"] = self.precision.compute
        return {"sizes": self.sizes, "activation": self.activation, "output": self.output,
                "dropout": self.dropout, "init": self.init, "seed": self.seed, "dtype": self.dtype_name, **extra}

    def __repr__(self) -> str:
        extra = "".join(f", {k}=True" for k in ("batchnorm", "residual") if getattr(self, k))
        extra += f", precision={self.precision.compute!r}" if self.precision.low else ""
        return (f"MLP({self.sizes}, activation={self.activation!r}, output={self.output!r}, "
                f"dropout={self.dropout}, init={self.init!r}, seed={self.seed}, "
                f"backend={self.backend.spec!r}, dtype={self.dtype_name!r}{extra})")
