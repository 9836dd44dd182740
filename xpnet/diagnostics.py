"""Training diagnostics: per-layer gradient and activation statistics, and the warnings they call for.

``layer_stats(model, X, y)`` runs one forward/backward in training mode (dropout active; its
counters, the buffers and ``model.grads`` are put back afterwards) and returns one dict per
Dense layer ``i`` (``model.weights[i]``, depth-first)::

    layer (i), path, name ("Dense 64->32"), activation (the first activation after it, before the
    next Dense: its own, a following layer's, or the output head for the last layer),
    grad_mean_abs, grad_std, grad_max_abs    (of dL/dW_i, L2 included),
    bias_grad_mean_abs, weight_mean_abs,
    act_mean, act_std                        (of that activation's output on the batch),
    dead_fraction                            (hidden layers: fraction of units whose
                                              activation is 0 for every sample; None for
                                              the output layer)

All values are computed on the device and cross to the host in one transfer. ``check(stats)``
warns (:class:`TrainingWarning`) about the one problem each layer shows (:func:`diagnose`): more
than 10% dead units, else vanishing (mean |grad| < 1e-7), else exploding (> 1e2, or non-finite)
gradients, with one fix. ``xpnet.fit(..., diagnostics=True)`` records the statistics of each
epoch's last batch.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Iterator

from ._xp import Array, fetch
from .nn import Activation, Dense, Objective, walk

__all__ = ["TrainingWarning", "layer_stats", "batch_stats", "diagnose", "check", "VANISHING", "EXPLODING",
           "DEAD_FRACTION"]

VANISHING = 1e-7  # mean |dL/dW| below this: vanishing gradients
EXPLODING = 1e2  # mean |dL/dW| above this: exploding gradients
DEAD_FRACTION = 0.10  # more dead units than this: dying ReLUs

_KEYS = ("grad_mean_abs", "grad_std", "grad_max_abs", "bias_grad_mean_abs", "weight_mean_abs", "act_mean",
         "act_std", "dead_fraction")


class TrainingWarning(UserWarning):
    """Something in the gradients or activations will likely stall or break training."""


def layer_stats(model: Any, X: Any, y: Any, loss: str | None = None, l2: float = 0.0) -> list[dict]:
    """Per-Dense-layer gradient and activation statistics of one forward/backward on (X, y).

    Dropout is active (as in training); counters, buffers and ``model.grads`` are restored, so the
    call changes nothing later training does.
    """
    return batch_stats(model, Objective(model, loss), model.as_input(X), model.targets(y), float(l2))


@contextlib.contextmanager
def _recording(leaves: list[tuple[str, Any]], outputs: dict) -> Iterator[None]:
    """Record each leaf layer's forward output by path while the block runs."""
    for path, layer in leaves:
        def forward(x: Array, training: bool = False, _f: Any = layer.forward, _p: str = path) -> Any:
            y, cache = _f(x, training)
            outputs[_p] = y
            return y, cache
        layer.forward = forward
    try:
        yield
    finally:
        for _, layer in leaves:
            del layer.forward


def _activation_after(leaves: list[tuple[str, Any]], k: int) -> tuple[str, str] | None:
    """(path, name) of the activation applied to Dense leaf ``k``'s output, before the next Dense."""
    path, dense = leaves[k]
    if dense.activation is not None and not dense.head:
        return path, dense.activation
    for p, layer in leaves[k + 1:]:
        if isinstance(layer, Dense):
            return None
        if isinstance(layer, Activation):
            return p, layer.name
    return None


def batch_stats(model: Any, objective: Any, Xd: Array, Yd: Array, l2: float = 0.0) -> list[dict]:
    """:func:`layer_stats` on prepared device arrays with a given objective (used by fit)."""
    xp = model.xp
    leaves = [(p, layer) for p, layer in walk(model.root) if not layer.children()]
    outputs: dict[str, Array] = {}
    with model.frozen_state(), _recording(leaves, outputs):
        _, z = model.train_step(Xd, Yd, objective, l2)
        out = model.output_layer.forward(z)[0]
        rows, described = [], []
        dense_at = [k for k, (_, layer) in enumerate(leaves) if isinstance(layer, Dense)]
        for i, k in enumerate(dense_at):
            path, dense = leaves[k]
            after = _activation_after(leaves, k)
            last = leaves[k][1] is leaves[-1][1]
            if last and after is None:
                act, act_name, dead = out, model.output, None
            else:
                act = outputs[after[0]] if after else outputs[path]
                act_name = after[1] if after else "identity"
                dead = xp.mean(xp.astype(xp.all(act == 0.0, axis=0), act.dtype))
            g = xp.reshape(dense.grad_W, (-1,))
            ag = xp.abs(g)
            rows.append(xp.stack([xp.mean(ag), xp.std(g), xp.max(ag), xp.mean(xp.abs(dense.grad_b)),
                                  xp.mean(xp.abs(dense.W)), xp.mean(act), xp.std(act),
                                  xp.mean(act) * 0.0 if dead is None else dead]))
            described.append({"layer": i, "path": path, "name": f"Dense {dense.n_in}->{dense.n_out}",
                              "activation": act_name, "output": dead is None})
        host = fetch(xp, [xp.stack(rows)], xp.float64)[0]  # one transfer
    stats = []
    for i, entry in enumerate(described):
        values = host[i * len(_KEYS):(i + 1) * len(_KEYS)]
        is_output = entry.pop("output")
        entry.update(zip(_KEYS, (float(v) for v in values)))
        if is_output:
            entry["dead_fraction"] = None
        stats.append(entry)
    return stats


def diagnose(s: dict) -> tuple[str, str] | None:
    """(kind, message) of the one problem a layer's statistics show, or None.

    One condition per layer, in this order, so the advice never contradicts itself: dead units
    (a dead unit passes no gradient, so they also explain small gradients), then vanishing, then
    exploding (or non-finite) gradients. Each comes with one fix.
    """
    g, dead = s["grad_mean_abs"], s["dead_fraction"]
    tag = f"layer {s['layer']} ({s['name']}, {s['activation']})"
    if dead is not None and dead > DEAD_FRACTION:
        return "dead", (f"{tag}: {dead:.0%} of units are dead (0 for every sample of the batch) > {DEAD_FRACTION:.0%} "
                        f"(dying ReLUs): use activation='leaky_relu'")
    if math.isfinite(g) and g < VANISHING:
        return "vanishing", (f"{tag}: mean |grad| {g:.2g} < {VANISHING:g} (vanishing gradients): add batch "
                             f"normalization (MLP(..., batchnorm=True), --batchnorm)")
    if not math.isfinite(g) or g > EXPLODING:
        return "exploding", (f"{tag}: mean |grad| {g:.2g} > {EXPLODING:g} (exploding gradients): clip gradients "
                             f"(fit(..., clip_norm=1.0), --clip-norm 1)")
    return None


def check(stats: list[dict], *, epoch: int | None = None, seen: set | None = None) -> list[str]:
    """Warn (TrainingWarning) about the one problem of each layer (see :func:`diagnose`); returns the
    messages. ``seen``: a set of (layer, kind) already reported, updated here, to warn once per layer
    and kind over a training run."""
    messages = []
    where = "" if epoch is None else f"epoch {epoch}: "
    for s in stats:
        found = diagnose(s)
        if found is None:
            continue
        kind, msg = found
        if seen is not None:
            if (s["layer"], kind) in seen:
                continue
            seen.add((s["layer"], kind))
        warnings.warn(where + msg, TrainingWarning, stacklevel=2)
        messages.append(where + msg)
    return messages
