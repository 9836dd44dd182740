"""Networks from their JSON configs: built for use, or only sized (no arrays) to check a file first."""
from __future__ import annotations

from typing import Any

from .. import _validate as check
from .containers import Sequential
from .layout import Layout
from .network import Network
from .tree import input_width

__all__ = ["network_from_config", "config_layout"]


def config_layout(cfg: Any) -> tuple[Sequential, Layout, int]:
    """The built layer tree, :class:`Layout` and output width a network config describes, without
    allocating any array (so a config from a file can be sized before it is built). ValueError if it
    cannot be built."""
    if not isinstance(cfg, dict):
        raise ValueError(f"a network config must be a JSON object, got {type(cfg).__name__}")
    root = Sequential(Network.layers_from_config(cfg))
    width = cfg.get("n_inputs")
    width = input_width(root) if width is None else width
    if not isinstance(width, int) or isinstance(width, bool):
        raise ValueError("the config leaves the input width open (no n_inputs and no n_in on the first layer)")
    n_out = root.build(check.integer("n_inputs", width, low=1))
    if n_out is None:
        raise ValueError("the network's output width is unknown: give the last Dense its n_out")
    return root, Layout(root), n_out


def network_from_config(cfg: Any, backend: Any = "numpy", dtype: str | None = None) -> Network:
    """A Network (or an MLP, for a config with ``sizes``) from ``config()`` output; never unpickles."""
    return Network.from_config(cfg, backend=backend, dtype=dtype)
