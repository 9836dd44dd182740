"""The network the model flags describe: an MLP (--hidden, --activation, --batchnorm, ...) or a
layer list from ``--arch FILE.json``, in the JSON form of ``xpnet.Network.config()["layers"]``."""
from __future__ import annotations

import argparse
import json
from typing import Any

import xpnet
from xpnet.nn.init import INITS, WEIGHT_INITS

from .args import CLIError, dropout_rate, hidden_sizes, non_negative_int
from .prepare import Prepared

# The MLP's flags: --arch describes the whole network instead.
MLP_FLAGS = ("hidden", "activation", "batchnorm", "residual", "dropout", "init")
ARCH_EXAMPLE = '[{"type": "Dense", "n_in": null, "n_out": 64, "activation": "relu"}, {"type": "Dense", "n_out": 1}]'


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model flags: the MLP's (see :data:`MLP_FLAGS`) or --arch, and --dtype, --precision, --seed."""
    acts = sorted(set(xpnet.nn.ACTIVATIONS) - {"softmax"})
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=hidden_sizes, default=[64, 32], metavar="SIZES",
                   help="hidden layer widths, comma separated (default 64,32; 'none' for no hidden layer); "
                        "WIDTHxDEPTH repeats a width, e.g. 64x20 for twenty hidden layers of 64")
    g.add_argument("--activation", default="relu", choices=acts, help="hidden activation (default relu)")
    g.add_argument("--init", choices=sorted(k for k, v in INITS.items() if v in WEIGHT_INITS),
                   help="weight initialization (default he_normal for relu-like activations, "
                        "glorot_normal otherwise)")
    g.add_argument("--dropout", type=dropout_rate, default=0.1, metavar="RATE",
                   help="dropout rate after every hidden layer, in [0, 1) (default 0.1)")
    g.add_argument("--batchnorm", action="store_true",
                   help="batch normalization in every hidden layer: Dense, BatchNorm1d, activation")
    g.add_argument("--residual", action="store_true",
                   help="hidden layers whose input and output widths match become residual blocks "
                        "y = x + layer(x)")
    g.add_argument("--arch", metavar="FILE.json",
                   help="the network as a JSON list of layer configs, the form of a run's config.json "
                        f"model.layers, e.g. {ARCH_EXAMPLE.replace('%', '%%')}; layer types: "
                        f"{', '.join(sorted(xpnet.nn.LAYERS))}. The first layer's n_in may be null (the number "
                        "of features); the last layer's width must be the task's outputs (1 for binary, the "
                        "number of classes for multiclass, 2 for binary with --loss cross_entropy, 1 for "
                        "regression). Replaces " + ", ".join(f"--{f}" for f in MLP_FLAGS))
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="floating-point type of parameters and data on the device (default float32)")
    g.add_argument("--precision", default="float32", choices=xpnet.nn.precision.PRECISIONS,
                   help="dtype of the matrix products and activations: float32 (default), float16 (with dynamic "
                        "loss scaling; numpy, cupy, torch) or bfloat16 (torch), over float32 master weights, "
                        "gradients and optimizer state (needs --dtype float32)")
    g.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of everything random: data generation, splits, initial weights, dropout, "
                        "shuffles (default 0)")


def check_model_args(args: argparse.Namespace, given: dict) -> None:
    """--arch excludes the MLP's flags (``given``: the flags on the command line); with --arch they
    are set to None (not applicable)."""
    if args.arch is None:
        return
    clash = [f"--{f}" for f in MLP_FLAGS if f in given]
    if clash:
        raise CLIError(f"--arch describes the whole network: drop {', '.join(clash)} (or write it into "
                       f"{args.arch})")
    for f in MLP_FLAGS:
        setattr(args, f, None)


def build_model(args: argparse.Namespace, prep: Prepared, backend: Any) -> xpnet.Network:
    """The network of the model flags for ``prep``'s data and task, on ``backend``."""
    n_in = int(prep.X["train"].shape[1])
    if args.arch is None:
        model = xpnet.MLP([n_in, *args.hidden, prep.n_outputs], activation=args.activation, output=prep.output,
                          dropout=args.dropout, init=args.init, seed=args.seed, backend=backend, dtype=args.dtype,
                          batchnorm=args.batchnorm, residual=args.residual, precision=args.precision)
    else:
        model = _arch_network(args.arch, n_in, prep, seed=args.seed, backend=backend, dtype=args.dtype,
                              precision=args.precision)
    check_fits(model, prep, args.loss, what="the model")
    return model


def check_fits(model: xpnet.Network, prep: Prepared, loss: str, what: str) -> None:
    """CLIError unless ``model`` takes ``prep``'s features and gives its task's outputs with ``loss``."""
    n_in = int(prep.X["train"].shape[1])
    if model.n_inputs != n_in or model.n_outputs != prep.n_outputs or model.output != prep.output:
        raise CLIError(f"{what} takes {model.n_inputs} inputs and gives {_outputs(model.n_outputs)} ({model.output}), "
                       f"but the data has {n_in} features and the {prep.task} task needs {_outputs(prep.n_outputs)} "
                       f"({prep.output})")
    xpnet.nn.Objective(model, None if loss == "auto" else loss)  # a ValueError now rather than mid-run


def _outputs(n: int) -> str:
    return f"{n} output{'' if n == 1 else 's'}"


def _read_arch(path: str) -> list:
    """The layer configs in ``path`` (a non-empty JSON list)."""
    try:
        with open(path, encoding="utf-8") as f:
            layers = json.load(f)
    except OSError as exc:
        raise CLIError(f"--arch {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise CLIError(f"--arch {path} is not valid JSON: {exc}") from None
    if not isinstance(layers, list) or not layers:
        raise CLIError(f"--arch {path} must hold a non-empty JSON list of layer configs, e.g. {ARCH_EXAMPLE}")
    return layers


def _arch_network(path: str, n_in: int, prep: Prepared, **kwargs: Any) -> xpnet.Network:
    """The network of the --arch file ``path`` for ``n_in`` features and ``prep``'s task (``kwargs``: seed,
    backend, dtype, precision); CLIError naming the problem otherwise."""
    try:
        model = xpnet.Network([xpnet.nn.layer_from_config(c) for c in _read_arch(path)], output=prep.output,
                              **kwargs)
        if model.n_inputs is not None and model.n_inputs != n_in:
            raise CLIError(f"--arch {path}: the first layer takes {model.n_inputs} inputs but the data has {n_in} "
                           f"features (give its n_in as {n_in} or null)")
        model.build(n_in)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--arch {path}: {' '.join(str(exc).split())}") from None
    if model.n_outputs != prep.n_outputs:
        raise CLIError(f"--arch {path}: the last layer gives {_outputs(model.n_outputs)} but the {prep.task} task "
                       f"needs {_outputs(prep.n_outputs)} ({prep.output})")
    return model


def describe(model: xpnet.Network) -> str:
    """The architecture in one line: ``MLP [2, 64, 1] relu -> sigmoid, dropout 0.1[, batchnorm][, residual]``
    (three or more hidden layers of one width as ``64x20``, the --hidden form) or
    ``Network [Dense(2, 64, 'relu'), ...] -> sigmoid``."""
    if not isinstance(model, xpnet.MLP):
        return f"Network {model.layers!r} -> {model.output}"
    rates = model.dropout
    drop = f"{rates[0]:g}" if len(set(rates)) == 1 else ",".join(f"{r:g}" for r in rates) or "none"
    flags = "".join(f", {k}" for k in ("batchnorm", "residual") if getattr(model, k))
    hidden = []
    for width in model.sizes[1:-1]:
        if hidden and hidden[-1][0] == width:
            hidden[-1][1] += 1
        else:
            hidden.append([width, 1])
    shown = [f"{w}x{k}" if k >= 3 else ", ".join([str(w)] * k) for w, k in hidden]
    sizes = ", ".join([str(model.sizes[0]), *shown, str(model.sizes[-1])])
    return f"MLP [{sizes}] {model.activation} -> {model.output}, dropout {drop}{flags}"


def dense_labels(model: xpnet.Network) -> list[str]:
    """``"<path>.W <n_in>x<n_out>"`` of every Dense layer, in the order of ``model.weights``."""
    return [f"{path}.W {layer.n_in}x{layer.n_out}" for path, layer in xpnet.nn.walk(model.root)
            if isinstance(layer, xpnet.nn.Dense)]
