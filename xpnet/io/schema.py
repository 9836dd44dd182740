"""The checkpoint schema: what every metadata field and every member of a checkpoint may hold.

:func:`check` takes the parsed ``__meta__`` of a file (format 1 or 2) and returns a :class:`Plan`,
the members the file must hold (exactly those) with their shapes and dtype, or raises one
:class:`CheckpointError` line naming the file and the field. Nothing is allocated before: the
model config is sized by building its layer tree without arrays
(:func:`xpnet.nn.configs.config_layout`), the layout the file declares must be that one, and the
bytes its members will take are held against :func:`xpnet._validate.memory_limit`. Counters
(epochs, steps, dropout counters) are integers below 2⁶², JSON nests at most 64 levels and layer
configs at most 32.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

import backends as _backends

from .. import _validate as valid
from .. import optim as _optim
from ..nn import Dense, Dropout, walk
from ..nn.binding import number_streams
from ..nn.configs import config_layout
from ..nn.layout import Layout
from ..nn.network import DTYPES, OUTPUTS
from ..nn.precision import PRECISIONS
from .npzfile import Archive, CheckpointError

__all__ = ["Plan", "parse_meta", "check", "check_values", "MAX_COUNT", "MAX_META_BYTES"]

MAX_COUNT = 2**62
MAX_JSON_DEPTH = 64
MAX_LAYER_DEPTH = 32
MAX_LAYERS = 4096
MAX_META_BYTES = 64 * 2**20
EPOCHS_FROM_ONE = 3  # the format version from which a history numbers its epochs from 1 (before: from 0)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_MISSING = object()
_FLOAT_LISTS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "step_loss", "loss_scale",
                "skipped_steps")
_PER_EPOCH = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time")
_FIT = {"l2": (0.0, None), "validation_split": (0.0, 1.0), "min_delta": (0.0, None)}
_FIT_INTS = {"epochs": 1, "batch_size": 1, "patience": 1, "n_train": 1, "n_val": 0}


@dataclass
class Plan:
    """What a checked ``__meta__`` declares: ``members`` (name -> (shape, dtype)), the model's
    ``layout``, and ``n_bytes``, the data the members take."""

    members: dict[str, tuple[tuple[int, ...], str]]
    layout: Layout
    n_bytes: int


def _short(value: Any) -> str:
    """``value`` for a message: at most 60 characters (a container's JSON, or its size when large)."""
    if isinstance(value, (list, dict)):
        if len(value) > 8:
            return f"a {type(value).__name__} of {len(value)} items"
        text = json.dumps(value, default=str)
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(path: str, name: str, what: str, value: Any = _MISSING) -> NoReturn:
    """Raise the one-line error for field ``name``."""
    got = "" if value is _MISSING else f", got {_short(value)}"
    raise CheckpointError(path, f"field {name!r} {what}{got}")


def _int(path: str, name: str, value: Any, low: int = 0, high: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(path, name, f"must be an integer in [{low}, {high}]", value)
    return value


def _real(path: str, name: str, value: Any, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        v = float(value) if ok else math.nan
    except OverflowError:  # an int beyond any float
        v = math.inf
    if ok and not finite and math.isnan(v):
        return v
    if not ok or (finite and not math.isfinite(v)) or (low is not None and (v < low or low_open and v == low)) \
            or (high is not None and (v > high or high_open and v == high)):
        where = valid.interval(low, high, low_open, high_open)
        _fail(path, name, f"must be a {'finite ' if finite else ''}number {where}".rstrip(), value)
    return v


def _str(path: str, name: str, value: Any, limit: int = 200) -> str:
    if not isinstance(value, str) or len(value) > limit:
        _fail(path, name, f"must be a string of at most {limit} characters", value)
    return value


def _list(path: str, name: str, value: Any) -> list:
    if not isinstance(value, list):
        _fail(path, name, "must be a list", value)
    return value


def _dict(path: str, name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        _fail(path, name, "must be a JSON object", value)
    return value


# ---------------------------------------------------------------------------------------- JSON
def parse_meta(path: str, archive: Archive, name: str) -> Any:
    """Member ``name`` as JSON: UTF-8 text of at most :data:`MAX_META_BYTES` (and 1/16 of the memory limit:
    parsed, JSON takes several times its size), nesting at most :data:`MAX_JSON_DEPTH` levels."""
    header = archive.header(name)
    limit = min(MAX_META_BYTES, valid.memory_limit()[0] // 16)
    if header.dtype != "uint8" or len(header.shape) != 1 or header.nbytes > limit:
        raise CheckpointError(path, f"its {name} is not a JSON text of at most {valid.byte_count(limit)} "
                                    f"({header.dtype} of shape {header.shape})")
    raw = bytes(_backends.to_numpy(archive.read(header)))
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(path, "is corrupted (its __meta__ is not JSON)") from None
    except RecursionError:
        raise CheckpointError(path, f"its __meta__ nests deeper than {MAX_JSON_DEPTH} levels") from None
    stack = [(meta, 1, "")]  # (value, depth, its field: the first two keys of its path)
    while stack:
        obj, depth, where = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise CheckpointError(path, f"field {where!r} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(obj, dict):
            stack.extend((v, depth + 1, f"{where}.{k}".lstrip(".") if depth < 3 else where) for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((v, depth + 1, where) for v in obj)
    return meta


# ---------------------------------------------------------------------------------------- the model
def _layer_depth(path: str, cfg: dict) -> None:
    """Refuse layer configs nested more than MAX_LAYER_DEPTH deep or more than MAX_LAYERS in all."""
    stack, count = [(c, 1) for c in (cfg.get("layers") if isinstance(cfg.get("layers"), list) else [])], 0
    if isinstance(cfg.get("sizes"), list):
        count = len(cfg["sizes"])
    while stack:
        layer, depth = stack.pop()
        count += 1
        if depth > MAX_LAYER_DEPTH or count > MAX_LAYERS:
            _fail(path, "model", f"nests layers more than {MAX_LAYER_DEPTH} deep or holds more than {MAX_LAYERS}")
        if isinstance(layer, dict):
            inner = layer.get("layers") if isinstance(layer.get("layers"), list) else []
            stack.extend((c, depth + 1) for c in [*inner, layer.get("body"), layer.get("shortcut")] if c is not None)


def _model(path: str, cfg: Any, version: int) -> tuple[Any, Layout, int]:
    cfg = _dict(path, "model", cfg)
    _layer_depth(path, cfg)
    if cfg.get("dtype", "float32") not in DTYPES:
        _fail(path, "model.dtype", f"must be one of {list(DTYPES)}", cfg.get("dtype"))
    if cfg.get("output") not in OUTPUTS:
        _fail(path, "model.output", f"must be one of {list(OUTPUTS)}", cfg.get("output"))
    _int(path, "model.seed", cfg.get("seed", 0), 0, 2**64 - 1)
    if cfg.get("precision", "float32") not in PRECISIONS:
        _fail(path, "model.precision", f"must be one of {list(PRECISIONS)}", cfg.get("precision"))
    if version == 1 and ("sizes" not in cfg or cfg.get("batchnorm") or cfg.get("residual")):
        _fail(path, "model", "must be a plain MLP's config in checkpoint format 1")
    try:
        return config_layout(cfg)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        _fail(path, "model", f"does not describe a network xpnet can build ({' '.join(str(exc).split())[:200]})")


def _members(path: str, meta: dict, root: Any, layout: Layout, version: int, state: list[str],
             present: set[str]) -> Plan:
    """The members the declared model and optimizer need (required) and may have (best_*); the file's
    members (``present``, without ``__meta__``) must be exactly those listed in ``arrays``."""
    dtype = meta["model"].get("dtype", "float32")
    n, nb = layout.n_params, layout.n_buffers
    if version == 1:
        dense = [layer for _, layer in walk(root) if isinstance(layer, Dense)]
        required = {f"model.{p}{i}": (s, dtype) for i, d in enumerate(dense)
                    for p, s in (("W", (d.n_in, d.n_out)), ("b", (d.n_out,)))}
    else:
        required = {"params": ((n,), dtype)} | ({"buffers": ((nb,), dtype)} if nb else {})
    required |= {f"optimizer.{s}": ((n,), dtype) for s in state}
    optional = {"best_params": ((n,), dtype)} | ({"best_buffers": ((nb,), dtype)} if nb else {})
    listed = _list(path, "arrays", meta.get("arrays"))
    if not all(isinstance(a, str) for a in listed) or len(set(listed)) != len(listed):
        _fail(path, "arrays", "must list distinct member names")
    missing = [a for a in listed if a not in present]
    if missing:
        raise CheckpointError(path, f"is corrupted: arrays {missing[:5]} are missing")
    unlisted = [a for a in present if a not in listed]
    if unlisted:
        raise CheckpointError(path, f"holds members {unlisted[:3]} that its __meta__ does not list: not a file "
                                    f"xpnet wrote")
    unknown = [a for a in listed if a not in required and a not in optional]
    if unknown:
        _fail(path, "arrays", f"names {unknown[:3]}, which its model and optimizer do not have")
    absent = [a for a in required if a not in listed]
    if absent:
        _fail(path, "arrays", f"lacks {absent[:3]}, which its model and optimizer need")
    members = {a: (required | optional)[a] for a in listed}
    n_bytes = sum(math.prod(s) * (4 if d == "float32" else 8) for s, d in members.values())
    try:
        valid.allocation(f"loading it ({n:,} parameters, {nb:,} buffer values, {len(members)} arrays)", n_bytes,
                         "not a checkpoint this machine can load")
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from None
    return Plan(members, layout, n_bytes)


# ---------------------------------------------------------------------------------------- the other fields
def _optimizer(path: str, opt: Any) -> tuple[int, list[str]]:
    """(step count, state names) of the saved optimizer (0, [] without one)."""
    if opt is None:
        return 0, []
    opt = _dict(path, "optimizer", opt)
    cfg = dict(_dict(path, "optimizer.config", opt.get("config")))
    name = _str(path, "optimizer.config.name", cfg.pop("name", None), 100)
    lr = _real(path, "optimizer.config.lr", cfg.pop("lr", None), 0.0)
    t = _int(path, "optimizer.t", opt.get("t"))
    state = _list(path, "optimizer.state", opt.get("state"))
    if not all(isinstance(s, str) and _NAME.match(s) for s in state) or len(set(state)) != len(state):
        _fail(path, "optimizer.state", "must list distinct state names", state)
    cls = getattr(_optim, name, None)
    if isinstance(cls, type) and issubclass(cls, _optim.Optimizer):  # (another class: restored into an instance)
        for k, v in cfg.items():
            if not (v is None or isinstance(v, (bool, str)) or isinstance(v, (int, float)) and abs(v) < math.inf
                    and v == v):  # (an int beyond any float compares below inf; NaN differs from itself)
                _fail(path, f"optimizer.config.{k}", "must be a finite number, a bool, a string or null", v)
        try:
            built = cls(lr=lr if lr > 0 else 1.0, **cfg)
        except (TypeError, ValueError, OverflowError) as exc:
            _fail(path, "optimizer.config", f"does not build a {name} ({' '.join(str(exc).split())[:160]})")
        for k, v in built.config().items():  # what the constructor would silently coerce
            if k in cfg and (cfg[k] != v or isinstance(cfg[k], bool) != isinstance(v, bool)):
                _fail(path, f"optimizer.config.{k}", f"is not a {name} {k}", cfg[k])
        expected = built.state_names()
        if expected is not None and sorted(state) != (sorted(expected) if t else []):
            _fail(path, "optimizer.state", f"must be {sorted(expected) if t else []} for {name} after {t} steps",
                 state)
    return t, state


def _history(path: str, history: Any, epoch: int, first: int) -> None:
    """A fit History's keys hold what fit records: one entry per epoch (numbered ``first``, ``first`` + 1,
    ...: from 1 in format 3, from 0 before) in each per-epoch list; other keys (a caller's own history)
    may hold any JSON."""
    if history is None:
        return
    history = _dict(path, "history", history)
    for k in _FLOAT_LISTS:
        for i, v in enumerate(_list(path, f"history.{k}", history.get(k, []))):
            if v is not None:
                _real(path, f"history.{k}[{i}]", v, finite=False)
    epochs = _list(path, "history.epoch", history.get("epoch", []))
    if "epoch" in history:
        if epochs != list(range(first, first + len(epochs))) or not all(type(e) is int for e in epochs):
            _fail(path, "history.epoch", f"must count the epochs recorded: {first}, {first + 1}, {first + 2}, ...",
                  epochs)
        for k in _PER_EPOCH:
            if len(_list(path, f"history.{k}", history.get(k))) != len(epochs):
                _fail(path, f"history.{k}", f"must hold one entry per epoch recorded ({len(epochs)})", history[k])
        for k in ("grad_norms", "diagnostics", "loss_scale", "skipped_steps"):
            if len(_list(path, f"history.{k}", history.get(k, []))) not in (0, len(epochs)):
                _fail(path, f"history.{k}", f"must hold one entry per epoch recorded ({len(epochs)}) or none")
    if history.get("best_epoch") is not None:
        _int(path, "history.best_epoch", history["best_epoch"], first, max(epoch, len(epochs)) - 1 + first)
    for i, norms in enumerate(_list(path, "history.grad_norms", history.get("grad_norms", []))):
        for v in _list(path, f"history.grad_norms[{i}]", norms):
            _real(path, f"history.grad_norms[{i}]", v, finite=False)
    _list(path, "history.diagnostics", history.get("diagnostics", []))
    if not isinstance(history.get("stopped_early", False), bool):
        _fail(path, "history.stopped_early", "must be true or false", history["stopped_early"])


def _fit(path: str, fit: Any) -> dict:
    if fit is None:
        return {}
    fit = _dict(path, "fit", fit)
    for k, (low, high) in _FIT.items():
        if k in fit:
            _real(path, f"fit.{k}", fit[k], low, high, high_open=k == "validation_split")
    for k, low in _FIT_INTS.items():
        if k in fit:
            _int(path, f"fit.{k}", fit[k], low)
    for k in ("clip_value", "clip_norm"):
        if fit.get(k) is not None:
            _real(path, f"fit.{k}", fit[k], 0.0, low_open=True)
    for k in ("shuffle", "early_stopping", "restore_best"):
        if not isinstance(fit.get(k, False), bool):
            _fail(path, f"fit.{k}", "must be true or false", fit[k])
    if fit.get("seed") is not None:
        _int(path, "fit.seed", fit["seed"], 0, 2**64 - 1)
    for k in ("loss", "precision"):
        if fit.get(k) is not None:
            _str(path, f"fit.{k}", fit[k], 100)
    return fit


def _loop(path: str, meta: dict, fit: dict, n_out: int) -> None:
    """epoch, step_in_epoch, partial, early_stopping, loss_scaler."""
    epoch = _int(path, "epoch", meta.get("epoch"))
    step_in_epoch = _int(path, "step_in_epoch", meta.get("step_in_epoch", 0))
    partial = meta.get("partial")
    if (partial is None) != (step_in_epoch == 0):
        _fail(path, "partial", f"must be set exactly when step_in_epoch > 0 (it is {step_in_epoch})", partial)
    if partial is not None:
        partial = _dict(path, "partial", partial)
        losses = _list(path, "partial.step_loss", partial.get("step_loss"))
        if len(losses) != step_in_epoch:
            _fail(path, "partial.step_loss", f"must hold the {step_in_epoch} losses of the steps done", losses)
        for i, v in enumerate(losses):
            _real(path, f"partial.step_loss[{i}]", v, finite=False)
        most = step_in_epoch * fit.get("batch_size", MAX_COUNT) * n_out
        _int(path, "partial.hits", partial.get("hits"), 0, min(most, MAX_COUNT))
        _real(path, "partial.time", partial.get("time"), 0.0)
        if "n_train" in fit and "batch_size" in fit and step_in_epoch >= math.ceil(fit["n_train"] / fit["batch_size"]):
            _fail(path, "step_in_epoch", "must be below the steps of an epoch (fit.n_train / fit.batch_size)",
                 step_in_epoch)
    es = _dict(path, "early_stopping", meta.get("early_stopping", {}))
    if es.get("best") is not None:
        _real(path, "early_stopping.best", es["best"])
    _int(path, "early_stopping.waited", es.get("waited", 0), 0, epoch)
    scaler = meta.get("loss_scaler")
    if scaler is not None:
        scaler = _dict(path, "loss_scaler", scaler)
        _real(path, "loss_scaler.scale", scaler.get("scale"), 0.0, low_open=True)
        _int(path, "loss_scaler.clean", scaler.get("clean"))
        _int(path, "loss_scaler.skipped", scaler.get("skipped"))


def _same(path: str, name: str, saved: Any, expected: Any) -> None:
    """Field ``name`` must be exactly (types included: JSON texts compared) what the model config gives."""
    if json.dumps(saved, sort_keys=True) != json.dumps(expected, sort_keys=True):
        if isinstance(saved, list) and isinstance(expected, list):
            i = next((i for i, (a, b) in enumerate(zip(saved, expected)) if a != b or type(a) is not type(b)),
                     min(len(saved), len(expected)))
            where = (f" at entry {i} of {len(expected)}: {_short(saved[i] if i < len(saved) else None)} where it "
                     f"gives {_short(expected[i] if i < len(expected) else None)}")
        else:
            where = ""
        _fail(path, name, f"does not match its model config{where}")


def check(path: str, meta: Any, present: set[str], fmt: str, newest: int, reader_version: str) -> Plan:
    """Check every field of ``meta`` (see the module docstring) and that ``present`` (the file's members
    besides ``__meta__``) are exactly the ones it lists; returns what to read."""
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(path, "is not an xpnet checkpoint (an .npz with a foreign __meta__)")
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > newest:
        raise CheckpointError(path, f"was written by xpnet {_short(meta.get('xpnet_version'))} in checkpoint format "
                                    f"{version}; this xpnet ({reader_version}) reads formats up to {newest}: "
                                    f"upgrade xpnet")
    version = _int(path, "format_version", version, 1, newest)
    for k in ("xpnet_version", "saved_at", "backend"):
        if meta.get(k) is not None:
            _str(path, k, meta[k])
    root, layout, n_out = _model(path, meta.get("model"), version)
    if version >= 2:
        _same(path, "layout", meta.get("layout"), layout.describe())
        _same(path, "streams", meta.get("streams"), number_streams(root))
    dropouts = [layer for _, layer in walk(root) if isinstance(layer, Dropout)]
    counters = meta.get("dropout_counters")
    if counters is not None:
        for i, c in enumerate(_list(path, "dropout_counters", counters)):
            _int(path, f"dropout_counters[{i}]", c)
        if len(counters) not in (len(dropouts), sum(d.p > 0 for d in dropouts)):
            _fail(path, "dropout_counters", f"must hold one counter per Dropout layer ({len(dropouts)})", counters)
    t, state = _optimizer(path, meta.get("optimizer"))
    if _int(path, "step", meta.get("step", 0)) != t:
        _fail(path, "step", f"must equal the optimizer's step count {t}", meta.get("step"))
    fit = _fit(path, meta.get("fit"))
    _loop(path, meta, fit, n_out)
    _history(path, meta.get("history"), meta["epoch"], 1 if version >= EPOCHS_FROM_ONE else 0)
    return _members(path, meta, root, layout, version, state, present)


def check_values(path: str, arrays: dict[str, Any], plan: Plan) -> None:
    """Refuse NaN or infinity in any member (a checkpoint xpnet writes never holds one)."""
    npx = _backends.get("numpy").xp
    for name in plan.members:
        a = npx.reshape(arrays[name], (-1,))
        bad = npx.logical_not(npx.isfinite(a))
        if bool(npx.any(bad)):
            i = int(npx.argmax(bad))
            where = ""
            if name in ("params", "best_params") or name.startswith("optimizer."):
                where = f" (in {plan.layout.locate(i).name})"
            raise CheckpointError(path, f"member {name!r} holds {a[i]} at index {i}{where}: a checkpoint holds "
                                        f"finite numbers only")
