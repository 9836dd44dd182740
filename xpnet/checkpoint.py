"""Checkpoints: the whole training state in one ``.npz`` file, written atomically.

    import xpnet
    xpnet.checkpoint.save("run.npz", model, optimizer, history, epoch=5, extra={"scaler": {...}})
    ck = xpnet.checkpoint.load("run.npz")                    # host data + metadata, never unpickles
    model, opt = ck.restore(backend="torch:cpu")               # rebuilt on any backend / device
    xpnet.fit(model, X, y, epochs=10, resume=ck, checkpoint="run-{epoch}.npz", keep_last=3)

File format (``FORMAT_VERSION`` 1): a zip of ``.npy`` members (format 1.0, C order, no
pickles), so ``numpy.load(path, allow_pickle=False)`` reads it. Members:

- ``__meta__``: uint8 array holding UTF-8 JSON: ``format`` ("xpnet.checkpoint"),
  ``format_version``, ``xpnet_version``, ``saved_at``, ``backend`` (saved from),
  ``model`` (:meth:`MLP.config`), ``dropout_counters``, ``optimizer`` (its config incl. the
  current ``lr``, the step count ``t`` = the schedule position, names of its state arrays),
  ``epoch`` (epochs completed = the shuffle counter of the next epoch), ``step`` (optimizer
  steps), ``step_in_epoch`` and ``partial`` (set when interrupted mid-epoch), ``early_stopping``
  (best monitored value, epochs waited), ``history``, ``fit`` (fit's settings), ``extra``
  (the caller's JSON, e.g. the input scaler) and ``arrays`` (the names of the members below).
- ``model.W0 .. model.W{L}``, ``model.b0 .. model.b{L}``: weights and biases (model dtype).
- ``optimizer.<name>``: optimizer state (Adam ``m``/``v``, SGD ``momentum``, RMSProp ``v``).
- ``best_params``: the flat parameters of the best epoch (early stopping with restore_best).

Writes go to a temporary file in the same directory, which is flushed and fsynced, then
renamed over the target with ``os.replace`` (and the directory fsynced): a crash at any
moment leaves the old checkpoint or the new one, never a torn file (a hard kill may leave a
``.<name>.<random>.tmp`` file beside it, safe to delete). Reading checks every member's
CRC and size, so a damaged file is reported, not half-loaded.

Resuming (``fit(..., resume=)``): ``epochs`` is the total, so a run saved after N epochs and
resumed with ``epochs=2N`` trains N more, bit-identical on the same backend to one run of 2N
(parity tolerance on another backend). The loop state is restored: parameters, optimizer state
and step count (hence the schedule position), dropout counters, the shuffle counter (epoch),
early-stopping state, history, and the steps already done of an epoch cut short by a signal.
A run that stopped early is finished: resuming it returns at once. Callbacks keep no state
here: pass fresh ones. Resuming with other fit settings (batch size, seed, ...) warns.

Interruption: with ``fit(..., checkpoint=)`` in the main thread, SIGINT/SIGTERM let the current
step finish, write the checkpoint and raise :class:`Interrupted` (a ``KeyboardInterrupt``
subclass, carrying ``history``, ``path``, ``epoch``, ``step_in_epoch``, ``signum``); a second
signal goes to the previous handler at once. The previous handlers are put back when fit returns.
"""
from __future__ import annotations

import array
import ast
import functools
import json
import math
import os
import re
import signal
import struct
import sys
import tempfile
import threading
import time
import types
import warnings
import zipfile
from typing import Any, Callable

import backends as _backends

from . import optim as _optim
from .model import MLP

__all__ = ["save", "load", "Checkpoint", "CheckpointError", "Interrupted", "FORMAT_VERSION"]

FORMAT = "xpnet.checkpoint"
FORMAT_VERSION = 1
_META = "__meta__"
# The fit settings a resumed run must share with the saved one to continue it exactly.
_MUST_MATCH = ("loss", "l2", "batch_size", "shuffle", "validation_split", "seed", "clip_value", "clip_norm",
               "n_train", "n_val", "schedule", "early_stopping", "patience", "min_delta", "restore_best")
# .npy type letters -> struct format of the native element, per item size.
_STRUCT = {("f", 4): "f", ("f", 8): "d", ("i", 1): "b", ("i", 2): "h", ("i", 4): "i", ("i", 8): "q",
           ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("b", 1): "?"}
_NATIVE = "<" if sys.byteorder == "little" else ">"


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read or applied; ``str(err)`` is one line naming the file."""

    def __init__(self, path: Any, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"checkpoint {self.path!r}: {self.problem}" if self.path else f"checkpoint: {self.problem}")


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


# ---------------------------------------------------------------------------------------- .npy / .npz
def _npy_header(host: Any, name: str) -> bytes:
    dt = host.dtype
    if dt.kind not in "biuf":
        raise CheckpointError(None, f"array {name!r} has dtype {dt}: only bool, integer and float arrays are stored")
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (dt.str, tuple(int(s) for s in host.shape))
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"  # data starts 64-byte aligned, as numpy writes it
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")


def _write_npz(f: Any, arrays: dict[str, Any]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, host in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as w:
                w.write(_npy_header(host, name))
                w.write(host.tobytes())


def _parse_npy(path: str, name: str, raw: bytes) -> Any:
    """A host (NumPy) array from the bytes of one .npy member; never unpickles."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(path, f"member {name!r} is corrupted ({why})")
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise bad("not a .npy array")
    major = raw[6]
    if major == 1:
        start, hlen = 10, struct.unpack("<H", raw[8:10])[0]
    elif major in (2, 3) and len(raw) >= 12:
        start, hlen = 12, struct.unpack("<I", raw[8:12])[0]
    else:
        raise bad(f".npy format version {major}")
    try:
        header = ast.literal_eval(raw[start:start + hlen].decode("latin1"))  # literals only: no code runs
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(int(s) for s in header["shape"])
    except Exception:  # noqa: BLE001 - any malformed header is the same problem
        raise bad("unreadable .npy header") from None
    if "O" in str(descr):  # object arrays (also inside records) are stored pickled
        raise CheckpointError(path, f"member {name!r} holds Python objects (dtype {descr!r}), which would need "
                                    f"unpickling; xpnet never unpickles: this is not a checkpoint it wrote")
    if not isinstance(descr, str):
        raise bad(f"unsupported record array {descr!r}")
    order, kind, size = descr[:1], descr[1:2], descr[2:]
    fmt = _STRUCT.get((kind, int(size) if size.isdigit() else 0))
    if fmt is None or order not in "<>|=" or fortran:
        raise bad(f"unsupported array type {descr!r}{' in Fortran order' if fortran else ''}")
    count = math.prod(shape)
    data = raw[start + hlen:]
    if len(data) != count * int(size):
        raise bad(f"{len(data)} data bytes for shape {shape} of {descr}")
    npb = _backends.get("numpy")
    if count == 0:
        dtype = "bool" if kind == "b" else {"f": "float", "i": "int", "u": "uint"}[kind] + str(8 * int(size))
        return npb.xp.zeros(shape, dtype=npb.dtype(dtype))
    view = memoryview(bytearray(data))  # a writable copy
    if order in "<>" and order != _NATIVE and int(size) > 1:
        swapped = array.array(fmt, bytes(view))
        swapped.byteswap()
        view = memoryview(bytearray(swapped.tobytes()))
    return npb.asarray(view.cast(fmt, shape))


def _read_npz(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(path, "is empty (0 bytes), not a checkpoint")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise CheckpointError(path, "is not an xpnet checkpoint (not an .npz/zip file)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(path, f"is not an xpnet checkpoint (unexpected member {info.filename!r})")
                name = info.filename[:-4]
                arrays[name] = _parse_npy(path, name, zf.read(info))  # zipfile checks the CRC
    except zipfile.BadZipFile as exc:
        raise CheckpointError(path, f"is truncated or corrupted ({exc}): it was not written completely") from None
    except (EOFError, zipfile.LargeZipFile, OSError) as exc:
        raise CheckpointError(path, f"is truncated or corrupted ({type(exc).__name__}: {exc})") from None
    return arrays


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays, 0-d device arrays
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


# ---------------------------------------------------------------------------------------- atomic write
def _fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Write ``path`` so that a crash leaves either the old file or the complete new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


# ---------------------------------------------------------------------------------------- save
def save(path: Any, model: MLP, optimizer: _optim.Optimizer | None = None, history: dict | None = None,
         epoch: int = 0, extra: dict | None = None, fit_config: dict | None = None, *,
         loop_state: dict | None = None) -> str:
    """Write ``model`` (and the optimizer, history, ...) to ``path`` atomically; returns the path.

    ``epoch``: epochs completed (the next epoch's index and shuffle counter). ``extra``: any
    JSON-serializable dict the caller wants back (e.g. ``{"scaler": {"mean": [...], "std": [...]}}``).
    ``fit_config``: fit's settings (fit passes them). ``loop_state`` is fit's own: ``step_in_epoch``,
    ``partial`` (losses/hits/time of an unfinished epoch), ``best``, ``waited``, ``best_params``.
    The file name is used as given (no ``.npz`` is appended).
    """
    path = os.fspath(path)
    if not isinstance(model, MLP):
        raise CheckpointError(path, f"save needs an xpnet.MLP, got {type(model).__name__}")
    loop = dict(loop_state or {})
    arrays: dict[str, Any] = {}
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        arrays[f"model.W{i}"], arrays[f"model.b{i}"] = _backends.to_numpy(w), _backends.to_numpy(b)
    opt_meta = None
    if optimizer is not None:
        opt_meta = {"config": optimizer.config(), "t": int(optimizer.t), "state": sorted(optimizer.state)}
        for k in opt_meta["state"]:
            arrays[f"optimizer.{k}"] = _backends.to_numpy(optimizer.state[k])
    best_params = loop.pop("best_params", None)
    if best_params is not None:
        arrays["best_params"] = _backends.to_numpy(best_params)
    from . import __version__

    best = loop.get("best", math.inf)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "xpnet_version": __version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "backend": model.backend.spec,
        "model": model.config(), "dropout_counters": [int(layer.counter) for layer in model.dropout_layers],
        "optimizer": opt_meta, "epoch": int(epoch), "step": int(optimizer.t) if optimizer is not None else 0,
        "step_in_epoch": int(loop.get("step_in_epoch", 0)), "partial": loop.get("partial"),
        "early_stopping": {"best": None if math.isinf(best) else float(best), "waited": int(loop.get("waited", 0))},
        "history": None if history is None else dict(history), "fit": fit_config, "extra": extra,
        "arrays": list(arrays),
    }
    try:
        text = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"extra/history/fit_config must be JSON-serializable: {exc}") from None
    npb = _backends.get("numpy")
    payload = {_META: npb.to_numpy(npb.asarray(memoryview(bytearray(text.encode("utf-8")))))} | arrays
    _atomic_write(path, lambda f: _write_npz(f, payload))
    return path


# ---------------------------------------------------------------------------------------- load / restore
def load(path: Any) -> "Checkpoint":
    """Read a checkpoint file into host memory (no backend needed); raises :class:`CheckpointError`."""
    path = os.fspath(path)
    arrays = _read_npz(path)
    raw = arrays.pop(_META, None)
    if raw is None:
        raise CheckpointError(path, "is not an xpnet checkpoint (an .npz without __meta__)")
    try:
        meta = json.loads(bytes(_backends.to_numpy(raw)).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(path, "is corrupted (its __meta__ is not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(path, "is not an xpnet checkpoint (an .npz with a foreign __meta__)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        from . import __version__

        raise CheckpointError(path, f"was written by xpnet {meta.get('xpnet_version')} in checkpoint format "
                                    f"{version}; this xpnet ({__version__}) reads formats up to {FORMAT_VERSION}: "
                                    f"upgrade xpnet")
    missing = [a for a in meta.get("arrays", []) if a not in arrays]
    if missing:
        raise CheckpointError(path, f"is corrupted: arrays {missing} are missing")
    return Checkpoint(meta, arrays, path)


def _as_checkpoint(resume: Any) -> "Checkpoint | None":
    if resume is None or isinstance(resume, Checkpoint):
        return resume
    if isinstance(resume, (str, os.PathLike)):
        return load(resume)
    raise ValueError(f"resume must be a checkpoint path or an xpnet.checkpoint.Checkpoint, got {resume!r}")


def _describe(cfg: dict) -> str:
    return (f"MLP({cfg.get('sizes')}, activation={cfg.get('activation')!r}, output={cfg.get('output')!r}, "
            f"dropout={cfg.get('dropout')})")


class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON dict), ``arrays`` (name -> host NumPy array), ``path``.

    Shortcuts: ``epoch`` (epochs completed), ``step`` (optimizer steps), ``model_config``,
    ``fit_config``, ``extra``, ``history`` (a :class:`xpnet.History` copy or None),
    ``format_version``, ``xpnet_version``.
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
    def history(self) -> Any:
        from .train import History

        saved = self.meta.get("history")
        if saved is None:
            return None
        history = History()
        history.update(json.loads(json.dumps(saved)))  # a deep copy
        return history

    def __repr__(self) -> str:
        return (f"Checkpoint({self.path!r}, {_describe(self.meta['model'])}, epoch={self.epoch}, step={self.step}, "
                f"format_version={self.format_version})")

    def _error(self, problem: str) -> CheckpointError:
        return CheckpointError(self.path, problem)

    def _check_architecture(self, model: MLP) -> None:
        cfg, mine = self.meta["model"], model.config()
        keys = ["sizes", "activation", "dropout"] + ([] if model.output_auto else ["output"])
        diff = [f"{k} {cfg.get(k)!r} vs {mine[k]!r}" for k in keys if cfg.get(k) != mine[k]]
        if diff:
            raise self._error(f"was saved from {_describe(cfg)} but the model is {_describe(mine)} "
                              f"({'; '.join(diff)})")

    def restore(self, model: MLP | None = None, backend: Any = "numpy", optimizer: Any = None,
                dtype: str | None = None) -> tuple[MLP, _optim.Optimizer | None]:
        """(model, optimizer) with the saved state, on any backend and device.

        ``model``: load into this model (same architecture, else :class:`CheckpointError`;
        its backend is used and its dtype kept) or None to build one on ``backend`` (in the
        saved dtype unless ``dtype``). ``optimizer``: load the saved step count and state into
        this optimizer (same class; its own hyperparameters are kept) or None to rebuild the
        saved one (None if none was saved). The RNG key (seed) and dropout counters are restored.
        """
        cfg = self.meta["model"]
        if model is None:
            try:
                model = MLP(**(cfg | ({"dtype": dtype} if dtype else {})), backend=backend)
            except (TypeError, ValueError) as exc:
                raise self._error(f"its model config cannot be built: {exc}") from None
        elif not isinstance(model, MLP):
            raise self._error(f"restore needs an xpnet.MLP, got {type(model).__name__}")
        else:
            self._check_architecture(model)
            if model.output != cfg["output"]:
                model.set_output(cfg["output"])
            if model.seed != cfg["seed"]:
                model.seed = cfg["seed"]
                model._build_layers()
        n = len(model.weights)
        try:
            model.load_state_dict({"config": cfg, "weights": [self.arrays[f"model.W{i}"] for i in range(n)],
                                   "biases": [self.arrays[f"model.b{i}"] for i in range(n)],
                                   "dropout_counters": self.meta.get("dropout_counters", [])})
        except (KeyError, ValueError) as exc:
            raise self._error(f"does not fit the model: {exc}") from None
        return model, self._restore_optimizer(model, optimizer)

    def _device_copy(self, model: MLP, name: str) -> Any:
        return model.xp.astype(model.backend.asarray(self.arrays[name]), model.dtype, copy=True)

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

    def _restore_optimizer(self, model: MLP, optimizer: Any) -> Any:
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
        n_params = model.n_params
        state = {}
        for k in saved.get("state", []):
            arr = self.arrays[f"optimizer.{k}"]
            if tuple(arr.shape) != (n_params,):
                raise self._error(f"optimizer state {k!r} has shape {tuple(arr.shape)}, the model has "
                                  f"{n_params} parameters")
            state[k] = self._device_copy(model, f"optimizer.{k}")
        optimizer.t, optimizer.state = int(saved["t"]), state
        optimizer.xp = None  # bound again (to the model's namespace) at the next step
        return optimizer

    # ------------------------------------------------------------------ used by fit(resume=...)
    def _fit_state(self, model: MLP, fit_config: dict, epochs: int) -> tuple[Any, int, Any, float, int, Any]:
        """(history, first epoch, partial epoch or None, best, waited, best_params) to continue a fit."""
        from .train import History

        saved = self.fit_config
        diff = [f"{k} {saved.get(k)!r} -> {fit_config.get(k)!r}" for k in _MUST_MATCH
                if k in saved and saved.get(k) != fit_config.get(k)]
        partial = self.meta.get("partial")
        if partial is not None and any(saved.get(k) != fit_config.get(k) for k in ("batch_size", "n_train")):
            raise self._error(f"was written in the middle of an epoch; resume it with the same data size and "
                              f"batch_size ({'; '.join(diff)})")
        if diff:
            warnings.warn(f"resuming {self.path or 'a checkpoint'} with settings that differ from the saved run "
                          f"({'; '.join(diff)}): the result will not match an uninterrupted run", stacklevel=4)
        history = self.history or History()
        es = self.meta.get("early_stopping") or {}
        best = math.inf if es.get("best") is None else float(es["best"])
        best_params = self._device_copy(model, "best_params") if "best_params" in self.arrays else None
        first = epochs if history.get("stopped_early") else self.epoch
        if partial is not None:  # what fit's loop needs to finish the epoch (see EPOCH_START)
            partial = dict(partial, step_in_epoch=int(self.meta["step_in_epoch"]))
        return history, first, partial, best, int(es.get("waited", 0)), best_params


# ---------------------------------------------------------------------------------------- fit's side
class _SignalGuard:
    """While active: SIGINT/SIGTERM set ``signum`` instead of stopping; a second one stops at once."""

    _stack: list["_SignalGuard"] = []

    def __init__(self) -> None:
        self.signum, self._previous = 0, {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:  # asked twice: give the signal to the previous handler now
            self._restore()
            signal.raise_signal(signum)
            return
        self.signum = signum

    def _restore(self) -> None:
        while self._previous:
            s, handler = self._previous.popitem()
            signal.signal(s, handler)

    def __enter__(self) -> "_SignalGuard":
        for s in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(s)
            if previous is not signal.SIG_IGN and previous is not None:
                self._previous[s] = signal.signal(s, self._handle)
        _SignalGuard._stack.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()
        _SignalGuard._stack.remove(self)


def interruptible(fit: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for :func:`xpnet.fit`: with ``checkpoint=`` given and in the main thread, SIGINT and
    SIGTERM are caught while it runs (the previous handlers are put back afterwards)."""
    @functools.wraps(fit)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("checkpoint") is None or threading.current_thread() is not threading.main_thread():
            return fit(*args, **kwargs)
        with _SignalGuard():
            return fit(*args, **kwargs)
    return wrapper


def _epoch_pattern(template: str) -> re.Pattern[str] | None:
    parts = re.split(r"\{epoch(?::[^{}]*)?\}", os.path.basename(template))
    if len(parts) < 2:
        return None
    return re.compile(r"(\d+)".join(re.escape(p) for p in parts) + r"\Z")


class _Saver:
    """fit's checkpointing: a file every ``every`` epochs (``{epoch}`` in the path names it by the
    epochs completed; ``keep_last`` prunes older ones), at the end, and on SIGINT/SIGTERM."""

    def __init__(self, path: Any, every: Any, keep_last: Any, extra: dict | None, fit_config: dict):
        self.template = os.fspath(path)
        self.every = 1 if every is None else _positive("checkpoint_every", every)
        self.keep_last = None if keep_last is None else _positive("keep_last", keep_last)
        try:
            json.dumps(extra, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint_extra must be JSON-serializable: {exc}") from None
        self.extra, self.fit_config = extra, fit_config
        main = threading.current_thread() is threading.main_thread()
        self.guard = _SignalGuard._stack[-1] if _SignalGuard._stack and main else None
        self.pattern = _epoch_pattern(self.template)
        if self.pattern:  # a path without {epoch} is used literally, braces and all
            try:
                self.template.format(epoch=0)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"checkpoint path {self.template!r} may hold only {{epoch}} as a field "
                                 f"(double other braces): {type(exc).__name__}: {exc}") from None

    @property
    def signalled(self) -> int:
        """The signal number caught (0: none). Checked once per step."""
        return self.guard.signum if self.guard is not None else 0

    def save(self, model: MLP, optimizer: Any, history: Any, epoch: int, loop_state: dict,
             mid_epoch: bool = False) -> str:
        path = self.template.format(epoch=epoch) if self.pattern else self.template
        if self.pattern and mid_epoch:  # keep the clean end-of-epoch file of the same number intact
            stem, ext = os.path.splitext(path)
            path = f"{stem}-interrupted{ext}"
        save(path, model, optimizer, history, epoch, self.extra, self.fit_config, loop_state=loop_state)
        if self.pattern and self.keep_last:
            directory = os.path.dirname(os.path.abspath(path))
            found = sorted((int(m.group(1)), f) for f in os.listdir(directory) if (m := self.pattern.match(f)))
            for _, f in found[:-self.keep_last]:
                try:
                    os.remove(os.path.join(directory, f))
                except OSError:
                    pass
        return path

    def after_epoch(self, model: MLP, optimizer: Any, history: Any, epoch: int, last: bool, loop_state: dict) -> None:
        """Save after ``epoch`` epochs if due (or last, or a signal came); raise :class:`Interrupted` on a signal."""
        if last or self.signalled or epoch % self.every == 0:
            path = self.save(model, optimizer, history, epoch, loop_state)
            if self.signalled and not last:
                self._raise(path, history, epoch, 0)

    def interrupt(self, model: MLP, optimizer: Any, history: Any, epoch: int, step_in_epoch: int, done: Any,
                  losses: list, hits: list, t0: float, loop_state: dict) -> None:
        """Save the unfinished epoch ``epoch`` (``step_in_epoch`` steps done: their losses and hits on the
        device, plus ``done`` from before a resume) and raise :class:`Interrupted`."""
        xp = model.xp
        partial = {"step_loss": done["step_loss"] + _backends.to_numpy(xp.stack(losses)).tolist(),
                   "hits": done["hits"] + (int(xp.sum(xp.stack(hits))) if hits else 0),
                   "time": done["time"] + time.perf_counter() - t0}
        path = self.save(model, optimizer, history, epoch,
                         dict(loop_state, step_in_epoch=step_in_epoch, partial=partial), mid_epoch=True)
        self._raise(path, history, epoch, step_in_epoch)

    def _raise(self, path: str, history: Any, epoch: int, step_in_epoch: int) -> None:
        signum = self.signalled
        where = f"after epoch {epoch}" + (f" + {step_in_epoch} steps" if step_in_epoch else "")
        raise Interrupted(f"training stopped by {signal.Signals(signum).name} {where}; checkpoint saved to "
                          f"{path!r}: resume with xpnet.fit(..., resume={path!r})",
                          history, path, epoch, step_in_epoch, signum)


EPOCH_START = types.MappingProxyType({"step_in_epoch": 0, "step_loss": [], "hits": 0, "time": 0.0})


def _saver(path: Any, every: Any, keep_last: Any, extra: Any, fit_config: dict,
           resumed: Checkpoint | None = None) -> _Saver | None:
    """fit's checkpoint writer, or None without ``checkpoint=``. A resumed run keeps the saved
    ``extra`` unless given a new one."""
    if path is None:
        if every is not None or keep_last is not None or extra is not None:
            raise ValueError("checkpoint_every, keep_last and checkpoint_extra need checkpoint=path")
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"checkpoint must be a file path (may contain {{epoch}}), got {path!r}")
    if extra is None and resumed is not None:
        extra = resumed.extra
    return _Saver(path, every, keep_last, extra, fit_config)


def _schedule_config(schedule: Any) -> Any:
    """A JSON description of fit's schedule (for checkpoints)."""
    if schedule is None or not hasattr(schedule, "config"):
        return None if schedule is None else "custom"
    return schedule.config()


def _positive(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return v
