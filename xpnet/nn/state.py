"""Backend-neutral snapshots of a network: named host copies of its parameters, buffers and counters."""
from __future__ import annotations

from typing import Any, Sequence

from . import inputs
from .dense import Dense
from .dropout import Dropout
from .tree import walk

__all__ = ["state_dict", "load_state_dict", "legacy_counters"]


def state_dict(net: Any) -> dict:
    """Backend-neutral state: config, NumPy copies of every parameter and buffer (by name), counters."""
    to_np = net.backend.to_numpy
    return {"config": net.config(),
            "params": {e.name: to_np(e.view(net.params, net.xp)).copy() for e in net.layout.params},
            "buffers": {e.name: to_np(e.view(net.buffers, net.xp)).copy() for e in net.layout.buffers},
            "dropout_counters": net.counters}

def load_state_dict(net: Any, state: dict) -> None:
    """Load a :func:`state_dict` (made on any backend) into ``net``. An MLP state of the old form
    (``weights``/``biases`` lists) fills the Dense layers in order."""
    named = dict(state.get("params") or {})
    if "weights" in state or "biases" in state:
        ws, bs = list(state.get("weights", [])), list(state.get("biases", []))
        if len(ws) != len(net._dense) or len(bs) != len(net._dense):
            raise ValueError(f"state has {len(ws)} weight and {len(bs)} bias arrays; the network has "
                             f"{len(net._dense)} Dense layers")
        paths = [p for p, layer in walk(net.root) if isinstance(layer, Dense)]
        for p, w, b in zip(paths, ws, bs):
            named[f"{p}.W" if p else "W"], named[f"{p}.b" if p else "b"] = w, b
    for flat, entries, values in ((net.params, net.layout.params, named),
                                  (net.buffers, net.layout.buffers, dict(state.get("buffers") or {}))):
        missing = [e.name for e in entries if e.name not in values]
        if missing and (entries is net.layout.params or values):
            raise ValueError(f"state has no values for {', '.join(missing[:5])}")
        for e in entries:
            if e.name not in values:
                continue
            arr = inputs.to_device(net.backend, values[e.name], f"state array {e.name!r}")
            if tuple(arr.shape) != e.shape:
                raise ValueError(f"state array {e.name!r} has shape {tuple(arr.shape)}, the network's is {e.shape}")
            flat[e.offset:e.stop] = net.xp.reshape(net.xp.astype(arr, net.dtype), (-1,))
    if state.get("dropout_counters") is not None:
        old_form = "weights" in state or "biases" in state
        counters = list(state["dropout_counters"])
        net.counters = legacy_counters(net.dropout_layers, counters) if old_form else counters


def legacy_counters(dropout_layers: Sequence[Dropout], counters: Sequence[int]) -> list[int]:
    """Dropout counters saved by the MLP of before the layer redesign (checkpoint format 1, old-form
    state dicts), which had a Dropout layer only where p > 0, spread over today's Dropout layers: the
    MLP now also keeps p = 0 ones (so the k-th Dropout follows hidden layer k); they never draw, so
    their counter is 0. Counters of any other length are returned as they are."""
    live = [layer.p > 0.0 for layer in dropout_layers]
    if len(counters) == len(live) or len(counters) != sum(live):
        return list(counters)
    it = iter(counters)
    return [next(it) if on else 0 for on in live]
