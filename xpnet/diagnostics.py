"""Training diagnostics: per-layer gradient and activation statistics, warnings, the non-finite report.

``layer_stats(model, X, y)`` runs one forward/backward (dropout active, its counters put
back afterwards, ``model.grads`` restored) and returns one dict per Dense layer ``i``
(``model.weights[i]``)::

    layer, name ("Dense 64->32"), activation (the function after it: hidden activation,
    or the output activation for the last layer),
    grad_mean_abs, grad_std, grad_max_abs    (of dL/dW_i, L2 included),
    bias_grad_mean_abs, weight_mean_abs,
    act_mean, act_std                        (of that activation's output on the batch),
    dead_fraction                            (hidden layers: fraction of units whose
                                              activation is 0 for every sample; None for
                                              the output layer)

All values are computed on the device and cross to the host in one transfer.
``check(stats)`` warns (:class:`TrainingWarning`) about vanishing (mean |grad| < 1e-7)
or exploding (> 1e2, or non-finite) gradients and layers with more than 10% dead units,
naming the layer and the usual remedies. :func:`xpnet.fit` records the statistics of
each epoch's last batch with ``diagnostics=True`` / ``diagnostics_every=N`` and uses
:func:`nonfinite_report` at the end of every epoch.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import backends as _backends

from . import layers as L
from ._xp import Array

__all__ = ["TrainingWarning", "layer_stats", "check", "nonfinite_report", "VANISHING", "EXPLODING",
           "DEAD_FRACTION"]

VANISHING = 1e-7  # mean |dL/dW| below this: vanishing gradients
EXPLODING = 1e2  # mean |dL/dW| above this: exploding gradients
DEAD_FRACTION = 0.10  # more dead units than this: dying ReLUs

_KEYS = ("grad_mean_abs", "grad_std", "grad_max_abs", "bias_grad_mean_abs", "weight_mean_abs", "act_mean",
         "act_std", "dead_fraction")


class TrainingWarning(UserWarning):
    """Something in the gradients or activations will likely stall or break training."""


def _dense_name(W: Array) -> str:
    return f"Dense {W.shape[0]}->{W.shape[1]}"


def layer_stats(model: Any, X: Any, y: Any, loss: str | None = None, l2: float = 0.0) -> list[dict]:
    """Per-layer gradient and activation statistics of one forward/backward on (X, y).

    Dropout is active (as in training) and its counters are rewound afterwards, so the
    call does not change what later training draws; ``model.grads`` is restored too.
    """
    fn, fused = model.loss_fn(loss)
    return _stats(model, model.as_input(X), model.targets(y), fn, fused, float(l2))


def _stats(model: Any, Xd: Array, Yd: Array, loss_fn: Any, fused: bool, l2: float) -> list[dict]:
    """:func:`layer_stats` on prepared device arrays (used by fit on the epoch's last batch)."""
    xp = model.xp
    counters = [(layer, layer.counter) for layer in model.dropout_layers]
    saved_grads = model.grads * 1.0
    try:
        a, caches, acts, dense = Xd, [], [], -1
        for layer in model.layers:
            a, cache = layer.forward(a, True)
            caches.append(cache)
            if isinstance(layer, L.Dense):
                dense += 1
            elif len(acts) == dense and not isinstance(layer, L.Dropout):
                acts.append(a)  # the activation's output (before dropout)
        out, out_cache = model.output_layer.forward(a)
        if fused:
            dz = loss_fn(xp, a, Yd)[1]
        else:
            dz = model.output_layer.backward(loss_fn(xp, out, Yd)[1], out_cache)
        model._backward(dz, caches)
        if l2:
            model._flat_weight_grads[...] += l2 * model._flat_weights
        acts.append(out)
        rows = []
        last = len(model.weights) - 1
        for i, (W, gW, gb, act) in enumerate(zip(model.weights, model.weight_grads, model.bias_grads, acts)):
            g = xp.reshape(gW, (-1,))
            ag = xp.abs(g)
            dead = xp.mean(xp.astype(xp.all(act == 0.0, axis=0), act.dtype)) if i < last else xp.mean(act) * 0.0
            rows.append(xp.stack([xp.mean(ag), xp.std(g), xp.max(ag), xp.mean(xp.abs(gb)), xp.mean(xp.abs(W)),
                                  xp.mean(act), xp.std(act), dead]))
        host = _backends.to_numpy(xp.stack(rows)).tolist()  # one transfer
    finally:
        model.grads[...] = saved_grads
        for layer, c in counters:
            layer.counter = c
    stats = []
    for i, (W, values) in enumerate(zip(model.weights, host)):
        entry = {"layer": i, "name": _dense_name(W), "activation": model.activation if i < last else model.output}
        entry.update(zip(_KEYS, (float(v) for v in values)))
        if i == last:
            entry["dead_fraction"] = None
        stats.append(entry)
    return stats


def check(stats: list[dict], *, epoch: int | None = None, seen: set | None = None) -> list[str]:
    """Warn (TrainingWarning) about vanishing/exploding gradients and dead units; returns the messages.

    ``seen``: a set of (layer, kind) already reported, updated here, to warn once per
    layer and kind over a training run.
    """
    messages = []
    where = "" if epoch is None else f"epoch {epoch}: "
    for s in stats:
        tag = f"{where}layer {s['layer']} ({s['name']}, {s['activation']})"
        g, dead = s["grad_mean_abs"], s["dead_fraction"]
        found = []
        if not math.isfinite(g) or g > EXPLODING:
            found.append(("exploding", f"{tag}: mean |grad| {g:.2g} > {EXPLODING:g} (exploding gradients): "
                                       f"lower the learning rate, clip gradients (clip_norm=1.0), standardize "
                                       f"the inputs or use L2 / batch normalization"))
        elif g < VANISHING:
            found.append(("vanishing", f"{tag}: mean |grad| {g:.2g} < {VANISHING:g} (vanishing gradients): use "
                                       f"ReLU/He init, fewer layers, batch normalization or a higher learning "
                                       f"rate"))
        if dead is not None and dead > DEAD_FRACTION:
            found.append(("dead", f"{tag}: {dead:.0%} of units are dead (0 for every sample of the batch) > "
                                  f"{DEAD_FRACTION:.0%} (dying ReLUs): lower the learning rate, use leaky_relu "
                                  f"or gelu, He init, or standardize the inputs"))
        for kind, msg in found:
            if seen is not None:
                if (s["layer"], kind) in seen:
                    continue
                seen.add((s["layer"], kind))
            warnings.warn(msg, TrainingWarning, stacklevel=2)
            messages.append(msg)
    return messages


def nonfinite_report(model: Any, step_loss: list[float], epoch: int, snapshot: Array | None) -> str | None:
    """None if the epoch ended finite, else the reason training must stop (parameters restored).

    Called by :func:`xpnet.fit` once per epoch, after the step losses reached the host:
    the loss check is free, the parameters and gradients cost one reduction. When
    something is non-finite, the first bad step comes from the step losses (or is the
    epoch's last update when every loss was finite), the layers from a per-array check,
    and the parameters are put back to ``snapshot`` (their copy at the epoch's start).
    """
    xp = model.xp
    losses_ok = all(math.isfinite(v) for v in step_loss)
    if losses_ok and bool(xp.all(xp.isfinite(model.params)) & xp.all(xp.isfinite(model.grads))):
        return None
    named = [(f"{kind}{i}", i, a) for kind, views in (("W", model.weights), ("b", model.biases),
                                                      ("dW", model.weight_grads), ("db", model.bias_grads))
             for i, a in enumerate(views)]
    flags = [xp.all(xp.isfinite(a)) for _, _, a in named]
    if snapshot is not None:
        flags.append(xp.all(xp.isfinite(snapshot)))
    ok = _backends.to_numpy(xp.stack(flags)).tolist()  # one transfer
    bad: dict[int, list[str]] = {}
    for (name, i, _), fine in zip(named, ok):
        if not fine:
            bad.setdefault(i, []).append(name)
    if losses_ok:
        step = len(step_loss) - 1
        what = f"the parameters or gradients became non-finite in the update of step {step} of epoch {epoch}"
    else:
        step = next(i for i, v in enumerate(step_loss) if not math.isfinite(v))
        what = f"the training loss became {step_loss[step]} at step {step} of epoch {epoch}"
    msg = f"{what} (global step {epoch * len(step_loss) + step})"
    if bad:
        msg += "; non-finite values in " + "; ".join(
            f"layer {i} ({_dense_name(model.weights[i])}): {', '.join(names)}" for i, names in sorted(bad.items()))
    if snapshot is not None and ok[-1]:
        model.set_params(snapshot)
        msg += (f". The parameters were restored to their values at the start of epoch {epoch} (the last "
                f"finite ones; the optimizer state was not)")
    return msg + ". Lower the learning rate, standardize the inputs or clip gradients (clip_norm)"
