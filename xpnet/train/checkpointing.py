"""The training loop's checkpoints: periodic saves, a save on SIGINT/SIGTERM, and resuming.

With ``fit(..., checkpoint=path)`` in the main thread, SIGINT/SIGTERM let the current step
finish, write the checkpoint and raise :class:`xpnet.checkpoint.Interrupted`; a second signal
goes to the previous handler at once. The previous handlers are put back when fit returns.

Resuming (``fit(..., resume=)``): ``epochs`` is the total, so a run saved after N epochs and
resumed with ``epochs=2N`` trains N more, bit-identical on the same backend to one run of 2N
(parity tolerance on another backend). Restored: parameters, buffers, optimizer state and step
count (hence the schedule position), dropout counters, the shuffle counter (epoch), early-stopping
state, history, and the steps already done of an epoch cut short by a signal. A run that stopped
early is finished: resuming it returns at once. Resuming with other fit settings warns.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import threading
import time
import types
import warnings
from typing import Any, Iterator

from .. import _validate as check
from ..checkpoint import Checkpoint, Interrupted, save
from ..io.atomic import check_writable
from ..io.npzfile import json_default
from .callbacks import Callback
from .history import History

__all__ = ["Checkpointer", "SignalCatcher", "catch_signals", "check_resume_epochs", "resume_state", "EPOCH_START",
           "MUST_MATCH"]

# The fit settings a resumed run must share with the saved one to continue it exactly.
MUST_MATCH = ("loss", "l2", "batch_size", "shuffle", "validation_split", "seed", "clip_value", "clip_norm",
              "n_train", "n_val", "schedule", "early_stopping", "patience", "min_delta", "restore_best", "precision")
# Where an epoch starts: no steps done yet (a resumed, interrupted epoch starts further on).
EPOCH_START = types.MappingProxyType({"step_in_epoch": 0, "step_loss": [], "hits": 0, "time": 0.0})


class SignalCatcher:
    """While active: SIGINT/SIGTERM set ``signum`` instead of stopping; a second one stops at once."""

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

    def __enter__(self) -> "SignalCatcher":
        for s in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(s)
            if previous is not signal.SIG_IGN and previous is not None:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()


@contextlib.contextmanager
def catch_signals(enabled: bool) -> Iterator[SignalCatcher | None]:
    """A :class:`SignalCatcher` while the block runs (main thread only), else None."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield None
        return
    with SignalCatcher() as catcher:
        yield catcher


def _epoch_pattern(template: str) -> re.Pattern[str] | None:
    parts = re.split(r"\{epoch(?::[^{}]*)?\}", os.path.basename(template))
    if len(parts) < 2:
        return None
    return re.compile(r"(\d+)".join(re.escape(p) for p in parts) + r"\Z")


class Checkpointer(Callback):
    """fit's checkpointing: a file every ``every`` epochs (``{epoch}`` in the path names it by the
    epochs completed; ``keep_last`` prunes older ones), at the end, and on SIGINT/SIGTERM (``signals``:
    the active :class:`SignalCatcher`, read once per step by the loop). ``collective``: a data-parallel
    run's :class:`~xpnet.train.distributed.DataParallel`: rank 0 alone writes, the others wait for it."""

    def __init__(self, path: Any, every: Any, keep_last: Any, extra: dict | None, fit_config: dict,
                 signals: SignalCatcher | None, collective: Any = None):
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"checkpoint must be a file path (may contain {{epoch}}), got {path!r}")
        self.template = os.fspath(path)
        self.every = 1 if every is None else check.integer("checkpoint_every", every, low=1)
        self.keep_last = None if keep_last is None else check.integer("keep_last", keep_last, low=1)
        try:
            json.dumps(extra, default=json_default)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint_extra must be JSON-serializable: {exc}") from None
        self.extra, self.fit_config, self.signals = extra, fit_config, signals
        self.pattern = _epoch_pattern(self.template)
        if self.pattern:  # a path without {epoch} is used literally, braces and all
            try:
                self.template.format(epoch=0)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"checkpoint path {self.template!r} may hold only {{epoch}} as a field "
                                 f"(double other braces): {type(exc).__name__}: {exc}") from None
        elif self.keep_last is not None:
            raise ValueError(f"keep_last needs {{epoch}} in the checkpoint path (e.g. 'run-{{epoch}}.npz'): "
                             f"{self.template!r} names one file, which every save replaces")
        self.collective = collective
        if collective is None or collective.is_root:
            check_writable(self.template.format(epoch=0) if self.pattern else self.template, "checkpoint")

    def on_train_begin(self, info: dict) -> None:
        self.model, self.optimizer, self.history = info["model"], info["optimizer"], info["history"]
        self.trainer = info["trainer"]

    def save(self, epoch: int, loop_state: dict, mid_epoch: bool = False) -> str:
        path = self.template.format(epoch=epoch) if self.pattern else self.template
        if self.pattern and mid_epoch:  # keep the clean end-of-epoch file of the same number intact
            stem, ext = os.path.splitext(path)
            path = f"{stem}-interrupted{ext}"
        if self.collective is None:
            self._write(path, epoch, loop_state)
        else:  # rank 0 writes; its outcome (or error) reaches every rank
            self.collective.on_root(self._write, path, epoch, loop_state)
        return path

    def _write(self, path: str, epoch: int, loop_state: dict) -> None:
        save(path, self.model, self.optimizer, self.history, epoch, self.extra, self.fit_config,
             loop_state=loop_state)
        if self.pattern and self.keep_last:
            directory = os.path.dirname(os.path.abspath(path))
            found = sorted((int(m.group(1)), f) for f in os.listdir(directory) if (m := self.pattern.match(f)))
            for _, f in found[:-self.keep_last]:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(directory, f))

    @property
    def signalled(self) -> int:
        return self.signals.signum if self.signals is not None else 0

    def on_epoch_closed(self, epoch: int, final: bool) -> None:
        """Save after epoch ``epoch`` (= epochs completed) if due (or final, or a signal came); raise
        Interrupted on a signal."""
        if final or self.signalled or epoch % self.every == 0:
            path = self.save(epoch, self.trainer.loop_state())
            if self.signalled and not final:
                self._raise(path, epoch, 0)

    def on_interrupt(self, epoch: int, step_in_epoch: int, partial: dict) -> None:
        """Save the unfinished epoch ``epoch`` (its first ``step_in_epoch`` steps) and raise Interrupted."""
        state = dict(self.trainer.loop_state(), step_in_epoch=step_in_epoch, partial=partial)
        self._raise(self.save(epoch - 1, state, mid_epoch=True), epoch - 1, step_in_epoch)

    def _raise(self, path: str, done: int, step_in_epoch: int) -> None:
        """Raise Interrupted after ``done`` epochs completed (and ``step_in_epoch`` steps of the next)."""
        signum = self.signalled
        where = f"after epoch {done}" + (f" + {step_in_epoch} steps of epoch {done + 1}" if step_in_epoch else "")
        raise Interrupted(f"training stopped by {signal.Signals(signum).name} {where}; checkpoint saved to "
                          f"{path!r}: resume with xpnet.fit(..., resume={path!r})",
                          self.history, path, done, step_in_epoch, signum)


def check_resume_epochs(ck: Checkpoint, epochs: int) -> None:
    """``epochs`` (the total) must leave something to train after the ``ck.epoch`` epochs completed, unless
    the saved run stopped early (it is finished: resuming it returns at once)."""
    if epochs <= ck.epoch and not (ck.history or {}).get("stopped_early"):
        partial = " and part of the next one" if ck.meta.get("partial") is not None else ""
        raise ValueError(f"epochs={epochs} but {ck.path or 'the checkpoint'} has completed {ck.epoch} epochs"
                         f"{partial}: epochs is the total, so nothing would be trained; give epochs > {ck.epoch} "
                         f"(the saved state alone: xpnet.checkpoint.load(path).restore(model))")


def resume_state(ck: Checkpoint, model: Any, fit_config: dict, epochs: int) -> dict:
    """What the loop needs to continue the run saved in ``ck``: ``history``, ``first_epoch``,
    ``partial`` (an unfinished epoch, or None) and the early-stopping ``best``/``waited``/``best_params``/
    ``best_buffers``."""
    saved = ck.fit_config
    diff = [f"{k} {saved.get(k)!r} -> {fit_config.get(k)!r}" for k in MUST_MATCH
            if k in saved and saved.get(k) != fit_config.get(k)]
    partial = ck.meta.get("partial")
    if partial is not None and any(saved.get(k) != fit_config.get(k) for k in ("batch_size", "n_train")):
        raise ck._error(f"was written in the middle of an epoch; resume it with the same data size and "
                        f"batch_size ({'; '.join(diff)})")
    if diff:
        warnings.warn(f"resuming {ck.path or 'a checkpoint'} with settings that differ from the saved run "
                      f"({'; '.join(diff)}): the result will not match an uninterrupted run", stacklevel=4)
    history = History(ck.history)
    if ck.history is not None and len(history["epoch"]) != ck.epoch:
        raise ck._error(f"its history records {len(history['epoch'])} epochs but {ck.epoch} were completed")
    es = ck.meta.get("early_stopping") or {}
    if partial is not None:  # what the loop needs to finish the epoch (see EPOCH_START)
        partial = dict(partial, step_in_epoch=int(ck.meta["step_in_epoch"]))
    return {"history": history, "first_epoch": epochs if history.get("stopped_early") else ck.epoch,
            "loss_scaler": ck.meta.get("loss_scaler"),
            "partial": partial, "best": math.inf if es.get("best") is None else float(es["best"]),
            "waited": int(es.get("waited", 0)),
            **{k: ck.device_copy(model, k) if k in ck.arrays else None for k in ("best_params", "best_buffers")}}


def partial_epoch(done: dict, step_loss: list[float], hits: int, t0: float) -> dict:
    """The record of an unfinished epoch: its step losses and hits so far (plus ``done`` from before a
    resume) and the time spent."""
    return {"step_loss": done["step_loss"] + step_loss, "hits": done["hits"] + hits,
            "time": done["time"] + time.perf_counter() - t0}
