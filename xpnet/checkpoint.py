"""Checkpoints: a network's whole training state in one ``.npz`` file, written atomically.

    import xpnet
    xpnet.checkpoint.save("run.npz", model, optimizer, history, epoch=5, extra={"scaler": {...}})
    ck = xpnet.checkpoint.load("run.npz")                    # host data + metadata, never unpickles
    model, opt = ck.restore(backend="torch:cpu")               # rebuilt on any backend / device
    xpnet.fit(model, X, y, epochs=10, resume=ck, checkpoint="run-{epoch}.npz", keep_last=3)

File format (``FORMAT_VERSION`` 3), a zip of ``.npy`` members (:mod:`xpnet.io.npzfile`):

- ``__meta__``: UTF-8 JSON: ``format`` ("xpnet.checkpoint"), ``format_version``,
  ``xpnet_version``, ``saved_at``, ``backend`` (saved from), ``model`` (the network's config:
  its layer list from the layer registry, or an MLP's arguments), ``layout`` (name, offset,
  shape of every parameter and buffer), ``streams`` (the RNG stream of every random layer),
  ``dropout_counters``, ``optimizer`` (its config with the current ``lr``, the step count ``t``
  = the schedule position, names of its state arrays), ``epoch`` (epochs completed = the
  shuffle counter of the next epoch), ``step``, ``step_in_epoch`` and ``partial`` (set when
  interrupted mid-epoch), ``early_stopping`` (best monitored value, epochs waited), ``loss_scaler``
  (float16 training's scale and counters),
  ``history``, ``fit`` (fit's settings), ``extra`` (the caller's JSON) and ``arrays``.
- ``params`` (flat, in ``layout`` order), ``buffers`` (flat, when the network has any),
  ``optimizer.<name>`` (optimizer state, same layout as ``params``), ``best_params`` and
  ``best_buffers`` (early stopping's best epoch).

Format 1 files (an MLP's ``model.W{i}``/``model.b{i}`` members) still load. Format 3 numbers the
history's epochs (``epoch``, ``best_epoch``) from 1, as :class:`xpnet.History` does; the 0-based
histories of formats 1 and 2 are renumbered when read (:attr:`Checkpoint.history`). Writing is atomic
(:mod:`xpnet.io.atomic`); reading treats the file as hostile: every metadata field is checked
against :mod:`xpnet.io.schema` and every member's header against the declared layout before any
data is read, within a memory cap, so a damaged or crafted file is one :class:`CheckpointError`
line, never half-loaded. Resuming a run and catching signals are the training loop's side
(:mod:`xpnet.train.checkpointing`).
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import backends as _backends

from . import optim as _optim
from ._version import __version__
from .io import schema
from .io.atomic import atomic_write
from .io.npzfile import Archive, CheckpointError, json_default, write_npz
from .nn import Dense, Network, Sequential, network_from_config, walk
from .nn.mlp import mlp_layers
from .nn.state import legacy_counters

__all__ = ["save", "load", "Checkpoint", "CheckpointError", "Interrupted", "FORMAT_VERSION", "as_checkpoint"]

FORMAT = "xpnet.checkpoint"
FORMAT_VERSION = 3
_META = "__meta__"


class Interrupted(KeyboardInterrupt):
    """Raised by :func:`xpnet.fit` after SIGINT/SIGTERM once the checkpoint is written.

    A ``KeyboardInterrupt`` subclass, so code unaware of checkpoints still stops (and an
    ``except Exception`` does not swallow it). Attributes: ``history`` (so far), ``path``
    (the checkpoint written), ``epoch`` (epochs completed), ``step_in_epoch``, ``signum``.
    """

    def __init__(self, message: str, history: Any, path: str, epoch: int, step_in_epoch: int, signum: int):
        super().__init__(message)
        self.message, self.history, self.path = message, history, path
        self.epoch, self.step_in_epoch, self.signum = epoch, step_in_epoch, signum

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------------------- save
def save(path: Any, model: Network, optimizer: _optim.Optimizer | None = None, history: dict | None = None,
         epoch: int = 0, extra: dict | None = None, fit_config: dict | None = None, *,
         loop_state: dict | None = None) -> str:
    """Write ``model`` (and the optimizer, history, ...) to ``path`` atomically; returns the path.

    ``epoch``: epochs completed (the next epoch's index and shuffle counter). ``extra``: any
    JSON-serializable dict the caller wants back (e.g. ``{"scaler": {"mean": [...], "std": [...]}}``).
    ``fit_config``: fit's settings (fit passes them). ``loop_state`` is the training loop's own:
    ``step_in_epoch``, ``partial`` (losses/hits/time of an unfinished epoch), ``best``, ``waited``,
    ``best_params``, ``best_buffers``. The file name is used as given (no ``.npz`` is appended).
    """
    path = os.fspath(path)
    if not isinstance(model, Network):
        raise CheckpointError(path, f"save needs an xpnet network (xpnet.Network or xpnet.MLP), "
                                    f"got {type(model).__name__}")
    loop = dict(loop_state or {})
    to_np = _backends.to_numpy
    arrays: dict[str, Any] = {"params": to_np(model.params)}
    if model.layout.n_buffers:
        arrays["buffers"] = to_np(model.buffers)
    opt_meta = None
    if optimizer is not None:
        opt_meta = {"config": optimizer.config(), "t": int(optimizer.t), "state": sorted(optimizer.state)}
        for k in opt_meta["state"]:
            arrays[f"optimizer.{k}"] = to_np(optimizer.state[k])
    for name in ("best_params", "best_buffers"):
        best_array = loop.pop(name, None)
        if best_array is not None and best_array.shape[0]:
            arrays[name] = to_np(best_array)
    best = loop.get("best", math.inf)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": __version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "backend": model.backend.spec,
        "model": model.config(), "layout": model.layout.describe(), "streams": model.streams,
        "dropout_counters": model.counters, "optimizer": opt_meta, "epoch": int(epoch),
        "step": int(optimizer.t) if optimizer is not None else 0,
        "step_in_epoch": int(loop.get("step_in_epoch", 0)), "partial": loop.get("partial"),
        "early_stopping": {"best": None if math.isinf(best) else float(best), "waited": int(loop.get("waited", 0))},
        "loss_scaler": loop.get("loss_scaler"),
        "history": None if history is None else dict(history), "fit": fit_config, "extra": extra,
        "arrays": list(arrays),
    }
    try:
        text = json.dumps(meta, default=json_default)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"extra/history/fit_config must be JSON-serializable: {exc}") from None
    npb = _backends.get("numpy")
    payload = {_META: npb.to_numpy(npb.asarray(memoryview(bytearray(text.encode("utf-8")))))} | arrays
    atomic_write(path, lambda f: write_npz(f, payload))
    return path


# ---------------------------------------------------------------------------------------- load
def load(path: Any) -> "Checkpoint":
    """Read a checkpoint file into host memory (no backend needed); raises :class:`CheckpointError`.

    Every metadata field is checked against :mod:`xpnet.io.schema` before any array is read, and
    every member's header against the declared layout before its data."""
    path = os.fspath(path)
    with Archive(path) as archive:
        if _META not in archive.members:
            raise CheckpointError(path, "is not an xpnet checkpoint (an .npz without __meta__)")
        meta = schema.parse_meta(path, archive, _META)
        plan = schema.check(path, meta, set(archive.members) - {_META}, FORMAT, FORMAT_VERSION, __version__)
        arrays = {}
        for name, (shape, dtype) in plan.members.items():
            member = archive.header(name)
            if member.shape != shape or member.dtype != dtype:
                raise CheckpointError(path, f"member {name!r} is {member.dtype} of shape {member.shape}, its "
                                            f"__meta__ declares {dtype} of shape {shape}")
            arrays[name] = archive.read(member)
    schema.check_values(path, arrays, plan)
    return Checkpoint(meta, arrays, path)


def as_checkpoint(resume: Any) -> "Checkpoint | None":
    """None, a :class:`Checkpoint`, or one loaded from a path."""
    if resume is None or isinstance(resume, Checkpoint):
        return resume
    if isinstance(resume, (str, os.PathLike)):
        return load(resume)
    raise ValueError(f"resume must be a checkpoint path or an xpnet.checkpoint.Checkpoint, got {resume!r}")


def describe_model(cfg: dict) -> str:
    """A short description of a saved network config."""
    if "sizes" in cfg:
        return (f"MLP({cfg.get('sizes')}, activation={cfg.get('activation')!r}, output={cfg.get('output')!r}, "
                f"dropout={cfg.get('dropout')})")
    names = [c.get("type", "?") if isinstance(c, dict) else "?" for c in cfg.get("layers") or []]
    return f"Network([{', '.join(names)}], output={cfg.get('output')!r})"


class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON dict), ``arrays`` (name -> host NumPy array), ``path``.

    Shortcuts: ``epoch`` (epochs completed), ``step`` (optimizer steps), ``model_config``,
    ``fit_config``, ``extra``, ``history`` (a dict copy or None), ``format_version``, ``xpnet_version``.
    """

    def __init__(self, meta: dict, arrays: dict[str, Any], path: str | None = None):
        self.meta, self.arrays, self.path = meta, arrays, path

    epoch = property(lambda self: int(self.meta.get("epoch", 0)))
    step = property(lambda self: int(self.meta.get("step", 0)))
    model_config = property(lambda self: dict(self.meta["model"]))
    fit_config = property(lambda self: self.meta.get("fit") or {})
    extra = property(lambda self: self.meta.get("extra"))
    format_version = property(lambda self: self.meta.get("format_version"))
    xpnet_version = property(lambda self: self.meta.get("xpnet_version"))

    @property
    def history(self) -> dict | None:
        """A deep copy of the saved history, its epochs numbered from 1 (also for files of formats 1 and 2,
        which numbered them from 0)."""
        saved = self.meta.get("history")
        if saved is None:
            return None
        history = json.loads(json.dumps(saved))
        if (self.format_version or FORMAT_VERSION) < schema.EPOCHS_FROM_ONE:
            if isinstance(history.get("epoch"), list):
                history["epoch"] = [e + 1 for e in history["epoch"]]
            if isinstance(history.get("best_epoch"), int):
                history["best_epoch"] += 1
        return history

    def __repr__(self) -> str:
        return (f"Checkpoint({self.path!r}, {describe_model(self.meta['model'])}, epoch={self.epoch}, "
                f"step={self.step}, format_version={self.format_version})")

    def _error(self, problem: str) -> CheckpointError:
        return CheckpointError(self.path, problem)

    # ------------------------------------------------------------------ the network
    def build_model(self, backend: Any = "numpy", dtype: str | None = None) -> Network:
        """A new network of the saved architecture (initial values, not the saved ones)."""
        try:
            return network_from_config(self.meta["model"], backend=backend, dtype=dtype)
        except (TypeError, ValueError, KeyError) as exc:
            raise self._error(f"its model config cannot be built: {exc}") from None

    def _check_architecture(self, model: Network) -> None:
        cfg, mine = self.meta["model"], model.config()
        if "sizes" in cfg and "sizes" in mine:  # two MLPs: name the arguments that differ
            keys = ["sizes", "activation", "dropout", "batchnorm", "residual"]
            problems = [f"{k} {cfg.get(k)!r} vs {mine.get(k)!r}" for k in keys if cfg.get(k) != mine.get(k)]
        else:
            problems = [] if _layer_configs(cfg) == _layer_configs(mine) else ["the layers differ"]
        if not model.output_auto and cfg.get("output") != model.output:
            problems.append(f"output {cfg.get('output')!r} vs {model.output!r}")
        if problems:
            raise self._error(f"was saved from {describe_model(cfg)} but the model is {describe_model(mine)} "
                              f"({'; '.join(problems)})")

    def _flat_params(self, model: Network) -> Any:
        """The saved flat parameters (format 2), or assembled from format 1's per-layer arrays."""
        if "params" in self.arrays:
            flat = self.arrays["params"]
            if tuple(flat.shape) != (model.n_params,):
                raise self._error(f"member 'params' has shape {tuple(flat.shape)}, the model has "
                                  f"{model.n_params} parameters")
            return flat
        dense = [p for p, layer in walk(model.root) if isinstance(layer, Dense)]
        named = {}
        try:
            for i, p in enumerate(dense):
                named[f"{p}.W"], named[f"{p}.b"] = self.arrays[f"model.W{i}"], self.arrays[f"model.b{i}"]
        except KeyError as exc:
            raise self._error(f"is missing the array {exc}") from None
        npx = _backends.get("numpy").xp
        parts = []
        for e in model.layout.params:
            a = named[e.name]
            if tuple(a.shape) != e.shape:
                raise self._error(f"array for {e.name} has shape {tuple(a.shape)}, the model's is {e.shape}")
            parts.append(npx.reshape(npx.astype(a, model.dtype_name), (-1,)))
        return npx.concat(parts) if parts else npx.zeros((0,))

    def restore(self, model: Network | None = None, backend: Any = "numpy", optimizer: Any = None,
                dtype: str | None = None, best: bool = False) -> tuple[Network, _optim.Optimizer | None]:
        """(model, optimizer) with the saved state, on any backend and device.

        ``model``: load into this network (same architecture, else :class:`CheckpointError`; its
        backend is used and its dtype kept) or None to build one on ``backend`` (in the saved dtype
        unless ``dtype``). ``optimizer``: load the saved step count and state into this optimizer
        (same class; its own hyperparameters are kept) or None to rebuild the saved one (None if
        none was saved). The seed, dropout counters and buffers are restored. ``best``: then put back
        early stopping's best parameters and buffers if the file holds them (what a finished run ends with).
        """
        cfg = self.meta["model"]
        if model is None:
            model = self.build_model(backend, dtype)
        elif not isinstance(model, Network):
            raise self._error(f"restore needs an xpnet network, got {type(model).__name__}")
        else:
            if model.n_inputs is None and isinstance(cfg.get("n_inputs"), int):
                model.build(cfg["n_inputs"])  # a network whose input width is still open: the saved one
            self._check_architecture(model)
            if model.output != cfg.get("output", model.output):
                model.set_output(cfg["output"])
            if model.seed != cfg.get("seed", model.seed):
                model.reseed(cfg["seed"])
        model.params[...] = model.xp.astype(model.backend.asarray(self._flat_params(model)), model.dtype)
        if "buffers" in self.arrays:
            buf = self.arrays["buffers"]
            if tuple(buf.shape) != (model.layout.n_buffers,):
                raise self._error(f"member 'buffers' has shape {tuple(buf.shape)}, the model has "
                                  f"{model.layout.n_buffers} buffer values")
            model.buffers[...] = model.xp.astype(model.backend.asarray(buf), model.dtype)
        for name, flat in (("best_params", model.params), ("best_buffers", model.buffers)) if best else ():
            if name in self.arrays:
                flat[...] = self.device_copy(model, name)
        try:
            saved = self.meta.get("dropout_counters") or [0] * len(model.dropout_layers)
            model.counters = legacy_counters(model.dropout_layers, saved) if self.format_version == 1 else saved
        except ValueError as exc:
            raise self._error(f"does not fit the model: {exc}") from None
        return model, self._restore_optimizer(model, optimizer)

    def device_copy(self, model: Network, name: str) -> Any:
        """Member ``name`` as a new device array of the model's dtype."""
        return model.xp.astype(model.backend.asarray(self.arrays[name]), model.dtype, copy=True)

    # ------------------------------------------------------------------ the optimizer
    def new_optimizer(self) -> _optim.Optimizer | None:
        """A fresh instance of the saved optimizer with its saved hyperparameters (no state); None if
        the checkpoint has no optimizer."""
        saved = self.meta.get("optimizer")
        if saved is None:
            return None
        cfg = dict(saved["config"])
        name, lr = cfg.pop("name", None), cfg.pop("lr", None)
        cls = getattr(_optim, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, _optim.Optimizer)):
            raise self._error(f"holds the state of optimizer {name!r}, which xpnet.optim does not define: "
                              f"pass an instance as optimizer=")
        try:
            optimizer = cls(lr=lr if lr > 0 else 1.0, **cfg)
        except (TypeError, ValueError) as exc:
            raise self._error(f"its optimizer config cannot be built: {exc}") from None
        optimizer.lr = lr  # a schedule may have taken it to 0
        return optimizer

    def _restore_optimizer(self, model: Network, optimizer: Any) -> Any:
        saved = self.meta.get("optimizer")
        if saved is None:
            return optimizer
        name = saved["config"].get("name")
        if optimizer is None:
            optimizer = self.new_optimizer()
        elif not isinstance(optimizer, _optim.Optimizer):
            raise self._error(f"optimizer must be an xpnet optimizer, got {optimizer!r}")
        elif type(optimizer).__name__ != name:
            raise self._error(f"holds {name} state but the optimizer given is {type(optimizer).__name__}")
        state = {}
        for k in saved.get("state", []):
            arr = self.arrays[f"optimizer.{k}"]
            if tuple(arr.shape) != (model.n_params,):
                raise self._error(f"optimizer state {k!r} has shape {tuple(arr.shape)}, the model has "
                                  f"{model.n_params} parameters")
            state[k] = self.device_copy(model, f"optimizer.{k}")
        optimizer.t, optimizer.state = int(saved["t"]), state
        optimizer.xp = None  # bound again (to the model's namespace) at the next step
        return optimizer


def _structure(obj: Any) -> Any:
    """A layer config without what does not shape the network (initializers)."""
    if isinstance(obj, dict):
        return {k: _structure(v) for k, v in obj.items() if k != "init"}
    return [_structure(v) for v in obj] if isinstance(obj, list) else obj


def _layer_configs(cfg: dict) -> list:
    """The layer list of a network config (an MLP's built by the MLP builder, without allocating)."""
    if "sizes" not in cfg:
        return _structure(cfg.get("layers") or [])
    try:
        root = Sequential(mlp_layers(cfg["sizes"], cfg.get("activation", "relu"), cfg.get("dropout", 0.0),
                                     cfg.get("init"), cfg.get("batchnorm", False), cfg.get("residual", False)))
    except (KeyError, TypeError, ValueError):
        return []
    root.build(cfg["sizes"][0])
    return _structure([layer.config() for layer in root.layers])
